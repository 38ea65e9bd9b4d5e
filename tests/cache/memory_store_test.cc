#include "cache/memory_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tokenway {
namespace {

constexpr int64_t kNow = 1'000'000'000;
constexpr int64_t kTtl = 60'000'000'000;

std::shared_ptr<CacheEntry> Entry(std::string tenant, std::string model, size_t content_bytes,
                                  CacheStatsRow* row = nullptr) {
  auto e = std::make_shared<CacheEntry>();
  e->tenant = std::move(tenant);
  e->model = std::move(model);
  e->response.content.assign(content_bytes, 'x');
  e->row = row;
  return e;
}

// Keys that land in shard 0 (the store shards by key.high).
CacheKey KeyInShard0(uint64_t n) {
  return CacheKey{n * MemoryStore::kShards, n};
}

TEST(MemoryStoreTest, FindsWhatWasPut) {
  MemoryStore store(16 << 20);
  std::shared_ptr<const CacheEntry> out;
  EXPECT_EQ(store.Find({1, 2}, kNow, out), MemoryStore::Lookup::kMiss);
  ASSERT_EQ(store.Put({1, 2}, Entry("t", "m", 100), kNow + kTtl), MemoryStore::Store::kStored);
  ASSERT_EQ(store.Find({1, 2}, kNow, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(out->response.content.size(), 100u);
  EXPECT_EQ(store.Find({1, 3}, kNow, out), MemoryStore::Lookup::kMiss);
  EXPECT_EQ(store.entries(), 1u);
  EXPECT_GT(store.bytes(), 100u);
}

TEST(MemoryStoreTest, ExpiredEntriesAreMissesAndDropped) {
  CacheStatsRow row("t", "m");
  MemoryStore store(16 << 20);
  store.Put({1, 2}, Entry("t", "m", 10, &row), kNow + 5);
  std::shared_ptr<const CacheEntry> out;
  EXPECT_EQ(store.Find({1, 2}, kNow + 4, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(store.Find({1, 2}, kNow + 5, out), MemoryStore::Lookup::kMiss);
  EXPECT_EQ(store.entries(), 0u);
  EXPECT_EQ(row.evictions.load(), 1u);
  EXPECT_EQ(row.entries.load(), 0);
  EXPECT_EQ(row.bytes.load(), 0);
}

TEST(MemoryStoreTest, BytesBoundEvictsLeastRecentlyUsed) {
  // One shard's share is max_bytes / kShards; each entry costs its content and some overhead.
  const size_t entry = Entry("t", "m", 1000)->bytes();
  MemoryStore store(MemoryStore::kShards * (3 * entry + entry / 2));
  CacheStatsRow row("t", "m");
  for (uint64_t i = 1; i <= 3; ++i) {
    ASSERT_EQ(store.Put(KeyInShard0(i), Entry("t", "m", 1000, &row), kNow + kTtl),
              MemoryStore::Store::kStored);
  }
  std::shared_ptr<const CacheEntry> out;
  // Touch 1: 2 is now the least recently used.
  ASSERT_EQ(store.Find(KeyInShard0(1), kNow, out), MemoryStore::Lookup::kHit);
  ASSERT_EQ(store.Put(KeyInShard0(4), Entry("t", "m", 1000, &row), kNow + kTtl),
            MemoryStore::Store::kStored);
  EXPECT_EQ(store.Find(KeyInShard0(2), kNow, out), MemoryStore::Lookup::kMiss);
  EXPECT_EQ(store.Find(KeyInShard0(1), kNow, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(store.Find(KeyInShard0(3), kNow, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(store.Find(KeyInShard0(4), kNow, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(row.evictions.load(), 1u);
  EXPECT_EQ(row.entries.load(), 3);
  EXPECT_LE(store.bytes(), store.max_bytes() / MemoryStore::kShards);
}

TEST(MemoryStoreTest, EntryLargerThanAShardIsRefused) {
  MemoryStore store(MemoryStore::kShards * 4096);
  EXPECT_EQ(store.Put({1, 1}, Entry("t", "m", 8192), kNow + kTtl), MemoryStore::Store::kTooLarge);
  EXPECT_EQ(store.entries(), 0u);
}

TEST(MemoryStoreTest, ReplacingAKeyKeepsTheAccountsRight) {
  CacheStatsRow row("t", "m");
  MemoryStore store(16 << 20);
  store.Put({1, 1}, Entry("t", "m", 100, &row), kNow + kTtl);
  store.Put({1, 1}, Entry("t", "m", 300, &row), kNow + kTtl);
  EXPECT_EQ(store.entries(), 1u);
  EXPECT_EQ(row.entries.load(), 1);
  EXPECT_EQ(static_cast<uint64_t>(row.bytes.load()), store.bytes());
  std::shared_ptr<const CacheEntry> out;
  ASSERT_EQ(store.Find({1, 1}, kNow, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(out->response.content.size(), 300u);
}

TEST(MemoryStoreTest, PurgeByTenantAndByModel) {
  MemoryStore store(16 << 20);
  store.Put({1, 1}, Entry("a", "m1", 10), kNow + kTtl);
  store.Put({2, 2}, Entry("a", "m2", 10), kNow + kTtl);
  store.Put({3, 3}, Entry("b", "m1", 10), kNow + kTtl);
  store.Put({4, 4}, Entry("b", "m2", 10), kNow + kTtl);
  EXPECT_EQ(store.Purge("a", "m1"), 1u);
  EXPECT_EQ(store.Purge("", "m2"), 2u);
  EXPECT_EQ(store.Purge("c", ""), 0u);
  std::shared_ptr<const CacheEntry> out;
  EXPECT_EQ(store.Find({3, 3}, kNow, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(store.Purge("", ""), 1u);
  EXPECT_EQ(store.entries(), 0u);
  EXPECT_EQ(store.bytes(), 0u);
}

TEST(MemoryStoreTest, BusyShardIsReportedNotWaitedFor) {
  MemoryStore store(16 << 20);
  store.Put({1, 1}, Entry("t", "m", 10), kNow + kTtl);
  std::shared_ptr<const CacheEntry> out;
  {
    auto hold = store.HoldShard({1, 1});
    // Another thread (a worker) meets the held shard: busy at once, never a wait.
    std::thread worker([&] {
      EXPECT_EQ(store.Find({1, 1}, kNow, out), MemoryStore::Lookup::kBusy);
      EXPECT_EQ(store.Put({1, 1}, Entry("t", "m", 20), kNow + kTtl), MemoryStore::Store::kBusy);
      // Another shard is not affected.
      EXPECT_EQ(store.Put({2, 2}, Entry("t", "m", 20), kNow + kTtl), MemoryStore::Store::kStored);
    });
    worker.join();
  }
  ASSERT_EQ(store.Find({1, 1}, kNow, out), MemoryStore::Lookup::kHit);
  EXPECT_EQ(out->response.content.size(), 10u);
}

TEST(MemoryStoreTest, ConcurrentWorkersKeepTheAccountsConsistent) {
  CacheStatsRow row("t", "m");
  MemoryStore store(MemoryStore::kShards * 64 * 1024);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::shared_ptr<const CacheEntry> out;
      for (uint64_t i = 0; i < 5000; ++i) {
        const CacheKey k{i * 7 + static_cast<uint64_t>(t), i};
        store.Put(k, Entry("t", "m", 200 + i % 300, &row), kNow + kTtl);
        store.Find(CacheKey{i * 3, i / 2}, kNow, out);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(static_cast<uint64_t>(row.entries.load()), store.entries());
  EXPECT_EQ(static_cast<uint64_t>(row.bytes.load()), store.bytes());
  EXPECT_LE(store.bytes(), store.max_bytes());
}

}  // namespace
}  // namespace tokenway
