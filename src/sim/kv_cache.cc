#include "sim/kv_cache.h"

#include <cassert>

namespace tokenway::sim {

KvBlockPool::KvBlockPool(int64_t num_blocks, int block_size)
    : block_size_(block_size),
      refcounts_(num_blocks, 0),
      hashes_(num_blocks, 0),
      has_hash_(num_blocks, 0),
      prev_(num_blocks, kNoBlock),
      next_(num_blocks, kNoBlock) {
  for (BlockId b = 0; b < num_blocks; ++b) PushBack(b);
}

double KvBlockPool::Usage() const {
  if (refcounts_.empty()) return 0.0;
  return 1.0 - static_cast<double>(num_free_) / static_cast<double>(refcounts_.size());
}

void KvBlockPool::Unlink(BlockId block) {
  if (prev_[block] != kNoBlock)
    next_[prev_[block]] = next_[block];
  else
    head_ = next_[block];
  if (next_[block] != kNoBlock)
    prev_[next_[block]] = prev_[block];
  else
    tail_ = prev_[block];
  prev_[block] = next_[block] = kNoBlock;
  --num_free_;
}

void KvBlockPool::PushBack(BlockId block) {
  prev_[block] = tail_;
  next_[block] = kNoBlock;
  if (tail_ != kNoBlock)
    next_[tail_] = block;
  else
    head_ = block;
  tail_ = block;
  ++num_free_;
}

BlockId KvBlockPool::Allocate() {
  if (head_ == kNoBlock) return kNoBlock;
  const BlockId block = head_;
  Unlink(block);
  if (has_hash_[block]) {
    cached_.Erase(hashes_[block]);
    has_hash_[block] = 0;
    ++evictions_;
  }
  refcounts_[block] = 1;
  return block;
}

void KvBlockPool::PrefetchNextFree() const {
  if (head_ == kNoBlock) return;
  __builtin_prefetch(&next_[head_]);
  __builtin_prefetch(&prev_[head_]);
  PrefetchBlock(head_);
}

void KvBlockPool::PrefetchBlock(BlockId block) const {
  __builtin_prefetch(&hashes_[block]);
  __builtin_prefetch(&refcounts_[block]);
  __builtin_prefetch(&has_hash_[block]);
}

void KvBlockPool::Acquire(BlockId block) {
  if (refcounts_[block] == 0) Unlink(block);
  ++refcounts_[block];
}

void KvBlockPool::Release(BlockId block) {
  assert(refcounts_[block] > 0);
  if (--refcounts_[block] == 0) PushBack(block);
}

void KvBlockPool::RegisterCached(BlockId block, uint64_t hash) {
  if (has_hash_[block]) return;
  if (cached_.Insert(hash, block)) {
    hashes_[block] = hash;
    has_hash_[block] = 1;
  }
}

}  // namespace tokenway::sim
