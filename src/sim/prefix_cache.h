// Automatic prefix caching: the chained block hashes that name KV-cache content (vLLM's scheme)
// and the lookup of how many leading blocks of a token sequence are already cached.
//
// hash(block 0) = XXH64(16 token ids, seed = XXH64(model or adapter name))
// hash(block i) = XXH64(16 token ids, seed = hash(block i-1))
// so equal hashes mean equal content *and* equal prefix. Only full blocks are hashed.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "sim/kv_cache.h"

namespace tokenway::sim {

// Seed of the first block's hash for requests served by `model_or_adapter`.
uint64_t PrefixHashSeed(std::string_view model_or_adapter);

// Appends hashes of the full blocks of `tokens` not yet in `hashes` (hashes.size() blocks are
// already hashed), continuing the chain.
void ExtendBlockHashes(uint64_t seed, const std::vector<uint32_t>& tokens, int block_size,
                       std::vector<uint64_t>& hashes);

// Number of leading `hashes` whose blocks are cached in `pool`, at most `max_blocks`.
std::size_t CountCachedPrefixBlocks(const KvBlockPool& pool, const std::vector<uint64_t>& hashes,
                                    std::size_t max_blocks);

}  // namespace tokenway::sim
