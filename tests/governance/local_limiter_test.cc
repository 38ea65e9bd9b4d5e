#include "governance/local_limiter.h"

#include "governance/governance.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace tokenway {
namespace {

constexpr int64_t kWindow = 60'000;
constexpr int64_t kT0 = 1'790'000'020'000;  // a minute boundary plus 40 s

struct Fixture {
  explicit Fixture(LimitSpec spec) : limiter(kWindow) {
    scope.id = "t:test";
    scope.limits = spec;
    scope.counters = limiter.CountersFor(scope.id);
  }
  Reservation Make(int64_t input, int64_t output) {
    Reservation r;
    r.scopes[r.n_scopes++] = &scope;
    r.input = input;
    r.output = output;
    return r;
  }
  LocalLimiter limiter;
  LimitScope scope;
};

TEST(WindowCounter, AddsWithinLimitAndRefusesBeyond) {
  WindowCounter c;
  int64_t used = 0;
  EXPECT_TRUE(c.TryAdd(7, 600, 1000, used));
  EXPECT_EQ(used, 600);
  EXPECT_FALSE(c.TryAdd(7, 401, 1000, used));
  EXPECT_EQ(used, 600);  // the use that refused
  EXPECT_TRUE(c.TryAdd(7, 400, 1000, used));
  EXPECT_EQ(used, 1000);
  EXPECT_FALSE(c.TryAdd(7, 0, 1000, used));  // post hoc: refused once at the limit
}

TEST(WindowCounter, NewWindowStartsFromZero) {
  WindowCounter c;
  int64_t used = 0;
  ASSERT_TRUE(c.TryAdd(7, 1000, 1000, used));
  EXPECT_TRUE(c.TryAdd(8, 1000, 1000, used));
  EXPECT_EQ(used, 1000);
  EXPECT_EQ(c.Used(7), 0);  // the old window is gone
  EXPECT_EQ(c.Used(8), 1000);
}

TEST(WindowCounter, AdjustCorrectsTheReservationWindowOrChargesTheCurrentOne) {
  WindowCounter c;
  int64_t used = 0;
  ASSERT_TRUE(c.TryAdd(7, 500, 0, used));
  c.Adjust(7, 7, -300);  // settled below the reservation
  EXPECT_EQ(c.Used(7), 200);
  c.Adjust(7, 7, -1000);  // never below zero
  EXPECT_EQ(c.Used(7), 0);
  ASSERT_TRUE(c.TryAdd(7, 100, 0, used));
  c.Adjust(7, 8, -50);  // the window passed: an over-reservation is simply gone
  EXPECT_EQ(c.Used(7), 100);
  c.Adjust(7, 8, 40);  // tokens beyond the reservation count where they happened: now
  EXPECT_EQ(c.Used(8), 40);
}

TEST(LocalLimiter, ReservesEstimatePlusMaxTokensAndSettlesToRealUsage) {
  LimitSpec spec;
  spec.tokens_per_minute = 1000;
  spec.input_tokens_per_minute = 500;
  spec.output_tokens_per_minute = 800;
  Fixture f(spec);
  Reservation r = f.Make(100, 300);
  Decision d = f.limiter.Check(r, kT0);
  ASSERT_EQ(d.result, Decision::Result::kAllowed);
  EXPECT_TRUE(r.held);
  Windows w = WindowsAt(kT0, kWindow);
  auto used = [&](LimitKind k) {
    return f.scope.counters->windowed[static_cast<int>(k)].Used(w.index[static_cast<int>(k)]);
  };
  EXPECT_EQ(used(LimitKind::kTokens), 400);
  EXPECT_EQ(used(LimitKind::kInputTokens), 100);
  EXPECT_EQ(used(LimitKind::kOutputTokens), 300);
  EXPECT_EQ(d.limit_tokens, 500);  // the most constrained token limit: input, 400 left
  EXPECT_EQ(d.remaining_tokens, 400);
  f.limiter.Settle(r, 90, 40);
  EXPECT_FALSE(r.held);
  // Settling happens now (in the same window unless the test crosses a minute boundary).
  Windows now = WindowsAt(UnixMillis(), kWindow);
  if (now.index[0] == w.index[0]) {
    EXPECT_EQ(used(LimitKind::kTokens), 130);
  }
  f.limiter.Settle(r, 1000, 1000);  // exactly once: a second settle changes nothing
}

TEST(LocalLimiter, SettlementUsesTheReservationWindow) {
  LimitSpec spec;
  spec.tokens_per_minute = 1000;
  Fixture f(spec);
  const int64_t now = UnixMillis();
  Reservation r = f.Make(100, 300);
  ASSERT_EQ(f.limiter.Check(r, now).result, Decision::Result::kAllowed);
  f.limiter.Settle(r, 100, 50);
  Windows w = WindowsAt(UnixMillis(), kWindow);
  if (w.index[0] == r.windows.index[0]) {
    EXPECT_EQ(f.scope.counters->windowed[static_cast<int>(LimitKind::kTokens)].Used(w.index[0]),
              150);
  }
}

TEST(LocalLimiter, RefusesAllOrNothingAndSaysWhichLimit) {
  LimitSpec spec;
  spec.requests_per_minute = 10;
  spec.tokens_per_minute = 1000;
  Fixture f(spec);
  Reservation a = f.Make(100, 800);
  ASSERT_EQ(f.limiter.Check(a, kT0).result, Decision::Result::kAllowed);
  Reservation b = f.Make(100, 200);
  Decision d = f.limiter.Check(b, kT0);
  EXPECT_EQ(d.result, Decision::Result::kLimited);
  EXPECT_EQ(d.limit, LimitKind::kTokens);
  EXPECT_EQ(d.retry_after_ms, 20'000);  // to the end of the minute window
  EXPECT_FALSE(b.held);
  // The refused request took nothing: its request count was rolled back.
  Windows w = WindowsAt(kT0, kWindow);
  EXPECT_EQ(f.scope.counters->windowed[0].Used(w.index[0]), 1);
  EXPECT_EQ(d.limit_requests, 10);
  EXPECT_EQ(d.remaining_requests, 9);
}

TEST(LocalLimiter, RequestsPerMinute) {
  LimitSpec spec;
  spec.requests_per_minute = 3;
  Fixture f(spec);
  for (int i = 0; i < 3; ++i) {
    Reservation r = f.Make(1, 1);
    Decision d = f.limiter.Check(r, kT0);
    ASSERT_EQ(d.result, Decision::Result::kAllowed);
    EXPECT_EQ(d.remaining_requests, 2 - i);
    f.limiter.Release(r);  // a failed request still counts as a request
  }
  Reservation r = f.Make(1, 1);
  EXPECT_EQ(f.limiter.Check(r, kT0).limit, LimitKind::kRequests);
  Reservation next = f.Make(1, 1);
  EXPECT_EQ(f.limiter.Check(next, kT0 + kWindow).result, Decision::Result::kAllowed);
}

TEST(LocalLimiter, ConcurrencyIsHeldUntilSettlement) {
  LimitSpec spec;
  spec.concurrent_requests = 2;
  Fixture f(spec);
  Reservation a = f.Make(1, 1), b = f.Make(1, 1), c = f.Make(1, 1);
  ASSERT_EQ(f.limiter.Check(a, kT0).result, Decision::Result::kAllowed);
  ASSERT_EQ(f.limiter.Check(b, kT0).result, Decision::Result::kAllowed);
  Decision d = f.limiter.Check(c, kT0);
  EXPECT_EQ(d.result, Decision::Result::kLimited);
  EXPECT_EQ(d.limit, LimitKind::kConcurrent);
  f.limiter.Release(a);
  Reservation e = f.Make(1, 1);
  EXPECT_EQ(f.limiter.Check(e, kT0).result, Decision::Result::kAllowed);
  EXPECT_EQ(f.scope.counters->concurrent.load(), 2);
}

TEST(LocalLimiter, DailyAndMonthlyBudgets) {
  LimitSpec spec;
  spec.tokens_per_day = 1000;
  spec.tokens_per_month = 1500;
  Fixture f(spec);
  Reservation a = f.Make(400, 500);
  ASSERT_EQ(f.limiter.Check(a, kT0).result, Decision::Result::kAllowed);
  Reservation b = f.Make(100, 100);
  Decision d = f.limiter.Check(b, kT0);
  EXPECT_EQ(d.limit, LimitKind::kDaily);
  // The next UTC day has a fresh daily budget but the same month.
  const int64_t next_day = (kT0 / 86'400'000 + 1) * 86'400'000 + 1000;
  Windows w0 = WindowsAt(kT0, kWindow), w1 = WindowsAt(next_day, kWindow);
  ASSERT_EQ(w0.index[static_cast<int>(LimitKind::kMonthly)],
            w1.index[static_cast<int>(LimitKind::kMonthly)]);
  Reservation c = f.Make(300, 300);
  ASSERT_EQ(f.limiter.Check(c, next_day).result, Decision::Result::kAllowed);
  Reservation e = f.Make(1, 0);
  EXPECT_EQ(f.limiter.Check(e, next_day).limit, LimitKind::kMonthly);
}

TEST(LocalLimiter, ScopesAreCheckedTogether) {
  LocalLimiter limiter(kWindow);
  LimitScope tenant{"t:a", {}, limiter.CountersFor("t:a")};
  tenant.limits.tokens_per_minute = 1000;
  LimitScope model{"m:a:x", {}, limiter.CountersFor("m:a:x")};
  model.limits.tokens_per_minute = 300;
  Reservation r;
  r.scopes[r.n_scopes++] = &tenant;
  r.scopes[r.n_scopes++] = &model;
  r.input = 100;
  r.output = 250;
  Decision d = limiter.Check(r, kT0);
  EXPECT_EQ(d.result, Decision::Result::kLimited);
  Windows w = WindowsAt(kT0, kWindow);
  // The tenant counter took the reservation first and gave it back.
  EXPECT_EQ(tenant.counters->windowed[static_cast<int>(LimitKind::kTokens)].Used(w.index[3]), 0);
}

TEST(LocalLimiter, WindowsAreCalendarDaysAndMonthsInUtc) {
  // 2026-01-31T23:59:59Z and one second later.
  Windows a = WindowsAt(1'769'903'999'000, kWindow);
  Windows b = WindowsAt(1'769'904'000'000, kWindow);
  EXPECT_EQ(b.index[static_cast<int>(LimitKind::kMonthly)],
            a.index[static_cast<int>(LimitKind::kMonthly)] + 1);
  EXPECT_EQ(a.end_ms[static_cast<int>(LimitKind::kMonthly)], 1'769'904'000'000);
  EXPECT_EQ(a.end_ms[static_cast<int>(LimitKind::kDaily)], 1'769'904'000'000);
}

TEST(LocalLimiter, ConcurrentReservationsNeverPassTheLimit) {
  LimitSpec spec;
  spec.tokens_per_minute = 10'000;
  Fixture f(spec);
  std::atomic<int64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        Reservation r = f.Make(10, 27);
        if (f.limiter.Check(r, kT0).result == Decision::Result::kAllowed) admitted += 37;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(admitted.load(), 10'000);
  EXPECT_GT(admitted.load(), 10'000 - 37);  // no false rejects below the limit
}

TEST(RequestGovernance, SettlesOnceByWhatTheRequestProduced) {
  auto local = std::make_shared<LocalLimiter>(kWindow);
  GovernanceSnapshot snapshot;
  snapshot.limiter = local;
  Tenant tenant;
  tenant.name = "t";
  tenant.stats = std::make_shared<TenantStats>();
  tenant.scope.id = "t:t";
  tenant.scope.limits.tokens_per_minute = 1'000'000;
  tenant.scope.counters = local->CountersFor("t:t");
  WindowCounter& tokens = tenant.scope.counters->windowed[static_cast<int>(LimitKind::kTokens)];
  // Tokens the window holds after one request that reserved 10 + 100 and then `finish`ed.
  auto charge = [&](auto finish) -> int64_t {
    for (;;) {
      const int64_t window = WindowsAt(UnixMillis(), kWindow).index[0];
      const int64_t before = tokens.Used(window);
      RequestGovernance g;
      g.Begin(&snapshot);
      g.tenant_ = &tenant;
      g.reservation_.scopes[g.reservation_.n_scopes++] = &tenant.scope;
      g.reservation_.input = 10;
      g.reservation_.output = 100;
      g.estimated_input_ = 10;
      EXPECT_EQ(local->Check(g.reservation_, UnixMillis()).result, Decision::Result::kAllowed);
      finish(g);
      finish(g);  // a second Finish changes nothing
      if (WindowsAt(UnixMillis(), kWindow).index[0] == window) return tokens.Used(window) - before;
    }
  };
  TokenUsage usage;
  usage.prompt_tokens = 12;
  usage.completion_tokens = 20;
  EXPECT_EQ(charge([&](RequestGovernance& g) { g.Finish(usage, 21, 200); }), 32);
  EXPECT_EQ(charge([&](RequestGovernance& g) { g.Finish(TokenUsage{}, 5, 499); }), 15);
  EXPECT_EQ(charge([&](RequestGovernance& g) { g.Finish(TokenUsage{}, 0, 200); }), 110);
  EXPECT_EQ(charge([&](RequestGovernance& g) { g.Finish(TokenUsage{}, 0, 502); }), 0);
  EXPECT_EQ(tenant.stats->input_tokens.load(), 12u + 10u + 10u);
  EXPECT_EQ(tenant.stats->output_tokens.load(), 20u + 5u + 100u);
}

// The reset headers in OpenAI's duration format, three significant digits of seconds.
TEST(RateLimitHeaders, ResetDurationsInOpenAiFormat) {
  auto reset = [](int64_t ms) {
    Decision d;
    d.limit_requests = 10;
    d.reset_requests_ms = ms;
    std::string out;
    AppendRateLimitHeaders(out, d, false);
    size_t at = out.find("x-ratelimit-reset-requests: ");
    size_t end = out.find("\r\n", at);
    return out.substr(at + 28, end - at - 28);
  };
  EXPECT_EQ(reset(0), "0ms");
  EXPECT_EQ(reset(20), "20ms");
  EXPECT_EQ(reset(999), "999ms");
  EXPECT_EQ(reset(1000), "1s");
  EXPECT_EQ(reset(1500), "1.5s");
  EXPECT_EQ(reset(1234), "1.23s");
  EXPECT_EQ(reset(9999), "10s");
  EXPECT_EQ(reset(12345), "12.3s");
  EXPECT_EQ(reset(59999), "60s");
  EXPECT_EQ(reset(60000), "1m0s");
  EXPECT_EQ(reset(61500), "1m1.5s");
  EXPECT_EQ(reset(360000), "6m0s");
  EXPECT_EQ(reset(60250), "1m0.25s");
}

}  // namespace
}  // namespace tokenway
