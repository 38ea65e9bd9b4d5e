// Pickers: round-robin, least-request, power-of-two; FallbackList; the registry.
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <set>
#include <vector>

#include "routing/endpoint_state.h"
#include "routing/least_request_picker.h"
#include "routing/picker_registry.h"
#include "routing/power_of_two_picker.h"
#include "routing/round_robin_picker.h"

namespace tokenway {
namespace {

// A pool of endpoints with settable in-flight counts; candidate indices are 10, 11, ... so a
// picker that confuses positions with indices is caught.
class Pool {
 public:
  explicit Pool(std::vector<int32_t> loads) {
    for (size_t i = 0; i < loads.size(); ++i) {
      states_.emplace_back("http://e" + std::to_string(i) + ":8000");
      states_.back().in_flight = loads[i];
    }
    for (size_t i = 0; i < states_.size(); ++i) {
      candidates_.push_back({static_cast<uint32_t>(10 + i), &states_[i]});
    }
  }
  std::span<const PickCandidate> candidates() const { return candidates_; }
  int32_t LoadOf(uint32_t index) const { return states_[index - 10].in_flight.load(); }

 private:
  std::deque<EndpointState> states_;
  std::vector<PickCandidate> candidates_;
};

std::vector<uint32_t> ToVector(const FallbackList& l) {
  std::vector<uint32_t> v;
  for (uint32_t i = 0; i < l.size(); ++i) v.push_back(l[i]);
  return v;
}

std::vector<uint32_t> PickOnce(Picker& p, const Pool& pool, uint64_t random) {
  FallbackList out;
  PickContext ctx;
  ctx.random = random;
  p.Pick(ctx, pool.candidates(), out);
  return ToVector(out);
}

TEST(FallbackListTest, CapacityIsBounded) {
  FallbackList l;
  EXPECT_TRUE(l.empty());
  for (uint32_t i = 0; i < 20; ++i) l.push_back(i);
  EXPECT_EQ(l.size(), FallbackList::kCapacity);
  for (uint32_t i = 0; i < FallbackList::kCapacity; ++i) EXPECT_EQ(l[i], i);
  l.clear();
  EXPECT_TRUE(l.empty());
  l.push_back(7);
  EXPECT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0], 7u);
}

TEST(RoundRobinPickerTest, CyclesThroughEveryEndpoint) {
  Pool pool({5, 0, 9});
  RoundRobinPicker p;
  EXPECT_EQ(p.name(), "round-robin");
  std::vector<uint32_t> firsts;
  for (int i = 0; i < 6; ++i) {
    auto v = PickOnce(p, pool, 12345);
    ASSERT_EQ(v.size(), 3u);
    // The rest follow in pool order after the first.
    EXPECT_EQ(v[1], 10 + (v[0] - 10 + 1) % 3);
    EXPECT_EQ(v[2], 10 + (v[0] - 10 + 2) % 3);
    firsts.push_back(v[0]);
  }
  EXPECT_EQ(firsts, (std::vector<uint32_t>{10, 11, 12, 10, 11, 12}));
}

TEST(RoundRobinPickerTest, LargePoolIsCappedAtCapacity) {
  Pool pool(std::vector<int32_t>(20, 0));
  RoundRobinPicker p;
  auto v = PickOnce(p, pool, 0);
  EXPECT_EQ(v.size(), FallbackList::kCapacity);
  EXPECT_EQ(std::set<uint32_t>(v.begin(), v.end()).size(), v.size());
}

TEST(LeastRequestPickerTest, PrefersLowestAndOrdersFallbacksByLoad) {
  Pool pool({7, 3, 9, 1, 5});
  LeastRequestPicker p;
  EXPECT_EQ(p.name(), "least-request");
  for (uint64_t r : {0ull, 1ull, 2ull, 3ull, 4ull, 0xdeadbeefull}) {
    auto v = PickOnce(p, pool, r);
    EXPECT_EQ(v, (std::vector<uint32_t>{13, 11, 14, 10, 12})) << r;
  }
}

TEST(LeastRequestPickerTest, TiesAreSpreadByTheRandomValue) {
  Pool pool({2, 2, 2, 2});
  LeastRequestPicker p;
  std::set<uint32_t> firsts;
  for (uint64_t r = 0; r < 16; ++r) {
    auto v = PickOnce(p, pool, r);
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(std::set<uint32_t>(v.begin(), v.end()).size(), 4u);
    firsts.insert(v[0]);
  }
  EXPECT_EQ(firsts.size(), 4u);
}

TEST(LeastRequestPickerTest, LargePoolKeepsTheLeastLoaded) {
  std::vector<int32_t> loads;
  for (int i = 0; i < 20; ++i) loads.push_back(100 - i);  // the last ones are least loaded
  Pool pool(loads);
  LeastRequestPicker p;
  auto v = PickOnce(p, pool, 3);
  ASSERT_EQ(v.size(), FallbackList::kCapacity);
  for (uint32_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], 10u + 19 - i);
}

TEST(LeastRequestPickerTest, SingleCandidate) {
  Pool pool({4});
  LeastRequestPicker p;
  EXPECT_EQ(PickOnce(p, pool, 99), (std::vector<uint32_t>{10}));
}

TEST(PowerOfTwoPickerTest, TwoEndpointsAlwaysTheLessLoaded) {
  Pool pool({8, 2});
  PowerOfTwoPicker p;
  EXPECT_EQ(p.name(), "power-of-two");
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    auto v = PickOnce(p, pool, rng());
    EXPECT_EQ(v, (std::vector<uint32_t>{11, 10}));
  }
}

TEST(PowerOfTwoPickerTest, NeverPicksTheMostLoadedAndFallbacksAreDistinct) {
  Pool pool({4, 9, 1, 6, 3, 7});
  PowerOfTwoPicker p;
  std::mt19937_64 rng(42);
  std::set<uint32_t> firsts;
  for (int i = 0; i < 5000; ++i) {
    uint64_t r = rng();
    auto v = PickOnce(p, pool, r);
    ASSERT_EQ(v.size(), 6u) << r;
    EXPECT_NE(v[0], 11u) << r;  // load 9: loses to whichever endpoint it is drawn with
    EXPECT_EQ(std::set<uint32_t>(v.begin(), v.end()).size(), v.size()) << r;
    // After the winner, fallbacks come in increasing load.
    for (size_t k = 2; k < v.size(); ++k) {
      EXPECT_LE(pool.LoadOf(v[k - 1]), pool.LoadOf(v[k])) << r;
    }
    firsts.insert(v[0]);
  }
  // Every endpoint but the most loaded wins sometimes.
  EXPECT_EQ(firsts.size(), 5u);
}

TEST(PowerOfTwoPickerTest, SingleCandidate) {
  Pool pool({1});
  PowerOfTwoPicker p;
  EXPECT_EQ(PickOnce(p, pool, 7), (std::vector<uint32_t>{10}));
}

TEST(PickerRegistryTest, KnownNames) {
  for (const char* name : {"round-robin", "least-request", "power-of-two"}) {
    auto p = MakePicker(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->name(), name);
  }
  EXPECT_EQ(MakePicker("random"), nullptr);
}

}  // namespace
}  // namespace tokenway
