// Version splits: weighted rendezvous choice within 1 % of the weights over 10,000 keys,
// stickiness when a weight moves, run-time weights that survive reloads, shadow shares.
#include "routing/version_split.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace tokenway {
namespace {

constexpr int kKeys = 10000;

std::vector<int> Assign(const std::vector<double>& weights, const std::vector<uint64_t>& seeds) {
  std::vector<int> out;
  out.reserve(kKeys);
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = "user-" + std::to_string(k);
    out.push_back(PickVersion(StickyKeyHash(key), weights, seeds));
  }
  return out;
}

std::vector<uint64_t> Seeds(std::initializer_list<const char*> names) {
  std::vector<uint64_t> seeds;
  for (const char* n : names) seeds.push_back(VersionSeed(n));
  return seeds;
}

TEST(VersionSplitTest, DistributionWithinOnePercentOfWeights) {
  const auto seeds = Seeds({"stable", "canary", "experiment"});
  for (const std::vector<double>& weights :
       {std::vector<double>{90, 10, 0}, std::vector<double>{50, 30, 20},
        std::vector<double>{1, 1, 1}, std::vector<double>{99, 1, 0}}) {
    const std::vector<int> chosen = Assign(weights, seeds);
    std::array<int, 3> counts{};
    for (int c : chosen) {
      ASSERT_GE(c, 0);
      ++counts[static_cast<size_t>(c)];
    }
    double total = 0;
    for (double w : weights) total += w;
    for (size_t i = 0; i < weights.size(); ++i) {
      const double share = static_cast<double>(counts[i]) / kKeys;
      EXPECT_NEAR(share, weights[i] / total, 0.01)
          << "version " << i << " of weights " << weights[0] << "/" << weights[1] << "/"
          << weights[2];
      if (weights[i] == 0) {
        EXPECT_EQ(counts[i], 0);
      }
    }
  }
}

TEST(VersionSplitTest, RaisingAWeightOnlyMovesKeysOntoThatVersion) {
  const auto seeds = Seeds({"stable", "canary", "experiment"});
  // The canary's weight rises step by step (10 % → 20 % → 50 %), a third version alongside.
  std::vector<double> weights = {80, 10, 10};
  std::vector<int> before = Assign(weights, seeds);
  for (double canary : {22.5, 60.0, 200.0}) {
    weights[1] = canary;
    const std::vector<int> after = Assign(weights, seeds);
    int moved_on = 0;
    for (int k = 0; k < kKeys; ++k) {
      if (before[k] == after[k]) continue;
      // Nobody leaves the canary, and nobody moves between the other versions.
      EXPECT_NE(before[k], 1) << "key " << k << " left the version whose weight rose";
      EXPECT_EQ(after[k], 1) << "key " << k << " moved to a version whose weight did not change";
      ++moved_on;
    }
    EXPECT_GT(moved_on, 0);
    before = after;
  }
}

TEST(VersionSplitTest, LoweringAWeightOnlyMovesKeysOffThatVersion) {
  const auto seeds = Seeds({"a", "b", "c"});
  const std::vector<int> before = Assign({30, 40, 30}, seeds);
  const std::vector<int> after = Assign({30, 10, 30}, seeds);
  for (int k = 0; k < kKeys; ++k) {
    if (before[k] != after[k]) {
      EXPECT_EQ(before[k], 1);
    }
  }
}

TEST(VersionSplitTest, SameKeySameVersionAndOrderDoesNotMatter) {
  const uint64_t h = StickyKeyHash("alice");
  const std::vector<uint64_t> ab = Seeds({"a", "b"});
  const std::vector<uint64_t> ba = Seeds({"b", "a"});
  for (int i = 0; i < 100; ++i) {
    const uint64_t key = StickyKeyHash("user-" + std::to_string(i));
    const int x = PickVersion(key, std::vector<double>{3, 7}, ab);
    const int y = PickVersion(key, std::vector<double>{7, 3}, ba);
    EXPECT_EQ(x, 1 - y);  // the same version, listed the other way round
  }
  EXPECT_EQ(PickVersion(h, std::vector<double>{1, 1}, ab),
            PickVersion(h, std::vector<double>{1, 1}, ab));
}

TEST(VersionSplitTest, NoPositiveWeightChoosesNothing) {
  const auto seeds = Seeds({"a", "b"});
  EXPECT_EQ(PickVersion(1, std::vector<double>{0, 0}, seeds), -1);
  EXPECT_EQ(PickVersion(1, std::vector<double>{-1, 0}, seeds), -1);
  EXPECT_EQ(PickVersion(1, std::vector<double>{0, 5}, seeds), 1);
}

TEST(VersionSplitTest, RunTimeWeightsOverrideAndSurviveReloads) {
  VersionWeights weights;
  auto stable = weights.Cell("m", "stable", 90);
  auto canary = weights.Cell("m", "canary", 10);
  EXPECT_EQ(canary->weight.load(), 10);
  EXPECT_FALSE(weights.Set("m", "unknown", 5));
  EXPECT_FALSE(weights.Set("m", "canary", -1));
  EXPECT_TRUE(weights.Set("m", "canary", 25));
  EXPECT_EQ(canary->weight.load(), 25);
  // A reload (Cell again, maybe with another configured weight) keeps the run-time weight...
  auto again = weights.Cell("m", "canary", 15);
  EXPECT_EQ(again.get(), canary.get());
  EXPECT_EQ(again->weight.load(), 25);
  EXPECT_EQ(again->configured.load(), 15);
  // ...while versions nobody set follow the configuration.
  weights.Cell("m", "stable", 80);
  EXPECT_EQ(stable->weight.load(), 80);
  EXPECT_EQ(*weights.Weight("m", "canary"), 25);
  EXPECT_TRUE(weights.Reset("m", "canary"));
  EXPECT_EQ(canary->weight.load(), 15);
  EXPECT_FALSE(weights.Weight("x", "canary").has_value());
  auto all = weights.All();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].version, "canary");
  EXPECT_FALSE(all[0].overridden);
}

TEST(VersionSplitTest, ShadowShareByRequestId) {
  int in = 0;
  for (int i = 0; i < kKeys; ++i) {
    if (InShare(StickyKeyHash("req-" + std::to_string(i)), 20)) ++in;
  }
  EXPECT_NEAR(static_cast<double>(in) / kKeys, 0.20, 0.01);
  EXPECT_FALSE(InShare(12345, 0));
  EXPECT_TRUE(InShare(12345, 100));
  EXPECT_EQ(InShare(777, 50), InShare(777, 50));
}

}  // namespace
}  // namespace tokenway
