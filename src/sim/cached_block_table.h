// CachedBlockTable: the prefix cache's index from a block's chained content hash to the KV block
// holding it — an open-addressing hash table with linear probing, one 16-byte slot per entry, so
// a lookup is usually one cache line where a node-based map costs two or three misses (with a
// fleet of engines in one process, every lookup starts cold).
//
// Keys are unique (a second insert of the same hash is refused, as in the prefix cache); erasure
// shifts the following entries back, so there are no tombstones and lookups never degrade. The
// table doubles when it is half full and never shrinks; it holds at most one entry per KV block.
// Owned by one KvBlockPool; single-threaded like the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tokenway::sim {

class CachedBlockTable {
 public:
  // The block stored under `hash`, or `missing`.
  int32_t Find(uint64_t hash, int32_t missing) const;
  // Stores `block` (>= 0) under `hash` unless `hash` is present; returns whether it stored it.
  bool Insert(uint64_t hash, int32_t block);
  // Removes `hash` if present.
  void Erase(uint64_t hash);
  // Starts loading the slot `hash` maps to (a caller about to look several hashes up).
  void Prefetch(uint64_t hash) const;
  std::size_t size() const { return size_; }

 private:
  static constexpr int32_t kEmpty = -1;
  struct Slot {
    uint64_t hash = 0;
    int32_t block = kEmpty;
  };
  std::size_t Home(uint64_t hash) const {
    // The hashes are XXH64 values already; the multiply only guards against patterned keys.
    return static_cast<std::size_t>((hash * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void Grow();

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  int shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace tokenway::sim
