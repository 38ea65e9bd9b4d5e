// Shared by the fuzz targets in tests/fuzz: a deterministic split schedule derived from the input,
// so a crashing input replays the same way.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tokenway::fuzz {

// xorshift64* seeded from the input bytes.
class SplitRng {
 public:
  SplitRng(const uint8_t* data, size_t size) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
    state_ = h | 1;
  }
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 2685821657736338717ull;
  }
  // A piece length in [1, max(1, limit)], biased towards small pieces.
  size_t Piece(size_t limit) {
    if (limit <= 1) return 1;
    uint64_t r = Next();
    size_t cap = (r & 3) == 0 ? limit : ((r >> 2) & 1 ? 16 : 3);
    if (cap > limit) cap = limit;
    return 1 + static_cast<size_t>((r >> 8) % cap);
  }

 private:
  uint64_t state_;
};

}  // namespace tokenway::fuzz
