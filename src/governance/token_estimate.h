// Output-token reservations: what a request is charged for its answer at admission, before the
// model server reports its real usage. (Input tokens are the gateway's one prompt estimate,
// EstimatePromptTokens in common/tokenizer.h, counted once per request by the inspect phase and
// shared by routing and governance.) Called by the governance phase on worker threads; pure.
#pragma once

#include <cstdint>
#include <string_view>

namespace tokenway {

// Output tokens to reserve: max_tokens (-1: absent) if given, else `cap`; 0 for embeddings.
int64_t OutputReservation(int64_t max_tokens, int64_t cap, bool embeddings);

}  // namespace tokenway
