#include "governance/token_estimate.h"

namespace tokenway {

int64_t OutputReservation(int64_t max_tokens, int64_t cap, bool embeddings) {
  if (embeddings) return 0;
  return max_tokens >= 0 ? max_tokens : cap;
}

}  // namespace tokenway
