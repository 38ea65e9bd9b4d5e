// PrefixIndex: chained block hashes, hit fraction, LRU bound, eviction.
#include "routing/prefix_index.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace tokenway {
namespace {

std::vector<uint64_t> Blocks(std::string_view model, std::string_view text, uint32_t max = 8192) {
  std::vector<uint64_t> out;
  PrefixIndex::HashBlocks(model, text, 64, max, out);
  return out;
}

TEST(PrefixIndexTest, HashesAreChainedAndSeededByModel) {
  std::string a(64 * 4, 'a');
  std::string b = a;
  b[64 * 2] = 'b';  // differs in block 2
  auto ha = Blocks("m", a), hb = Blocks("m", b);
  ASSERT_EQ(ha.size(), 4u);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_EQ(ha[1], hb[1]);
  EXPECT_NE(ha[2], hb[2]);
  EXPECT_NE(ha[3], hb[3]);  // chained: a later block differs once an earlier one does
  EXPECT_NE(Blocks("m", a)[0], Blocks("other", a)[0]);
  EXPECT_EQ(ha[1] == ha[0], false);  // same bytes in block 0 and 1, different chain
  EXPECT_EQ(Blocks("m", std::string(63, 'x')).size(), 0u);  // partial blocks do not count
  EXPECT_EQ(Blocks("m", a, 2).size(), 2u);
}

TEST(PrefixIndexTest, MatchCountsLeadingBlocks) {
  PrefixIndex index({64, 1000, 8192}, 2);
  std::string shared(64 * 8, 's');
  auto req1 = Blocks("m", shared + std::string(64 * 2, 'x'));
  auto req2 = Blocks("m", shared + std::string(64 * 2, 'y'));
  index.Insert(0, req1);
  EXPECT_EQ(index.Match(0, req1), 10u);
  EXPECT_EQ(index.Match(0, req2), 8u);  // 8 of 10 leading blocks: hit fraction 0.8
  EXPECT_EQ(index.Match(1, req2), 0u);
  EXPECT_EQ(index.Match(7, req2), 0u);  // out of range is a miss, not a crash
}

TEST(PrefixIndexTest, LruBoundEvictsLeastRecentlyUsed) {
  PrefixIndex index({64, 16, 8192}, 1);
  auto a = Blocks("m", std::string(64 * 10, 'a'));
  auto b = Blocks("m", std::string(64 * 10, 'b'));
  index.Insert(0, a);
  index.Insert(0, b);
  EXPECT_EQ(index.Size(0), 16u);
  EXPECT_EQ(index.Match(0, b), 10u);  // the newest request is whole
  // a's head blocks were inserted most recently within a, so its tail went first.
  EXPECT_EQ(index.Match(0, a), 6u);
  index.Insert(0, a);  // touch a again: b's tail ages out now
  EXPECT_EQ(index.Match(0, a), 10u);
  EXPECT_EQ(index.Match(0, b), 6u);  // refreshing a never evicts a itself: b loses its tail
  EXPECT_EQ(index.Size(0), 16u);
}

TEST(PrefixIndexTest, EvictForgetsBlocks) {
  PrefixIndex index({64, 100, 8192}, 1);
  auto a = Blocks("m", std::string(64 * 5, 'a'));
  index.Insert(0, a);
  index.Evict(0, std::span<const uint64_t>(a).subspan(2, 1));
  EXPECT_EQ(index.Match(0, a), 2u);
  EXPECT_EQ(index.Size(0), 4u);
  index.Insert(0, a);
  EXPECT_EQ(index.Match(0, a), 5u);
}

TEST(PrefixIndexTest, ConcurrentInsertAndMatch) {
  PrefixIndex index({64, 256, 8192}, 4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        auto b = Blocks("m", std::string(64 * 8, static_cast<char>('a' + (i + t) % 20)));
        index.Insert(static_cast<uint32_t>(i % 4), b);
        (void)index.Match(static_cast<uint32_t>((i + 1) % 4), b);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (uint32_t e = 0; e < 4; ++e) EXPECT_LE(index.Size(e), 256u);
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(PrefixIndexCarry, EndpointsThatStayKeepTheirBlocks) {
  PrefixIndexConfig config;
  PrefixIndex old(config, 3);
  std::vector<uint64_t> a = {1, 2, 3}, b = {7, 8};
  old.Insert(0, a);
  old.Insert(2, b);
  // New list: the old endpoint 2 first, a new endpoint, then the old endpoint 0.
  std::vector<int32_t> carried = {2, -1, 0};
  PrefixIndex next(old, carried);
  EXPECT_EQ(next.endpoints(), 3u);
  EXPECT_EQ(next.Match(0, b), 2u);
  EXPECT_EQ(next.Match(1, a), 0u);
  EXPECT_EQ(next.Match(2, a), 3u);
  // The sets are shared: what a request still on the old snapshot teaches shows in the new one.
  std::vector<uint64_t> c = {1, 2, 3, 4};
  old.Insert(0, c);
  EXPECT_EQ(next.Match(2, c), 4u);
}

}  // namespace
}  // namespace tokenway
