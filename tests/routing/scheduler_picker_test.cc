// SchedulerPicker: distributions of picks over fake endpoint sets, fallbacks, prefix learning.
#include "routing/scheduler_picker.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "common/duration.h"
#include "common/request_inspector.h"
#include "routing/endpoint_state.h"

namespace tokenway {
namespace {

constexpr int64_t kStale = 1'000'000'000'000;  // signals never go stale within a test

class FakePool {
 public:
  FakePool(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      states_.emplace_back("http://e" + std::to_string(i) + ":1");
      states_.back().engine.valid = true;
      states_.back().engine.updated_at_ns = MonotonicNanos();
      candidates_.push_back({static_cast<uint32_t>(i), &states_[i]});
    }
  }
  EndpointState& operator[](size_t i) { return states_[i]; }
  std::span<const PickCandidate> candidates() const { return candidates_; }

 private:
  std::deque<EndpointState> states_;
  std::vector<PickCandidate> candidates_;
};

SchedulerConfig Config(std::vector<ScorerConfig> scorers, std::string picker = "max-score") {
  SchedulerConfig c;
  c.enabled = true;
  c.scorers = std::move(scorers);
  c.picker = std::move(picker);
  return c;
}

std::map<uint32_t, int> Histogram(SchedulerPicker& picker, const FakePool& pool, int picks,
                                  const InspectedRequest* request = nullptr) {
  std::mt19937_64 rng(42);
  std::map<uint32_t, int> counts;
  for (int i = 0; i < picks; ++i) {
    PickContext ctx;
    ctx.request = request;
    ctx.random = rng();
    FallbackList out;
    picker.Pick(ctx, pool.candidates(), out);
    EXPECT_FALSE(out.empty());
    ++counts[out[0]];
  }
  return counts;
}

TEST(SchedulerPickerTest, MaxScoreSpreadsTiesEvenly) {
  FakePool pool(4);
  SchedulerPicker picker(Config({{"queue-depth", 1}}), 4, kStale);
  auto h = Histogram(picker, pool, 4000);
  ASSERT_EQ(h.size(), 4u);
  for (auto [index, n] : h) EXPECT_NEAR(n, 1000, 150) << index;
}

TEST(SchedulerPickerTest, MaxScoreAvoidsLoadedAndStaleEndpoints) {
  FakePool pool(4);
  pool[0].engine.waiting = 10;
  pool[1].engine.kv_utilisation = 0.9f;
  pool[2].engine.valid = false;  // unknown: treated as saturated
  SchedulerPicker picker(Config({{"queue-depth", 2}, {"kv-cache", 2}}), 4, kStale);
  auto h = Histogram(picker, pool, 1000);
  EXPECT_EQ(h[3], 1000);
}

TEST(SchedulerPickerTest, FallbacksAreOrderedByScoreAndDistinct) {
  FakePool pool(5);
  for (int i = 0; i < 5; ++i) pool[i].engine.waiting = 10 * i;
  SchedulerPicker picker(Config({{"queue-depth", 1}}), 5, kStale);
  PickContext ctx;
  ctx.random = 7;
  FallbackList out;
  picker.Pick(ctx, pool.candidates(), out);
  ASSERT_EQ(out.size(), 5u);
  for (uint32_t i = 0; i < 5; ++i) EXPECT_EQ(out[i], i);
}

TEST(SchedulerPickerTest, WeightedRandomIsProportionalToScore) {
  FakePool pool(2);
  pool[0].engine.kv_utilisation = 0.25f;  // score 0.75
  pool[1].engine.kv_utilisation = 0.75f;  // score 0.25
  SchedulerPicker picker(Config({{"kv-cache", 1}}, "weighted-random"), 2, kStale);
  auto h = Histogram(picker, pool, 8000);
  EXPECT_NEAR(h[0] / 8000.0, 0.75, 0.03);
  EXPECT_NEAR(h[1] / 8000.0, 0.25, 0.03);
}

TEST(SchedulerPickerTest, PowerOfTwoNeverPicksTheWorstOfThree) {
  FakePool pool(3);
  pool[0].engine.kv_utilisation = 0.0f;
  pool[1].engine.kv_utilisation = 0.5f;
  pool[2].engine.kv_utilisation = 1.0f;
  SchedulerPicker picker(Config({{"kv-cache", 1}}, "power-of-two"), 3, kStale);
  auto h = Histogram(picker, pool, 3000);
  EXPECT_EQ(h[2], 0);
  // The best wins both pairs it is drawn in: 2/3 of picks.
  EXPECT_NEAR(h[0] / 3000.0, 2.0 / 3, 0.04);
  EXPECT_NEAR(h[1] / 3000.0, 1.0 / 3, 0.04);
}

TEST(SchedulerPickerTest, SaturationFilterKeepsTrafficOffSaturatedButNeverEmpties) {
  FakePool pool(3);
  pool[0].engine.waiting = 50;
  pool[1].engine.kv_utilisation = 0.95f;
  SchedulerConfig c = Config({{"least-request", 1}});
  c.filters.push_back({"saturation", 5, 0.8});
  SchedulerPicker picker(c, 3, kStale);
  auto h = Histogram(picker, pool, 500);
  EXPECT_EQ(h[2], 500);
  // The filtered endpoints remain as retry fallbacks.
  PickContext ctx;
  FallbackList out;
  picker.Pick(ctx, pool.candidates(), out);
  EXPECT_EQ(out.size(), 3u);
  // All saturated: the filter would leave nothing, so every endpoint stays in play.
  pool[2].engine.valid = false;
  auto all = Histogram(picker, pool, 900);
  EXPECT_EQ(all.size(), 3u);
}

TEST(SchedulerPickerTest, PrefixAffinityKeepsGroupsOnOneEndpoint) {
  FakePool pool(4);
  SchedulerConfig c;
  ASSERT_TRUE(ExpandSchedulerPreset("gie-default", c));
  c.enabled = true;
  SchedulerPicker picker(c, 4, kStale);
  std::mt19937_64 rng(1);
  std::map<int, std::set<uint32_t>> endpoints_of_group;
  std::map<uint32_t, int> load;
  for (int i = 0; i < 200; ++i) {
    int group = i % 8;
    InspectedRequest req;
    req.model = "m";
    req.prompt_text = "system: " + std::string(1024, static_cast<char>('a' + group)) +
                      "\nuser: question " + std::to_string(i) + "\n";
    PickContext ctx;
    ctx.request = &req;
    ctx.random = rng();
    FallbackList out;
    picker.Pick(ctx, pool.candidates(), out);
    endpoints_of_group[group].insert(out[0]);
    ++load[out[0]];
  }
  // Equal queues and KV: the prefix score decides; each group sticks to the endpoint that
  // first served it, and the 8 groups still spread over the pool.
  for (auto& [group, eps] : endpoints_of_group) EXPECT_EQ(eps.size(), 1u) << group;
  EXPECT_GE(load.size(), 3u);
  EXPECT_GT(picker.prefix_index()->Size(0) + picker.prefix_index()->Size(1), 0u);
}

}  // namespace
}  // namespace tokenway
