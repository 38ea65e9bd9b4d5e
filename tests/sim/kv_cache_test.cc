#include "sim/kv_cache.h"

#include <gtest/gtest.h>

#include "sim/prefix_cache.h"

namespace tokenway::sim {
namespace {

TEST(KvBlockPoolTest, AllocatesUntilFullAndReusesReleasedBlocks) {
  KvBlockPool pool(3, 16);
  EXPECT_EQ(pool.num_free_blocks(), 3);
  const BlockId a = pool.Allocate(), b = pool.Allocate(), c = pool.Allocate();
  EXPECT_NE(a, kNoBlock);
  EXPECT_NE(b, kNoBlock);
  EXPECT_NE(c, kNoBlock);
  EXPECT_EQ(pool.Allocate(), kNoBlock);
  EXPECT_DOUBLE_EQ(pool.Usage(), 1.0);
  pool.Release(b);
  EXPECT_EQ(pool.num_free_blocks(), 1);
  EXPECT_EQ(pool.Allocate(), b);
}

TEST(KvBlockPoolTest, CachedBlocksSurviveReleaseAndAreEvictedLeastRecentlyFreedFirst) {
  KvBlockPool pool(2, 16);
  const BlockId a = pool.Allocate(), b = pool.Allocate();
  pool.RegisterCached(a, 111);
  pool.RegisterCached(b, 222);
  pool.Release(a);  // freed first => evicted first
  pool.Release(b);
  EXPECT_EQ(pool.FindCached(111), a);
  EXPECT_EQ(pool.FindCached(222), b);
  EXPECT_EQ(pool.num_free_blocks(), 2);
  EXPECT_EQ(pool.Allocate(), a);
  EXPECT_EQ(pool.FindCached(111), kNoBlock);
  EXPECT_EQ(pool.FindCached(222), b);
  EXPECT_EQ(pool.evictions(), 1u);
}

TEST(KvBlockPoolTest, AcquiringAFreeCachedBlockTakesItOffTheFreeList) {
  KvBlockPool pool(2, 16);
  const BlockId a = pool.Allocate();
  pool.RegisterCached(a, 7);
  pool.Release(a);
  pool.Acquire(pool.FindCached(7));
  EXPECT_EQ(pool.refcount(a), 1);
  EXPECT_EQ(pool.num_free_blocks(), 1);
  EXPECT_NE(pool.Allocate(), a);
  EXPECT_EQ(pool.Allocate(), kNoBlock);
}

TEST(KvBlockPoolTest, DuplicateContentIsNotRegisteredTwice) {
  KvBlockPool pool(2, 16);
  const BlockId a = pool.Allocate(), b = pool.Allocate();
  pool.RegisterCached(a, 5);
  pool.RegisterCached(b, 5);
  EXPECT_EQ(pool.FindCached(5), a);
  EXPECT_EQ(pool.num_cached_blocks(), 1u);
}

TEST(PrefixCacheTest, HashesAreChainedSoEqualBlocksWithDifferentPrefixesDiffer) {
  std::vector<uint32_t> x(32, 1), y(32, 1);
  y[0] = 2;  // first block differs, second block equal
  std::vector<uint64_t> hx, hy;
  ExtendBlockHashes(PrefixHashSeed("m"), x, 16, hx);
  ExtendBlockHashes(PrefixHashSeed("m"), y, 16, hy);
  ASSERT_EQ(hx.size(), 2u);
  EXPECT_NE(hx[1], hy[1]);
  std::vector<uint64_t> other_model;
  ExtendBlockHashes(PrefixHashSeed("adapter"), x, 16, other_model);
  EXPECT_NE(hx[0], other_model[0]);
  x.resize(47);  // partial blocks are not hashed
  std::vector<uint64_t> partial;
  ExtendBlockHashes(PrefixHashSeed("m"), x, 16, partial);
  EXPECT_EQ(partial.size(), 2u);
}

TEST(PrefixCacheTest, CountsOnlyTheLeadingCachedBlocks) {
  KvBlockPool pool(4, 16);
  pool.RegisterCached(pool.Allocate(), 10);
  pool.RegisterCached(pool.Allocate(), 30);
  EXPECT_EQ(CountCachedPrefixBlocks(pool, {10, 20, 30}, 10), 1u);
  EXPECT_EQ(CountCachedPrefixBlocks(pool, {20, 30}, 10), 0u);
  EXPECT_EQ(CountCachedPrefixBlocks(pool, {10, 30}, 1), 1u);
}

}  // namespace
}  // namespace tokenway::sim
