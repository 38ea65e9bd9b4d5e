// EndpointState: passive outlier ejection with exponential back-off.
#include "routing/endpoint_state.h"

#include <gtest/gtest.h>

#include "support/fake_clock.h"

namespace tokenway {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kSecond = 1'000'000'000;

PassiveHealthConfig Config(uint32_t failures, Duration base, Duration max) {
  PassiveHealthConfig c;
  c.consecutive_failures = failures;
  c.base_ejection = base;
  c.max_ejection = max;
  return c;
}

TEST(EndpointStateTest, EjectsAfterConsecutiveFailures) {
  EndpointState s("http://a:1");
  auto c = Config(3, 10s, 300s);
  int64_t now = 1000 * kSecond;
  EXPECT_TRUE(s.Eligible(now));
  s.RecordFailure(c, now);
  s.RecordFailure(c, now);
  EXPECT_TRUE(s.Eligible(now));
  EXPECT_EQ(s.ejections_total.load(), 0u);
  s.RecordFailure(c, now);
  EXPECT_FALSE(s.Eligible(now));
  EXPECT_TRUE(s.Ejected(now));
  EXPECT_EQ(s.ejected_until_ns.load(), now + 10 * kSecond);
  EXPECT_TRUE(s.Ejected(now + 10 * kSecond - 1));
  EXPECT_TRUE(s.Eligible(now + 10 * kSecond));
  EXPECT_EQ(s.ejections_total.load(), 1u);
  EXPECT_EQ(s.failures_total.load(), 3u);
  EXPECT_EQ(s.consecutive_failures.load(), 0u);
}

TEST(EndpointStateTest, SuccessInBetweenResetsTheRun) {
  EndpointState s("http://a:1");
  auto c = Config(3, 10s, 300s);
  s.RecordFailure(c, 0);
  s.RecordFailure(c, 0);
  s.RecordSuccess();
  s.RecordFailure(c, 0);
  s.RecordFailure(c, 0);
  EXPECT_EQ(s.ejections_total.load(), 0u);
  EXPECT_TRUE(s.Eligible(0));
  s.RecordFailure(c, 0);
  EXPECT_EQ(s.ejections_total.load(), 1u);
}

TEST(EndpointStateTest, BackoffDoublesUpToTheMax) {
  EndpointState s("http://a:1");
  auto c = Config(1, 10s, 75s);
  int64_t now = 0;
  std::vector<int64_t> backoffs;
  for (int i = 0; i < 6; ++i) {
    s.RecordFailure(c, now);
    backoffs.push_back((s.ejected_until_ns.load() - now) / kSecond);
    now = s.ejected_until_ns.load();  // fails again right when it comes back
  }
  EXPECT_EQ(backoffs, (std::vector<int64_t>{10, 20, 40, 75, 75, 75}));
  EXPECT_EQ(s.consecutive_ejections.load(), 6u);
}

TEST(EndpointStateTest, SuccessResetsTheBackoff) {
  EndpointState s("http://a:1");
  auto c = Config(1, 10s, 300s);
  s.RecordFailure(c, 0);
  s.RecordFailure(c, 0);
  EXPECT_EQ(s.ejected_until_ns.load(), 20 * kSecond);
  s.RecordSuccess();
  EXPECT_EQ(s.consecutive_ejections.load(), 0u);
  s.RecordFailure(c, 100 * kSecond);
  EXPECT_EQ(s.ejected_until_ns.load(), 110 * kSecond);
}

TEST(EndpointStateTest, BaseAboveMaxIsCapped) {
  EndpointState s("http://a:1");
  s.RecordFailure(Config(1, 60s, 5s), 0);
  EXPECT_EQ(s.ejected_until_ns.load(), 5 * kSecond);
}

TEST(EndpointStateTest, ZeroThresholdDisablesEjection) {
  EndpointState s("http://a:1");
  auto c = Config(0, 10s, 300s);
  for (int i = 0; i < 100; ++i) s.RecordFailure(c, 0);
  EXPECT_TRUE(s.Eligible(0));
  EXPECT_EQ(s.ejections_total.load(), 0u);
  EXPECT_EQ(s.failures_total.load(), 100u);
}

TEST(EndpointStateTest, ManyEjectionsDoNotOverflow) {
  EndpointState s("http://a:1");
  auto c = Config(1, 1ns, 300s);
  for (int i = 0; i < 200; ++i) s.RecordFailure(c, 0);
  EXPECT_EQ(s.ejected_until_ns.load(), 300 * kSecond);
}

TEST(EndpointStateTest, EjectedEndpointReturnsWhenTheClockPassesItsBackoff) {
  EndpointState s("http://a:1");
  auto c = Config(2, 10s, 300s);
  testing::FakeClock clock;
  s.RecordFailure(c, clock.now_ns());
  clock.Advance(1s);
  s.RecordFailure(c, clock.now_ns());
  ASSERT_TRUE(s.Ejected(clock.now_ns()));
  clock.Advance(9s);
  EXPECT_FALSE(s.Eligible(clock.now_ns()));
  clock.Advance(1s);
  EXPECT_TRUE(s.Eligible(clock.now_ns()));
  // The next run of failures doubles the back-off.
  s.RecordFailure(c, clock.now_ns());
  s.RecordFailure(c, clock.now_ns());
  clock.Advance(19s);
  EXPECT_TRUE(s.Ejected(clock.now_ns()));
  clock.Advance(1s);
  EXPECT_TRUE(s.Eligible(clock.now_ns()));
}

TEST(EndpointStateTest, UnhealthyIsNotEligible) {
  EndpointState s("http://a:1");
  s.healthy = false;
  EXPECT_FALSE(s.Eligible(0));
  EXPECT_FALSE(s.Ejected(0));
}

}  // namespace
}  // namespace tokenway
