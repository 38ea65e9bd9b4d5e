#include "sim/cached_block_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace tokenway::sim {
namespace {

TEST(CachedBlockTableTest, FindsWhatWasInsertedAndRefusesADuplicateKey) {
  CachedBlockTable table;
  EXPECT_EQ(table.Find(42, -1), -1);
  EXPECT_TRUE(table.Insert(42, 7));
  EXPECT_FALSE(table.Insert(42, 8));
  EXPECT_EQ(table.Find(42, -1), 7);
  EXPECT_EQ(table.size(), 1u);
  table.Erase(42);
  EXPECT_EQ(table.Find(42, -1), -1);
  EXPECT_EQ(table.size(), 0u);
  table.Erase(42);  // absent: nothing happens
  EXPECT_EQ(table.size(), 0u);
}

TEST(CachedBlockTableTest, ErasingInsideACollisionRunKeepsTheRestOfTheRunFindable) {
  // Keys that all map to the same home slot form one probe run; erase from its middle and start.
  CachedBlockTable table;
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; k <= 6; ++k) {
    // The table multiplies by 0x9E3779B97F4A7C15 and keeps the top bits; times its inverse
    // modulo 2^64, key * multiplier == k, whose top bits are 0: every key's home is slot 0.
    keys.push_back(k * 0xF1DE83E19937733Dull);
  }
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_TRUE(table.Insert(keys[i], int32_t(i)));
  table.Erase(keys[2]);
  table.Erase(keys[0]);
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(table.Find(keys[i], -1), i == 0 || i == 2 ? -1 : int32_t(i)) << i;
  }
}

TEST(CachedBlockTableTest, AgreesWithAReferenceMapThroughRandomInsertsAndErasures) {
  // Small key space so that inserts collide with live keys and erasures hit; the table grows
  // through several sizes on the way.
  CachedBlockTable table;
  std::unordered_map<uint64_t, int32_t> reference;
  std::mt19937_64 rng(14);
  for (int step = 0; step < 200000; ++step) {
    const uint64_t key = rng() % 5000 * 0x100000001B3ull;
    const int op = static_cast<int>(rng() % 3);
    if (op == 0) {
      const auto block = static_cast<int32_t>(rng() % 100000);
      EXPECT_EQ(table.Insert(key, block), reference.emplace(key, block).second);
    } else if (op == 1) {
      table.Erase(key);
      reference.erase(key);
    } else {
      auto it = reference.find(key);
      ASSERT_EQ(table.Find(key, -1), it == reference.end() ? -1 : it->second) << step;
    }
    ASSERT_EQ(table.size(), reference.size());
  }
  for (const auto& [key, block] : reference) EXPECT_EQ(table.Find(key, -1), block);
}

}  // namespace
}  // namespace tokenway::sim
