#include "fleetsim/event_queue.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace tokenway::fleetsim {
namespace {

TEST(EventQueueTest, PopsInTimeOrder) {
  EventQueue q;
  q.Push(30, 1, 0, 3);
  q.Push(10, 1, 0, 1);
  q.Push(20, 1, 0, 2);
  std::vector<uint64_t> order;
  while (!q.empty()) order.push_back(q.Pop().data);
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(q.now(), 30);
}

TEST(EventQueueTest, EqualTimesPopInPushOrder) {
  EventQueue q;
  for (uint64_t i = 0; i < 100; ++i) q.Push(5, 0, 0, i);
  q.Push(4, 0, 0, 1000);
  EXPECT_EQ(q.Pop().data, 1000u);
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(q.Pop().data, i);
}

TEST(EventQueueTest, MatchesAStableSortOfRandomEvents) {
  std::mt19937_64 rng(7);
  EventQueue q;
  std::vector<std::pair<int64_t, uint64_t>> expected;
  for (uint64_t i = 0; i < 5000; ++i) {
    const int64_t t = static_cast<int64_t>(rng() % 50);  // many ties
    q.Push(t, 0, 0, i);
    expected.emplace_back(t, i);
  }
  std::stable_sort(expected.begin(), expected.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [t, i] : expected) {
    const Event e = q.Pop();
    ASSERT_EQ(e.time_ns, t);
    ASSERT_EQ(e.data, i);
  }
  EXPECT_TRUE(q.empty());
}

TEST(EventQueueTest, TopAndSecondAreTheNextTwoPops) {
  std::mt19937_64 rng(11);
  EventQueue q;
  EXPECT_EQ(q.second(), nullptr);
  for (uint64_t i = 0; i < 3000; ++i) q.Push(static_cast<int64_t>(rng() % 40), 0, 0, i);
  while (!q.empty()) {
    const uint64_t top = q.top().data;
    const Event* second = q.second();
    const uint64_t after = second ? second->data : UINT64_MAX;
    ASSERT_EQ(q.Pop().data, top);
    if (q.empty()) {
      EXPECT_EQ(second, nullptr);
      break;
    }
    ASSERT_EQ(q.top().data, after);
  }
}

TEST(EventQueueTest, AnEventScheduledInThePastHappensNowAfterTheOthersDueNow) {
  EventQueue q;
  q.Push(100, 0, 0, 1);
  q.Push(100, 0, 0, 2);
  EXPECT_EQ(q.Pop().data, 1u);
  q.Push(50, 0, 0, 3);  // in the past: now (100), behind the event already due at 100
  const Event second = q.Pop();
  EXPECT_EQ(second.data, 2u);
  const Event third = q.Pop();
  EXPECT_EQ(third.data, 3u);
  EXPECT_EQ(third.time_ns, 100);
}

TEST(EventQueueTest, EventsPushedWhilePoppingInterleaveByTime) {
  EventQueue q;
  q.Push(0, 0, 0, 0);
  std::vector<int64_t> times;
  while (!q.empty() && times.size() < 10) {
    const Event e = q.Pop();
    times.push_back(e.time_ns);
    q.Push(e.time_ns + 3, 0, 0, e.data + 1);
    q.Push(e.time_ns + 1, 0, 0, e.data + 1);
  }
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));
  EXPECT_EQ(q.pushed(), 1u + 2 * times.size());
}

}  // namespace
}  // namespace tokenway::fleetsim
