// SchedulerPicker: distributions of picks over fake endpoint sets, fallbacks, prefix learning.
#include "routing/scheduler_picker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <map>
#include <new>
#include <random>
#include <set>
#include <vector>

#include "common/duration.h"
#include "common/request_inspector.h"
#include "routing/endpoint_state.h"

// Counts heap allocations so a test can check that steady-state picks make none.
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

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

TEST(SchedulerPickerTest, StalenessFollowsTheCallersClock) {
  // Virtual time (the fleet simulator): with stale_after 1.5 s, signals 1 s old by the caller's
  // clock are fresh and 1.8 s old are stale, whatever the process's own clock says.
  FakePool pool(2);
  for (int i = 0; i < 2; ++i) pool[i].engine.updated_at_ns = 10'000'000'000;
  pool[0].engine.waiting = 0;
  pool[1].engine.waiting = 5;
  pool[0].engine.updated_at_ns = 9'000'000'000;  // one second older than endpoint 1's
  SchedulerPicker picker(Config({{"queue-depth", 1}}), 2, /*stale_after_ns=*/1'500'000'000);
  auto first = [&](int64_t now_ns) {
    PickContext ctx;
    ctx.now_ns = now_ns;
    FallbackList out;
    picker.Pick(ctx, pool.candidates(), out);
    return out[0];
  };
  EXPECT_EQ(first(10'000'000'000), 0u);  // both fresh: the shorter queue
  EXPECT_EQ(first(10'800'000'000), 1u);  // endpoint 0's signals went stale: saturated
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

// Picks that stay in flight: each pick adds one request to the chosen endpoint, so later picks
// see the load the earlier ones left, as requests that last longer than the burst would.
std::map<uint32_t, int> PickAndHold(SchedulerPicker& picker, FakePool& pool, int picks) {
  std::mt19937_64 rng(7);
  std::map<uint32_t, int> counts;
  for (int i = 0; i < picks; ++i) {
    PickContext ctx;
    ctx.random = rng();
    FallbackList out;
    picker.Pick(ctx, pool.candidates(), out);
    ++counts[out[0]];
    pool[out[0]].in_flight.fetch_add(1);
  }
  return counts;
}

TEST(SchedulerPickerTest, CapacityTwoToOneGetsTwiceTheRequests) {
  FakePool pool(2);
  pool[0].capacity = 1.0;
  pool[1].capacity = 2.0;
  SchedulerPicker picker(Config({{"capacity", 1}}), 2, kStale);
  // Equal (zero) load: the bigger endpoint is chosen every time.
  auto idle = Histogram(picker, pool, 200);
  EXPECT_EQ(idle[1], 200);
  // Held requests: in flight follows capacity, 2:1.
  auto held = PickAndHold(picker, pool, 3000);
  EXPECT_NEAR(held[1], 2000, 2);
  EXPECT_NEAR(held[0], 1000, 2);
  // least-request alone ignores capacity and splits evenly, which is what capacity corrects.
  FakePool even(2);
  even[0].capacity = 1.0;
  even[1].capacity = 2.0;
  SchedulerPicker least(Config({{"least-request", 1}}), 2, kStale);
  auto split = PickAndHold(least, even, 3000);
  EXPECT_NEAR(split[0], 1500, 2);
}

TEST(SchedulerPickerTest, CapacityFollowsAcceleratorMixAndEngineQueues) {
  // H100 1.0, A100 0.45, a two-GPU endpoint 2.0: shares 1/3.45, 0.45/3.45, 2/3.45.
  FakePool pool(3);
  pool[0].capacity = 1.0;
  pool[1].capacity = 0.45;
  pool[2].capacity = 2.0;
  SchedulerPicker picker(Config({{"capacity", 1}}), 3, kStale);
  auto held = PickAndHold(picker, pool, 3450);
  EXPECT_NEAR(held[0], 1000, 5);
  EXPECT_NEAR(held[1], 450, 5);
  EXPECT_NEAR(held[2], 2000, 5);
  // A queue the engine reports (work from other gateways) counts too: the big endpoint with 40
  // waiting is now the most loaded per capacity.
  FakePool busy(2);
  busy[0].capacity = 1.0;
  busy[1].capacity = 2.0;
  busy[1].engine.waiting = 40;
  SchedulerPicker fresh(Config({{"capacity", 1}}), 2, kStale);
  auto h = PickAndHold(fresh, busy, 60);
  // Loads even out where (n + 1) / 1 = (40 + m + 1) / 2 with n + m = 60: n = 33, m = 27.
  EXPECT_NEAR(h[0], 33, 1);
  EXPECT_NEAR(h[1], 27, 1);
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

TEST(SchedulerPickerTest, PrefixReportCountsBlockBytesUnitsHeldByTheChosenEndpoint) {
  FakePool pool(3);
  SchedulerPicker picker(Config({{"prefix-cache", 1}}), 3, kStale);
  InspectedRequest req;
  req.model = "m";
  req.prompt_text = std::string(3072 + 100, 'z');  // 40 full blocks (3 KiB) and a partial one
  PickContext ctx;
  PickReport report;
  ctx.request = &req;
  ctx.report = &report;
  FallbackList out;
  picker.Pick(ctx, pool.candidates(), out);
  EXPECT_EQ(report.prefix_blocks, 48u);  // 3,072 bytes in 64-byte units
  EXPECT_EQ(report.prefix_matched, 0u);  // nobody held it yet
  const uint32_t first = out[0];
  for (int i = 0; i < 5; ++i) {
    ctx.random = static_cast<uint64_t>(i) * 7919;
    out.clear();
    picker.Pick(ctx, pool.candidates(), out);
    EXPECT_EQ(out[0], first);  // the endpoint that learnt the prompt wins it again
    EXPECT_EQ(report.prefix_matched, 48u);
  }
  req.prompt_text[2200] = 'y';  // in block 33 ([2176, 2304)): blocks 0-32 still match
  out.clear();
  picker.Pick(ctx, pool.candidates(), out);
  EXPECT_EQ(out[0], first);
  EXPECT_EQ(report.prefix_matched, 32u + 2u);  // 2 KiB + one 128-byte block
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(SchedulerPickerTest, LongPromptPicksDoNotAllocateInSteadyState) {
  // GIE's default mix on a 432 KiB prompt: hashing into the thread's scratch vector, one walk
  // of the pool's prefix index, learning the blocks. After the first pick sized the scratch,
  // picks of new and repeated prompts allocate nothing.
  FakePool pool(8);
  SchedulerConfig c;
  ASSERT_TRUE(ExpandSchedulerPreset("gie-default", c));
  c.enabled = true;
  SchedulerPicker picker(c, 8, kStale);
  InspectedRequest req;
  req.model = "m";
  req.prompt_text.assign(432 * 1024, 'p');
  PickContext ctx;
  PickReport report;
  ctx.request = &req;
  ctx.report = &report;
  FallbackList out;
  picker.Pick(ctx, pool.candidates(), out);
  const uint64_t before = g_allocations.load();
  for (int i = 0; i < 20; ++i) {
    req.prompt_text[static_cast<size_t>(i % 4) * 8192] = static_cast<char>('a' + i);
    ctx.random = static_cast<uint64_t>(i);
    out.clear();
    picker.Pick(ctx, pool.candidates(), out);
    ASSERT_GT(out.size(), 0u);
  }
  EXPECT_EQ(g_allocations.load() - before, 0u);
  EXPECT_EQ(report.prefix_blocks, 432u * 1024 / 64);
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

// A request of prefix group `group` with its own question.
InspectedRequest GroupRequest(int group, int question) {
  InspectedRequest req;
  req.model = "m";
  req.prompt_text = "system " + std::to_string(group) + ": " +
                    std::string(2048, static_cast<char>('a' + group % 26)) + "\nuser: question " +
                    std::to_string(question) + "\n";
  return req;
}

TEST(SchedulerPickerTest, ReplicasWithTheTokenwayPresetAgreeOnEveryGroupsFirstChoice) {
  // Two gateway replicas (own pickers, own prefix indexes) in front of one fleet, the
  // candidates listed in a different order by each: the consistent-prefix scorer makes them
  // send each group to the same endpoint from its first request on.
  constexpr size_t kEndpoints = 16;
  FakePool pool(kEndpoints);
  SchedulerConfig c;
  ASSERT_TRUE(ExpandSchedulerPreset("tokenway", c));
  c.enabled = true;
  SchedulerPicker a(c, kEndpoints, kStale), b(c, kEndpoints, kStale);
  std::vector<PickCandidate> reversed(pool.candidates().rbegin(), pool.candidates().rend());
  std::mt19937_64 rng(3);
  std::set<uint32_t> used;
  for (int group = 0; group < 40; ++group) {
    for (int q = 0; q < 3; ++q) {
      InspectedRequest req = GroupRequest(group, q);
      PickContext ctx;
      ctx.request = &req;
      ctx.random = rng();
      FallbackList out_a, out_b;
      a.Pick(ctx, pool.candidates(), out_a);
      ctx.random = rng();
      b.Pick(ctx, reversed, out_b);
      ASSERT_EQ(out_a[0], out_b[0]) << "group " << group << " request " << q;
      used.insert(out_a[0]);
    }
  }
  EXPECT_GE(used.size(), kEndpoints / 2);  // groups spread over the fleet
}

TEST(SchedulerPickerTest, ConsistentPrefixSpillsToTheSameNextEndpointWhenOverTheBound) {
  constexpr size_t kEndpoints = 8;
  FakePool pool(kEndpoints);
  SchedulerPicker a(Config({{"consistent-prefix", 1}}), kEndpoints, kStale);
  SchedulerPicker b(Config({{"consistent-prefix", 1}}), kEndpoints, kStale);
  InspectedRequest req = GroupRequest(7, 0);
  PickContext ctx;
  ctx.request = &req;
  FallbackList out;
  a.Pick(ctx, pool.candidates(), out);
  const uint32_t home = out[0];
  // The home endpoint's engine reports 40 running, the others 2: the bound is
  // ceil(1.25 × (54 + 1) / 8) = 9, so the group spills, and both replicas spill alike.
  for (size_t i = 0; i < kEndpoints; ++i) pool[i].engine.running = i == home ? 40 : 2;
  out.clear();
  a.Pick(ctx, pool.candidates(), out);
  const uint32_t spill = out[0];
  EXPECT_NE(spill, home);
  FallbackList other;
  b.Pick(ctx, pool.candidates(), other);
  EXPECT_EQ(other[0], spill);
  // Back under the bound: home again.
  pool[home].engine.running = 2;
  out.clear();
  a.Pick(ctx, pool.candidates(), out);
  EXPECT_EQ(out[0], home);
  // Stale engine signals: the replica's own in-flight counts decide.
  for (size_t i = 0; i < kEndpoints; ++i) pool[i].engine.updated_at_ns = 0;
  SchedulerPicker fresh_clock(Config({{"consistent-prefix", 1}}), kEndpoints, 1);
  pool[home].in_flight = 50;
  out.clear();
  fresh_clock.Pick(ctx, pool.candidates(), out);
  EXPECT_NE(out[0], home);
}

TEST(SchedulerPickerTest, SampledPicksKeepNominatedEndpointsAndMatchTheFullPick) {
  // 1,000 endpoints, sample 32: the prefix holder and the rendezvous choice are always scored,
  // so prefix affinity holds exactly as when every endpoint is scored; fallbacks are distinct.
  constexpr size_t kEndpoints = 1000;
  FakePool pool(kEndpoints);
  for (size_t i = 0; i < kEndpoints; ++i) {
    pool[i].engine.waiting = 1;
    pool[i].engine.running = 2;
  }
  SchedulerConfig c = Config({{"prefix-cache", 3}, {"consistent-prefix", 2}, {"queue-depth", 1}});
  SchedulerConfig full_config = c;
  c.sample = 32;
  SchedulerPicker sampled(c, kEndpoints, kStale), full(full_config, kEndpoints, kStale);
  std::mt19937_64 rng(9);
  for (int group = 0; group < 30; ++group) {
    InspectedRequest req = GroupRequest(group, 0);
    PickContext ctx;
    ctx.request = &req;
    ctx.random = rng();
    FallbackList s, f;
    sampled.Pick(ctx, pool.candidates(), s);
    full.Pick(ctx, pool.candidates(), f);
    EXPECT_EQ(s[0], f[0]) << group;
    EXPECT_EQ(s.size(), FallbackList::kCapacity);
    std::set<uint32_t> distinct;
    for (uint32_t k = 0; k < s.size(); ++k) distinct.insert(s[k]);
    EXPECT_EQ(distinct.size(), s.size());
    for (int q = 1; q < 4; ++q) {  // the group stays where it went
      InspectedRequest next = GroupRequest(group, q);
      ctx.request = &next;
      ctx.random = rng();
      FallbackList again;
      sampled.Pick(ctx, pool.candidates(), again);
      EXPECT_EQ(again[0], s[0]) << group;
    }
  }
}

TEST(SchedulerPickerTest, SampledPicksReachEveryEndpoint) {
  // Load-only scoring over a sample: every endpoint is sometimes in the sample and wins there.
  constexpr size_t kEndpoints = 200;
  FakePool pool(kEndpoints);
  SchedulerConfig c = Config({{"queue-depth", 1}});
  c.sample = 16;
  SchedulerPicker picker(c, kEndpoints, kStale);
  auto counts = Histogram(picker, pool, 20000);
  EXPECT_EQ(counts.size(), kEndpoints);
}

TEST(SchedulerPickerTest, SampledPicksDoNotAllocateInSteadyState) {
  constexpr size_t kEndpoints = 1000;
  FakePool pool(kEndpoints);
  SchedulerConfig c;
  ASSERT_TRUE(ExpandSchedulerPreset("tokenway", c));
  c.enabled = true;
  SchedulerPicker picker(c, kEndpoints, kStale);
  InspectedRequest req = GroupRequest(1, 0);
  PickContext ctx;
  ctx.request = &req;
  FallbackList out;
  picker.Pick(ctx, pool.candidates(), out);
  const uint64_t before = g_allocations.load();
  for (int i = 0; i < 50; ++i) {
    req.prompt_text[static_cast<size_t>(i % 7) * 100] = static_cast<char>('a' + i % 20);
    ctx.random = static_cast<uint64_t>(i) * 1299709;
    out.clear();
    picker.Pick(ctx, pool.candidates(), out);
    ASSERT_GT(out.size(), 0u);
  }
  EXPECT_EQ(g_allocations.load() - before, 0u);
}

}  // namespace
}  // namespace tokenway
