// The paged KV cache of one simulated engine: a fixed pool of blocks with reference counts, and
// the automatic prefix cache over it (full blocks registered under their chained content hash).
//
// A block with refcount 0 is "free" but keeps its cached content until it is reused; free blocks
// are reused least-recently-freed first, which evicts their cache entry (vLLM's BlockPool). All
// methods run on the engine's thread; the pool never allocates after construction.
#pragma once

#include <cstdint>
#include <vector>

#include "sim/cached_block_table.h"

namespace tokenway::sim {

using BlockId = int32_t;
inline constexpr BlockId kNoBlock = -1;

class KvBlockPool {
 public:
  KvBlockPool(int64_t num_blocks, int block_size);

  int64_t num_blocks() const { return static_cast<int64_t>(refcounts_.size()); }
  int block_size() const { return block_size_; }
  // Blocks with refcount 0, cached or not (what vLLM counts as free).
  int64_t num_free_blocks() const { return num_free_; }
  // 1 - free/total, as vllm:kv_cache_usage_perc.
  double Usage() const;

  // Takes the least-recently-freed free block (evicting its cached content) with refcount 1;
  // kNoBlock when every block is in use.
  BlockId Allocate();
  // Cached block holding content `hash`, or kNoBlock. Does not change the block.
  BlockId FindCached(uint64_t hash) const { return cached_.Find(hash, kNoBlock); }
  // Starts loading what FindCached(hash) will read (a caller about to look up a prompt's blocks).
  void PrefetchCached(uint64_t hash) const { cached_.Prefetch(hash); }
  // Starts loading what the next Allocate reads (the head of the free list and its entry); a
  // hint for an engine among many, it changes nothing.
  void PrefetchNextFree() const;
  // Adds a reference to `block` (taking it off the free list when it was free).
  void Acquire(BlockId block);
  // Drops a reference; at 0 the block goes to the tail of the free list, content still cached.
  void Release(BlockId block);
  // Registers a full block under `hash` unless that content is already cached elsewhere.
  void RegisterCached(BlockId block, uint64_t hash);
  int refcount(BlockId block) const { return refcounts_[block]; }
  uint64_t evictions() const { return evictions_; }
  std::size_t num_cached_blocks() const { return cached_.size(); }

 private:
  void PrefetchBlock(BlockId block) const;
  void Unlink(BlockId block);
  void PushBack(BlockId block);

  int block_size_;
  std::vector<int32_t> refcounts_;
  std::vector<uint64_t> hashes_;
  std::vector<uint8_t> has_hash_;     // bytes, not bits: a block reads one byte, no word shifts
  std::vector<BlockId> prev_, next_;  // free list, intrusive, head = least recently freed
  BlockId head_ = kNoBlock, tail_ = kNoBlock;
  int64_t num_free_ = 0;
  CachedBlockTable cached_;
  uint64_t evictions_ = 0;
};

}  // namespace tokenway::sim
