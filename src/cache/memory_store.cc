#include "cache/memory_store.h"

namespace tokenway {

MemoryStore::MemoryStore(uint64_t max_bytes) : max_bytes_(max_bytes) {}

void MemoryStore::set_max_bytes(uint64_t max_bytes) {
  max_bytes_.store(max_bytes, std::memory_order_relaxed);
}

void MemoryStore::Erase(Shard& s, std::list<Node>::iterator it, bool evicted) {
  if (CacheStatsRow* row = it->entry->row) {
    row->bytes.fetch_sub(static_cast<int64_t>(it->bytes), std::memory_order_relaxed);
    row->entries.fetch_sub(1, std::memory_order_relaxed);
    if (evicted) row->evictions.fetch_add(1, std::memory_order_relaxed);
  }
  s.bytes.fetch_sub(it->bytes, std::memory_order_relaxed);
  s.entries.fetch_sub(1, std::memory_order_relaxed);
  s.index.erase(it->key);
  s.lru.erase(it);
}

MemoryStore::Lookup MemoryStore::Find(const CacheKey& key, int64_t now_ns,
                                      std::shared_ptr<const CacheEntry>& out) {
  Shard& s = ShardOf(key);
  std::unique_lock lock(s.mu, std::try_to_lock);
  if (!lock.owns_lock()) return Lookup::kBusy;
  auto found = s.index.find(key);
  if (found == s.index.end()) return Lookup::kMiss;
  auto it = found->second;
  if (it->expires_ns <= now_ns) {
    Erase(s, it, true);
    return Lookup::kMiss;
  }
  s.lru.splice(s.lru.begin(), s.lru, it);
  out = it->entry;
  return Lookup::kHit;
}

MemoryStore::Store MemoryStore::Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry,
                                    int64_t expires_ns) {
  const size_t bytes = entry->bytes();
  const uint64_t share = max_bytes_.load(std::memory_order_relaxed) / kShards;
  if (bytes > share) return Store::kTooLarge;
  Shard& s = ShardOf(key);
  std::unique_lock lock(s.mu, std::try_to_lock);
  if (!lock.owns_lock()) return Store::kBusy;
  if (auto found = s.index.find(key); found != s.index.end()) Erase(s, found->second, false);
  if (CacheStatsRow* row = entry->row) {
    row->bytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    row->entries.fetch_add(1, std::memory_order_relaxed);
  }
  s.lru.push_front(Node{key, std::move(entry), expires_ns, bytes});
  s.index.emplace(key, s.lru.begin());
  s.bytes.fetch_add(bytes, std::memory_order_relaxed);
  s.entries.fetch_add(1, std::memory_order_relaxed);
  while (s.bytes.load(std::memory_order_relaxed) > share && s.lru.size() > 1) {
    Erase(s, std::prev(s.lru.end()), true);
  }
  return Store::kStored;
}

size_t MemoryStore::Purge(std::string_view tenant, std::string_view model) {
  size_t removed = 0;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    for (auto it = s.lru.begin(); it != s.lru.end();) {
      auto next = std::next(it);
      const CacheEntry& e = *it->entry;
      if ((tenant.empty() || e.tenant == tenant) && (model.empty() || e.model == model)) {
        Erase(s, it, false);
        ++removed;
      }
      it = next;
    }
  }
  return removed;
}

uint64_t MemoryStore::bytes() const {
  uint64_t n = 0;
  for (const Shard& s : shards_) n += s.bytes.load(std::memory_order_relaxed);
  return n;
}

uint64_t MemoryStore::entries() const {
  uint64_t n = 0;
  for (const Shard& s : shards_) n += s.entries.load(std::memory_order_relaxed);
  return n;
}

}  // namespace tokenway
