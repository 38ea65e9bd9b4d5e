// MemoryStore: the response cache's in-process store, shared by every worker of the process —
// bounded by bytes, least recently used first out, every entry with its own expiry (TTL).
//
// A worker never waits for it: the store is split into shards by key, each behind its own
// mutex that workers only ever try-lock. A lookup that finds its shard busy is a miss, a store
// that finds it busy is skipped (both counted); the admin thread's purge takes the locks
// normally. Entries are immutable and shared (shared_ptr): a lookup copies the pointer out under
// the lock and renders the answer after releasing it. Expired entries are dropped when a lookup
// or the eviction scan meets them.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/cache_key.h"
#include "cache/cache_stats.h"
#include "cache/cached_response.h"

namespace tokenway {

// One stored answer and what it is filed under (for purges and the per-row gauges).
struct CacheEntry {
  std::string tenant;
  std::string model;  // the served model
  CachedResponse response;
  CacheStatsRow* row = nullptr;  // the (tenant, model) counters; lives as long as the process
  size_t bytes() const {
    return sizeof(CacheEntry) + tenant.size() + model.size() + response.bytes();
  }
};

class MemoryStore {
 public:
  static constexpr size_t kShards = 16;

  explicit MemoryStore(uint64_t max_bytes);
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Control thread (reload): a new bound; shards over it shrink at their next store.
  void set_max_bytes(uint64_t max_bytes);

  enum class Lookup : uint8_t { kHit, kMiss, kBusy };
  // Worker: the entry under `key` when present and not expired at `now_ns` (it becomes the most
  // recently used).
  Lookup Find(const CacheKey& key, int64_t now_ns, std::shared_ptr<const CacheEntry>& out);

  enum class Store : uint8_t { kStored, kTooLarge, kBusy };
  // Worker: files `entry` under `key` until `expires_ns`, replacing what was there, then evicts
  // from the least recently used end until the shard is within its share of the bound.
  Store Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry, int64_t expires_ns);

  // Admin thread: removes every entry of `tenant` and/or `model` (an empty one matches all);
  // returns how many. Waits for each shard's lock.
  size_t Purge(std::string_view tenant, std::string_view model);

  // Holds the shard `key` belongs to until the lock is released: lookups and stores of workers on
  // it report kBusy meanwhile. For maintenance on the admin thread, and for tests of that rule.
  std::unique_lock<std::mutex> HoldShard(const CacheKey& key) {
    return std::unique_lock<std::mutex>(ShardOf(key).mu);
  }

  uint64_t bytes() const;
  uint64_t entries() const;
  uint64_t max_bytes() const { return max_bytes_.load(std::memory_order_relaxed); }

 private:
  struct Node {
    CacheKey key;
    std::shared_ptr<const CacheEntry> entry;
    int64_t expires_ns = 0;
    size_t bytes = 0;
  };
  struct alignas(64) Shard {
    std::mutex mu;
    std::list<Node> lru;  // front: most recently used
    std::unordered_map<CacheKey, std::list<Node>::iterator, CacheKeyHash> index;
    std::atomic<uint64_t> bytes{0};
    std::atomic<uint64_t> entries{0};
  };
  Shard& ShardOf(const CacheKey& key) { return shards_[key.high % kShards]; }
  // Under the shard's lock: drops the node (counting an eviction when `evicted`).
  void Erase(Shard& s, std::list<Node>::iterator it, bool evicted);

  std::atomic<uint64_t> max_bytes_;
  Shard shards_[kShards];
};

}  // namespace tokenway
