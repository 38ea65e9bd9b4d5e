#include "sim/profiles.h"

#include <gtest/gtest.h>

namespace tokenway::sim {
namespace {

TEST(ProfilesTest, H100StepTimeMatchesTheReferenceFit) {
  const auto h100 = FindProfile("h100-8b");
  ASSERT_TRUE(h100.has_value());
  // Batch 1 decode at 1k context: ~7.15 ms per token.
  EXPECT_NEAR(h100->StepMs(1, 1024), 7.15, 0.1);
  // Reference §3.6 pure-decode table.
  EXPECT_NEAR(h100->StepMs(32, 32 * 1024), 8.7, 8.7 * 0.05);
  EXPECT_NEAR(h100->StepMs(128, 128 * 1024), 13.5, 13.5 * 0.05);
  EXPECT_NEAR(h100->StepMs(256, 256 * 512), 15.7, 15.7 * 0.05);
  // Compute-bound prefill: 8192 tokens cost 0.032 ms each.
  EXPECT_NEAR(h100->StepMs(8192, 8192), 8192 * 0.032 + 0.4 + 1.1, 0.1);
  EXPECT_EQ(h100->kv_pool_tokens, 420900);
  EXPECT_EQ(h100->max_num_seqs, 1024);
  EXPECT_EQ(h100->max_num_batched_tokens, 8192);
}

TEST(ProfilesTest, OtherProfilesAreOrderedBySpeed) {
  for (const auto& name : ProfileNames()) ASSERT_TRUE(FindProfile(name).has_value()) << name;
  const double h100 = FindProfile("h100-8b")->StepMs(1, 1024);
  EXPECT_GT(FindProfile("a100-8b")->StepMs(1, 1024), h100);
  EXPECT_GT(FindProfile("l4-8b")->StepMs(1, 1024), FindProfile("a100-8b")->StepMs(1, 1024));
  EXPECT_LT(FindProfile("h200-8b")->StepMs(1, 1024), h100);
  EXPECT_GT(FindProfile("h100x4-70b")->StepMs(1, 1024), h100);
  EXPECT_FALSE(FindProfile("tpu").has_value());
}

}  // namespace
}  // namespace tokenway::sim
