#include "governance/token_estimate.h"

#include "sim/tokenizer.h"

namespace tokenway {

int64_t EstimateInputTokens(std::string_view prompt_text) {
  return static_cast<int64_t>(sim::CountTokens(prompt_text));
}

int64_t OutputReservation(int64_t max_tokens, int64_t cap, bool embeddings) {
  if (embeddings) return 0;
  return max_tokens >= 0 ? max_tokens : cap;
}

}  // namespace tokenway
