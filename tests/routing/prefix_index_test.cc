// PrefixIndex: chained tiered block hashes, leading-block matches for one endpoint and for the
// whole pool in one walk, bounded table with oldest-first replacement, eviction, and concurrent
// use from two threads (also run under TSan).
#include "routing/prefix_index.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace tokenway {
namespace {

constexpr int64_t kTick = int64_t{1} << 24;  // the index's age tick

std::vector<uint64_t> Blocks(std::string_view model, std::string_view text, uint32_t max = 8192) {
  std::vector<uint64_t> out;
  PrefixIndex::HashBlocks(model, text, 64, max, out);
  return out;
}

// `blocks` blocks' worth of distinct text: request `n` of a test.
std::string Prompt(int n, uint32_t blocks) {
  std::string s(PrefixIndex::CoveredBytes(64, blocks), 'x');
  std::string tag = "request " + std::to_string(n) + ";";
  s.replace(0, tag.size(), tag);
  return s;
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

TEST(PrefixIndexTest, BlocksGrowByTierAndDependOnlyOnPosition) {
  for (uint32_t i = 0; i < 32; ++i) EXPECT_EQ(PrefixIndex::BlockSize(64, i), 64u) << i;
  EXPECT_EQ(PrefixIndex::BlockSize(64, 32), 128u);
  EXPECT_EQ(PrefixIndex::BlockSize(64, 47), 128u);
  EXPECT_EQ(PrefixIndex::BlockSize(64, 48), 256u);
  EXPECT_EQ(PrefixIndex::BlockSize(64, 1000), PrefixIndex::kMaxBlockBytes);
  EXPECT_EQ(PrefixIndex::BlockSize(65536, 1u << 20), PrefixIndex::kMaxBlockBytes);
  uint64_t sum = 0;
  for (uint32_t n = 0; n < 600; ++n) {
    ASSERT_EQ(PrefixIndex::CoveredBytes(64, n), sum) << n;
    sum += PrefixIndex::BlockSize(64, n);
  }
  EXPECT_EQ(PrefixIndex::CoveredBytes(64, 32 + 16), 2048u + 16 * 128);

  // A 432 KiB prompt: 155 blocks, not 6,912; its last full block ends within the text.
  std::string big(432 * 1024, 'w');
  auto hb = Blocks("m", big);
  EXPECT_EQ(hb.size(), 155u);
  EXPECT_LE(PrefixIndex::CoveredBytes(64, 155), big.size());
  EXPECT_GT(PrefixIndex::CoveredBytes(64, 156), big.size());
  EXPECT_EQ(Blocks("m", big, 100).size(), 100u);

  // Two prompts sharing 60 KiB share every block that ends inside it, and no later one.
  std::string other = big.substr(0, 60 * 1024) + std::string(100 * 1024, 'v');
  auto ho = Blocks("m", other);
  uint32_t inside = 0;
  while (PrefixIndex::CoveredBytes(64, inside + 1) <= 60 * 1024) ++inside;
  for (uint32_t i = 0; i < inside; ++i) ASSERT_EQ(hb[i], ho[i]) << i;
  EXPECT_NE(hb[inside], ho[inside]);
}

TEST(PrefixIndexTest, MatchCountsLeadingBlocks) {
  PrefixIndex index({64, 1000, 8192}, 2);
  std::string shared(64 * 8, 's');
  auto req1 = Blocks("m", shared + std::string(64 * 2, 'x'));
  auto req2 = Blocks("m", shared + std::string(64 * 2, 'y'));
  EXPECT_EQ(index.Insert(0, req1), 0u);
  EXPECT_EQ(index.Match(0, req1), 10u);
  EXPECT_EQ(index.Match(0, req2), 8u);  // 8 of 10 leading blocks: hit fraction 0.8
  EXPECT_EQ(index.Match(1, req2), 0u);
  EXPECT_EQ(index.Match(7, req2), 0u);   // out of range is a miss, not a crash
  EXPECT_EQ(index.Insert(7, req2), 0u);  // and so is learning for it
  EXPECT_EQ(index.Insert(0, req2), 8u);  // learning says what the endpoint already held
  EXPECT_EQ(index.Match(0, req2), 10u);
}

TEST(PrefixIndexTest, MatchAllFindsEveryHolderInOneWalk) {
  PrefixIndex index({64, 1000, 8192}, 16);
  auto p = Blocks("m", Prompt(1, 60));
  std::span<const uint64_t> all(p);
  index.Insert(3, all);
  index.Insert(5, all.first(40));
  index.Insert(9, all.first(1));
  index.Insert(11, all.subspan(1));  // not block 0: holds no leading block
  PrefixMatch m = index.MatchAll(p);
  EXPECT_EQ(m.count, 3u);
  EXPECT_EQ(m.BlocksOf(3), 60u);
  EXPECT_EQ(m.BlocksOf(5), 40u);
  EXPECT_EQ(m.BlocksOf(9), 1u);
  EXPECT_EQ(m.BlocksOf(11), 0u);
  EXPECT_EQ(m.BlocksOf(0), 0u);
  for (uint32_t e : {3u, 5u, 9u, 11u, 0u}) EXPECT_EQ(m.BlocksOf(e), index.Match(e, p)) << e;
  EXPECT_EQ(index.MatchAll(Blocks("m", Prompt(2, 60))).count, 0u);
  EXPECT_EQ(index.MatchAll({}).count, 0u);
}

TEST(PrefixIndexTest, OldestEntriesGoFirstAndTheTableStaysBounded) {
  // 1,024 slots for 60 requests of 40 blocks (2,400 entries), one tick apart.
  PrefixIndex index({64, 1024, 8192}, 1);
  ASSERT_EQ(index.slots(), 1024u);
  std::vector<std::vector<uint64_t>> req;
  for (int n = 0; n < 60; ++n) req.push_back(Blocks("m", Prompt(n, 40)));
  int64_t now = kTick * 1000;
  for (int n = 0; n < 60; ++n) {
    index.Insert(0, req[n], now += kTick);
    index.Insert(0, req[0], now);  // request 0 is used again every time
  }
  EXPECT_LE(index.Size(0), index.slots());
  EXPECT_GT(index.Size(0), index.slots() / 2);  // replacement fills buckets, not one per block
  EXPECT_EQ(index.Match(0, req[59]), 40u);      // the newest request is whole
  EXPECT_EQ(index.Match(0, req[0]), 40u);       // so is the one refreshed each time
  EXPECT_LT(index.Match(0, req[1]), 40u);       // the oldest others lost blocks
  uint32_t old_total = 0, new_total = 0;
  for (int n = 1; n <= 10; ++n) old_total += index.Match(0, req[n]);
  for (int n = 50; n <= 59; ++n) new_total += index.Match(0, req[n]);
  EXPECT_LT(old_total, new_total);
}

TEST(PrefixIndexTest, EvictForgetsBlocks) {
  PrefixIndex index({64, 100, 8192}, 1);
  auto a = Blocks("m", std::string(64 * 5, 'a'));
  index.Insert(0, a);
  index.Evict(0, std::span<const uint64_t>(a).subspan(2, 1));
  EXPECT_EQ(index.Match(0, a), 2u);
  EXPECT_EQ(index.MatchAll(a).BlocksOf(0), 2u);
  EXPECT_EQ(index.Size(0), 4u);
  EXPECT_EQ(index.Insert(0, a), 2u);
  EXPECT_EQ(index.Match(0, a), 5u);
  index.Evict(0, a);
  EXPECT_EQ(index.Size(0), 0u);
  index.Evict(3, a);  // out of range: nothing happens
}

TEST(PrefixIndexTest, ConcurrentInsertMatchAndEvictKeepInvariants) {
  // Two threads share one index: each learns, matches and evicts prompts for its own two
  // endpoints, some prompts shared between the threads. Only thread t writes endpoints 2t and
  // 2t+1, and the table has room for everything, so each thread's own view is exact while
  // the other thread writes the same buckets.
  constexpr uint32_t kEndpoints = 4, kBlocks = 40;
  PrefixIndex index({64, 65536, 8192}, kEndpoints);
  std::vector<std::vector<uint64_t>> prompts;
  for (int n = 0; n < 20; ++n) prompts.push_back(Blocks("m", Prompt(n, kBlocks)));
  std::atomic<int> violations{0}, ready{0};
  auto run = [&](uint32_t t) {
    ready.fetch_add(1);
    while (ready.load() < 2) std::this_thread::yield();  // start together
    for (int i = 0; i < 3000; ++i) {
      const auto& p = prompts[static_cast<size_t>((i * 7 + static_cast<int>(t) * 3) % 20)];
      const uint32_t e = 2 * t + static_cast<uint32_t>(i % 2);
      index.Insert(e, p);
      if (index.Match(e, p) != kBlocks) ++violations;
      PrefixMatch m = index.MatchAll(p);
      if (m.count > PrefixMatch::kMax || m.BlocksOf(e) != kBlocks) ++violations;
      for (uint32_t k = 0; k < m.count; ++k) {
        if (m.endpoint[k] >= kEndpoints || m.blocks[k] == 0 || m.blocks[k] > kBlocks) ++violations;
      }
      if (i % 5 == 0) {
        std::span<const uint64_t> tail = std::span<const uint64_t>(p).subspan(10);
        index.Evict(e, tail);
        if (index.Match(e, p) != 10) ++violations;
      }
    }
  };
  std::thread other(run, 1u);
  run(0);
  other.join();
  EXPECT_EQ(violations.load(), 0);
  uint64_t total = 0;
  for (uint32_t e = 0; e < kEndpoints; ++e) total += index.Size(e);
  EXPECT_LE(total, index.slots());
  EXPECT_LE(total, uint64_t{20} * kBlocks * kEndpoints);
  for (uint32_t e = 0; e < kEndpoints; ++e) {
    index.Insert(e, prompts[e]);
    EXPECT_EQ(index.MatchAll(prompts[e]).BlocksOf(e), kBlocks);
  }
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
  EXPECT_EQ(next.Size(1), 0u);
  // The old index is untouched (requests on the previous snapshot still use its ids).
  EXPECT_EQ(old.Match(0, a), 3u);
  EXPECT_TRUE(PrefixIndex::CarryFits(old, 6));
  EXPECT_FALSE(PrefixIndex::CarryFits(old, 7));
  EXPECT_FALSE(PrefixIndex::CarryFits(PrefixIndex(config, 8), 3));
}

}  // namespace
}  // namespace tokenway
