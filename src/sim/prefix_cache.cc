#include "sim/prefix_cache.h"

#include <xxhash.h>

#include <algorithm>

namespace tokenway::sim {

uint64_t PrefixHashSeed(std::string_view model_or_adapter) {
  return XXH64(model_or_adapter.data(), model_or_adapter.size(), 0x746f6b656e776179ull);
}

void ExtendBlockHashes(uint64_t seed, const std::vector<uint32_t>& tokens, int block_size,
                       std::vector<uint64_t>& hashes) {
  const std::size_t full_blocks = tokens.size() / static_cast<std::size_t>(block_size);
  while (hashes.size() < full_blocks) {
    const uint64_t parent = hashes.empty() ? seed : hashes.back();
    const uint32_t* first = tokens.data() + hashes.size() * block_size;
    hashes.push_back(XXH64(first, sizeof(uint32_t) * block_size, parent));
  }
}

std::size_t CountCachedPrefixBlocks(const KvBlockPool& pool, const std::vector<uint64_t>& hashes,
                                    std::size_t max_blocks) {
  const std::size_t limit = std::min(max_blocks, hashes.size());
  std::size_t n = 0;
  while (n < limit && pool.FindCached(hashes[n]) != kNoBlock) ++n;
  return n;
}

}  // namespace tokenway::sim
