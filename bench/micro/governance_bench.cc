// Micro-benchmarks of the governance hot path (Google Benchmark): one local limiter check and
// settlement for a request in three scopes with every limit set (target: <= 1 us), the same with
// four threads sharing one tenant's counters, one scope with one limit, and key authentication
// (SHA-256 + lookup).
// Run: make bench-micro (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <memory>

#include "governance/authenticator.h"
#include "governance/local_limiter.h"
#include "governance/tenant_registry.h"

namespace tokenway {
namespace {

struct LimiterFixture {
  LimiterFixture() : limiter(60'000) {
    LimitSpec all;
    all.requests_per_minute = int64_t{1} << 40;
    all.input_tokens_per_minute = int64_t{1} << 40;
    all.output_tokens_per_minute = int64_t{1} << 40;
    all.tokens_per_minute = int64_t{1} << 40;
    all.concurrent_requests = int64_t{1} << 40;
    all.tokens_per_day = int64_t{1} << 40;
    all.tokens_per_month = int64_t{1} << 40;
    const char* ids[] = {"t:acme", "k:acme:main", "m:acme:llama"};
    for (int i = 0; i < 3; ++i) {
      scopes[i].id = ids[i];
      scopes[i].limits = all;
      scopes[i].counters = limiter.CountersFor(ids[i]);
    }
  }
  LocalLimiter limiter;
  LimitScope scopes[3];
};

LimiterFixture& Shared() {
  static LimiterFixture f;
  return f;
}

void BM_LocalLimiterReserveSettle(benchmark::State& state) {
  LimiterFixture& f = Shared();
  const int64_t now = UnixMillis();
  for (auto _ : state) {
    Reservation r;
    for (auto& s : f.scopes) r.scopes[r.n_scopes++] = &s;
    r.input = 120;
    r.output = 256;
    Decision d = f.limiter.Check(r, now);
    benchmark::DoNotOptimize(d);
    f.limiter.Settle(r, 118, 200);
  }
}
BENCHMARK(BM_LocalLimiterReserveSettle);
BENCHMARK(BM_LocalLimiterReserveSettle)->Threads(4);

// The common case: one tenant scope with a tokens-per-minute limit.
void BM_LocalLimiterOneLimit(benchmark::State& state) {
  static LocalLimiter limiter(60'000);
  static LimitScope scope{"t:one", {}, limiter.CountersFor("t:one")};
  scope.limits.tokens_per_minute = int64_t{1} << 40;
  const int64_t now = UnixMillis();
  for (auto _ : state) {
    Reservation r;
    r.scopes[r.n_scopes++] = &scope;
    r.input = 120;
    r.output = 256;
    Decision d = limiter.Check(r, now);
    benchmark::DoNotOptimize(d);
    limiter.Settle(r, 118, 200);
  }
}
BENCHMARK(BM_LocalLimiterOneLimit);

void BM_AuthenticateKey(benchmark::State& state) {
  GovernanceConfig config;
  TenantConfig tenant;
  tenant.name = "acme";
  tenant.keys.push_back({"main", Sha256Hex("sk-acme-0123456789abcdef0123456789")});
  config.tenants.push_back(tenant);
  LocalLimiter limiter(60'000);
  TenantTable::Binder binder;
  binder.counters = [&](const std::string& id) { return limiter.CountersFor(id); };
  binder.stats = [](const std::string&) { return std::make_shared<TenantStats>(); };
  auto table = TenantTable::Build(config, {}, binder);
  for (auto _ : state) {
    AuthResult r = Authenticate(**table, "Bearer sk-acme-0123456789abcdef0123456789");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_AuthenticateKey);

}  // namespace
}  // namespace tokenway
