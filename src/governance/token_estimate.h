// Token estimates for reservations: what a request is charged at admission, before the model
// server reports its real usage.
//
// Input tokens are counted with the simulator's tokenizer rule (sim/tokenizer.h, one pass over
// the prompt text as common/prompt_text.h flattens it), the same rule the simulator and the
// benchmark count with. Against a real model server it is an estimate that settlement corrects.
// Output tokens are the request's max_tokens, else the tenant's cap.
#pragma once

#include <cstdint>
#include <string_view>

namespace tokenway {

int64_t EstimateInputTokens(std::string_view prompt_text);

// Output tokens to reserve: max_tokens (-1: absent) if given, else `cap`; 0 for embeddings.
int64_t OutputReservation(int64_t max_tokens, int64_t cap, bool embeddings);

}  // namespace tokenway
