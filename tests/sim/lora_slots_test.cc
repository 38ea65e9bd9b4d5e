#include "sim/lora_slots.h"

#include <gtest/gtest.h>

namespace tokenway::sim {
namespace {

TEST(LoraSlotsTest, LoadsIntoFreeSlotsThenSwapsOnlyIdleAdapters) {
  LoraSlots slots(2);
  EXPECT_EQ(slots.Acquire("a"), std::optional<bool>(true));
  EXPECT_EQ(slots.Acquire("a"), std::optional<bool>(false));  // resident: no load
  EXPECT_EQ(slots.Acquire("b"), std::optional<bool>(true));
  EXPECT_FALSE(slots.CanAcquire("c"));
  EXPECT_EQ(slots.Acquire("c"), std::nullopt);
  slots.Release("b");
  EXPECT_TRUE(slots.CanAcquire("c"));
  EXPECT_EQ(slots.Acquire("c"), std::optional<bool>(true));
  EXPECT_FALSE(slots.IsResident("b"));
  EXPECT_EQ(slots.RunningAdapters(), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(slots.loads(), 3u);
}

TEST(LoraSlotsTest, EvictRemovesOnlyIdleAdapters) {
  LoraSlots slots(1);
  ASSERT_TRUE(slots.Acquire("a").has_value());
  slots.Evict("a");
  EXPECT_TRUE(slots.IsResident("a"));
  slots.Release("a");
  slots.Evict("a");
  EXPECT_FALSE(slots.IsResident("a"));
}

}  // namespace
}  // namespace tokenway::sim
