#include "governance/governance.h"

#include <cstdio>

#include "governance/local_limiter.h"
#include "governance/redis_limiter.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {

namespace {

int64_t WindowMs(const GovernanceConfig& c) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(c.window).count();
}

// Seconds with three significant digits, trailing zeros dropped ("1.5", "12.3", "0.25"), in
// integer arithmetic: this runs for every admitted request.
void AppendSeconds(std::string& out, int64_t ms) {
  const int decimals = ms >= 10'000 ? 1 : ms >= 1'000 ? 2 : 3;
  const int64_t div = decimals == 1 ? 100 : decimals == 2 ? 10 : 1;
  const int64_t scale = decimals == 1 ? 10 : decimals == 2 ? 100 : 1000;
  int64_t q = (ms + div / 2) / div;  // in units of 10^-decimals seconds
  out.append(std::to_string(q / scale));
  int64_t frac = q % scale;
  if (frac == 0) return;
  char digits[4] = {};
  for (int i = decimals - 1; i >= 0; --i, frac /= 10)
    digits[i] = static_cast<char>('0' + frac % 10);
  int n = decimals;
  while (n > 0 && digits[n - 1] == '0') --n;
  out.push_back('.');
  out.append(digits, static_cast<size_t>(n));
}

// OpenAI's reset format: "20ms", "1.5s", "6m0s".
void AppendReset(std::string& out, int64_t ms) {
  if (ms < 1000) {
    out.append(std::to_string(ms)).append("ms");
  } else if (ms < 60'000) {
    AppendSeconds(out, ms);
    out.push_back('s');
  } else {
    out.append(std::to_string(ms / 60'000)).push_back('m');
    AppendSeconds(out, ms % 60'000);
    out.push_back('s');
  }
}

}  // namespace

void AppendRateLimitHeaders(std::string& out, const Decision& d, bool retry) {
  if (d.limit_requests >= 0) {
    out.append("x-ratelimit-limit-requests: ").append(std::to_string(d.limit_requests));
    out.append("\r\nx-ratelimit-remaining-requests: ").append(std::to_string(d.remaining_requests));
    out.append("\r\nx-ratelimit-reset-requests: ");
    AppendReset(out, d.reset_requests_ms);
    out.append("\r\n");
  }
  if (d.limit_tokens >= 0) {
    out.append("x-ratelimit-limit-tokens: ").append(std::to_string(d.limit_tokens));
    out.append("\r\nx-ratelimit-remaining-tokens: ").append(std::to_string(d.remaining_tokens));
    out.append("\r\nx-ratelimit-reset-tokens: ");
    AppendReset(out, d.reset_tokens_ms);
    out.append("\r\n");
  }
  if (retry) {
    out.append("Retry-After: ").append(std::to_string((d.retry_after_ms + 999) / 1000));
    out.append("\r\n");
  }
}

void RequestGovernance::Finish(const TokenUsage& usage, uint32_t stream_events, int status) {
  if (!snapshot_ || !reservation_.held) return;
  Limiter& limiter = *snapshot_->limiter;
  int64_t input;
  int64_t output;
  if (usage.known()) {
    input = usage.prompt_tokens >= 0 ? usage.prompt_tokens : estimated_input_;
    output = std::max<int64_t>(0, usage.completion_tokens);
  } else if (stream_events > 0) {
    input = estimated_input_;
    output = stream_events;
  } else if (status == 200) {  // an upstream that reports no usage is charged the reservation
    input = estimated_input_;
    output = reservation_.output;
  } else {
    limiter.Release(reservation_);
    return;
  }
  limiter.Settle(reservation_, input, output);
  if (tenant_) {
    tenant_->stats->input_tokens.fetch_add(static_cast<uint64_t>(input), std::memory_order_relaxed);
    tenant_->stats->output_tokens.fetch_add(static_cast<uint64_t>(output),
                                            std::memory_order_relaxed);
  }
}

std::shared_ptr<TenantStats> GovernanceState::StatsFor(const std::string& tenant) {
  std::lock_guard lock(mu_);
  auto& slot = stats_[tenant];
  if (!slot) slot = std::make_shared<TenantStats>();
  return slot;
}

std::shared_ptr<Limiter> GovernanceState::LimiterFor(const GovernanceConfig& config) {
  const int64_t window_ms = WindowMs(config);
  if (config.backend == "local") return local_;
  std::lock_guard lock(mu_);
  if (!redis_ || !redis_->Matches(config.redis, window_ms)) {
    if (redis_) retired_redis_.push_back(redis_);
    redis_ = std::make_shared<RedisLimiter>(config.redis, window_ms);
  }
  return redis_;
}

void GovernanceState::Stop() {
  std::lock_guard lock(mu_);
  for (const auto& r : retired_redis_) r->Stop();
  if (redis_) redis_->Stop();
}

bool GovernanceState::KeysFileChanged(const GovernanceConfig& config) const {
  if (config.keys_file.empty()) return false;
  return FileStamp::Of(config.keys_file) != keys_stamp_ || config.keys_file != keys_path_;
}

StatusOr<std::shared_ptr<const GovernanceSnapshot>> GovernanceState::Build(
    const GovernanceConfig& config, bool startup, std::string& warning) {
  std::vector<KeyFileEntry> keys = keys_;
  bool keys_loaded = false;
  if (!config.keys_file.empty()) {
    keys_stamp_ = FileStamp::Of(config.keys_file);
    keys_path_ = config.keys_file;
    auto loaded = LoadKeysFile(config.keys_file);
    if (loaded.ok()) {
      keys = std::move(*loaded);
      keys_loaded = true;
    } else {
      if (startup) return Status::Error("governance.keys_file: " + loaded.status().message());
      keys_reloads_failed.fetch_add(1, std::memory_order_relaxed);
      warning = "keys file rejected, keeping the keys loaded before: " + loaded.status().message();
    }
  } else {
    keys.clear();
    keys_path_.clear();
  }
  auto snapshot = std::make_shared<GovernanceSnapshot>();
  snapshot->config = config;
  snapshot->post_hoc = config.charge == "post_hoc";
  snapshot->state = shared_from_this();
  const int64_t window_ms = WindowMs(config);
  if (!local_ || local_window_ms_ != window_ms) {
    local_ = std::make_shared<LocalLimiter>(window_ms);  // a new window length starts afresh
    local_window_ms_ = window_ms;
  }
  std::shared_ptr<LocalLimiter> local = local_;
  TenantTable::Binder binder;
  binder.counters = [&](const std::string& id) { return local->CountersFor(id); };
  binder.stats = [&](const std::string& tenant) { return StatsFor(tenant); };
  auto table = TenantTable::Build(config, keys, binder);
  if (!table.ok() && keys_loaded && !startup) {
    // The new keys file names a tenant the configuration does not have: reject the file.
    keys_reloads_failed.fetch_add(1, std::memory_order_relaxed);
    warning = "keys file rejected, keeping the keys loaded before: " + table.status().message();
    keys_loaded = false;
    table = TenantTable::Build(config, keys_, binder);
  }
  if (!table.ok()) return table.status();
  if (keys_loaded) {
    keys_ = std::move(keys);
    if (!startup) keys_reloads_ok.fetch_add(1, std::memory_order_relaxed);
  }
  snapshot->table = std::move(*table);
  snapshot->limiter = LimiterFor(config);
  return std::shared_ptr<const GovernanceSnapshot>(std::move(snapshot));
}

void GovernanceState::RenderMetrics(PrometheusText& t, const GovernanceSnapshot* current) const {
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  if (current) {
    const auto& tenants = current->table->tenants();
    t.Family("tokenway_tenant_requests_total", "counter",
             "Requests per tenant by governance outcome.");
    for (const auto& tenant : tenants) {
      for (int o = 0; o < kTenantOutcomes; ++o) {
        t.Sample("tokenway_tenant_requests_total",
                 {{"tenant", tenant->name},
                  {"outcome", TenantOutcomeName(static_cast<TenantOutcome>(o))}},
                 load(tenant->stats->requests[o]));
      }
    }
    t.Family("tokenway_tenant_tokens_total", "counter",
             "Tokens settled per tenant (real usage, or tokens streamed before an abort).");
    for (const auto& tenant : tenants) {
      t.Sample("tokenway_tenant_tokens_total", {{"tenant", tenant->name}, {"type", "input"}},
               load(tenant->stats->input_tokens));
      t.Sample("tokenway_tenant_tokens_total", {{"tenant", tenant->name}, {"type", "output"}},
               load(tenant->stats->output_tokens));
    }
    t.Family("tokenway_rate_limited_total", "counter",
             "Requests refused with 429 per tenant and the limit that refused them.");
    for (const auto& tenant : tenants) {
      for (int k = 0; k < kLimitKinds; ++k) {
        t.Sample("tokenway_rate_limited_total",
                 {{"tenant", tenant->name}, {"limit", LimitName(static_cast<LimitKind>(k))}},
                 load(tenant->stats->rate_limited[k]));
      }
    }
    t.Family("tokenway_tenant_info", "gauge", "Configured tenants and their labels (always 1).");
    for (const auto& tenant : tenants) {
      std::vector<std::string> keys;
      for (const auto& [k, v] : tenant->labels) keys.push_back("label_" + k);
      std::vector<Label> labels = {{"tenant", tenant->name}};
      size_t i = 0;
      for (const auto& [k, v] : tenant->labels) labels.push_back({keys[i++], v});
      t.Sample("tokenway_tenant_info", labels, 1.0);
    }
  }
  t.Family("tokenway_auth_failures_total", "counter", "Requests refused with 401 by reason.");
  for (int r = 1; r < kAuthFailures; ++r) {
    t.Sample("tokenway_auth_failures_total",
             {{"reason", AuthFailureName(static_cast<AuthFailure>(r))}}, load(auth_failures[r]));
  }
  t.Family("tokenway_keys_reloads_total", "counter", "Keys-file reloads by result.");
  t.Sample("tokenway_keys_reloads_total", {{"result", "success"}}, load(keys_reloads_ok));
  t.Sample("tokenway_keys_reloads_total", {{"result", "failure"}}, load(keys_reloads_failed));
  std::lock_guard lock(mu_);
  uint64_t errors = 0, open = 0, closed = 0;
  bool up = false;
  for (const auto& r : retired_redis_) {
    errors += load(r->backend_errors);
    open += load(r->failed_open);
    closed += load(r->failed_closed);
  }
  if (redis_) {
    errors += load(redis_->backend_errors);
    open += load(redis_->failed_open);
    closed += load(redis_->failed_closed);
    up = redis_->connected.load(std::memory_order_relaxed);
  }
  t.Family("tokenway_limiter_backend_errors_total", "counter",
           "Limiter backend commands that failed or timed out.");
  t.Sample("tokenway_limiter_backend_errors_total", {{"backend", "redis"}}, errors);
  t.Family("tokenway_limiter_fail_open_total", "counter",
           "Requests allowed without a limit check because the limiter backend was unavailable.");
  t.Sample("tokenway_limiter_fail_open_total", {}, open);
  t.Family("tokenway_limiter_fail_closed_total", "counter",
           "Requests refused because the limiter backend was unavailable.");
  t.Sample("tokenway_limiter_fail_closed_total", {}, closed);
  if (redis_) {
    t.Family("tokenway_limiter_backend_up", "gauge",
             "1 while the connection to the limiter backend is established.");
    t.Sample("tokenway_limiter_backend_up", {{"backend", "redis"}}, uint64_t{up ? 1u : 0u});
  }
}

}  // namespace tokenway
