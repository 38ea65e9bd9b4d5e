// Token estimates for reservations: what a request is charged at admission, before the model
// server reports its real usage.
//
// Input tokens are the gateway's one prompt estimate, EstimatePromptTokens (common/tokenizer.h),
// the same figure routing charges to an endpoint. Output tokens are the request's max_tokens,
// else the tenant's cap. Called by the governance phase on worker threads; pure.
#pragma once

#include <cstdint>
#include <string_view>

namespace tokenway {

// Input tokens to reserve for a prompt (flattened as common/prompt_text.h does).
int64_t EstimateInputTokens(std::string_view prompt_text);

// Output tokens to reserve: max_tokens (-1: absent) if given, else `cap`; 0 for embeddings.
int64_t OutputReservation(int64_t max_tokens, int64_t cap, bool embeddings);

}  // namespace tokenway
