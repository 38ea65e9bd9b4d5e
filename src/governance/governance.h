// Governance: the state that ties tenants, keys and limiters together for the gateway.
//
//   GovernanceState     process-lived (control thread builds, everyone reads): the limiter
//                       backend, limit counters and per-tenant statistics that survive reloads,
//                       the last good keys file, and the counters /metrics shows.
//   GovernanceSnapshot  immutable, one per Runtime: the TenantTable of that configuration and
//                       the limiter it uses.
//   RequestGovernance   per request on a worker: the tenant, its reservation, the x-ratelimit
//                       headers; settles exactly once (Finish) on every exit path.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/file_stamp.h"
#include "common/usage.h"
#include "governance/authenticator.h"
#include "governance/governance_config.h"
#include "governance/keys_file.h"
#include "governance/limiter.h"
#include "governance/tenant_registry.h"

namespace tokenway {

class PrometheusText;
class LocalLimiter;
class RedisLimiter;

struct GovernanceSnapshot {
  GovernanceConfig config;
  std::unique_ptr<TenantTable> table;
  std::shared_ptr<Limiter> limiter;
  std::shared_ptr<class GovernanceState> state;
  bool post_hoc = false;  // charge: post_hoc
};

class GovernanceState : public std::enable_shared_from_this<GovernanceState> {
 public:
  // Control thread. Builds the snapshot for `config`. Reads the keys file (when one is named);
  // a keys file with errors fails the build at start-up, and later is counted, reported in
  // `warning` and replaced by the keys last loaded without error.
  StatusOr<std::shared_ptr<const GovernanceSnapshot>> Build(const GovernanceConfig& config,
                                                            bool startup, std::string& warning);
  // Control thread, at shutdown before the workers stop: stops the Redis connection threads.
  void Stop();
  // Control thread: true when the keys file changed since it was last read.
  bool KeysFileChanged(const GovernanceConfig& config) const;

  std::atomic<uint64_t> auth_failures[kAuthFailures] = {};
  std::atomic<uint64_t> keys_reloads_ok{0};
  std::atomic<uint64_t> keys_reloads_failed{0};

  // Admin thread: appends the governance families to a /metrics scrape.
  void RenderMetrics(PrometheusText& t, const GovernanceSnapshot* current) const;

 private:
  std::shared_ptr<Limiter> LimiterFor(const GovernanceConfig& config);
  std::shared_ptr<TenantStats> StatsFor(const std::string& tenant);

  std::shared_ptr<LocalLimiter> local_;
  int64_t local_window_ms_ = 0;
  std::shared_ptr<RedisLimiter> redis_;
  std::vector<std::shared_ptr<RedisLimiter>> retired_redis_;  // counted in metrics still
  std::map<std::string, std::shared_ptr<TenantStats>> stats_;
  std::vector<KeyFileEntry> keys_;
  std::string keys_path_;
  FileStamp keys_stamp_;
  mutable std::mutex mu_;  // stats_ and redis limiters: control thread writes, admin reads
};

// The per-request part of governance; a ClientSession member, reused across requests.
class RequestGovernance {
 public:
  void Begin(const GovernanceSnapshot* snapshot) {
    snapshot_ = snapshot;
    tenant_ = nullptr;
    key_ = nullptr;
    reservation_ = Reservation{};
    estimated_input_ = 0;
    headers_.clear();
  }
  const Tenant* tenant() const { return tenant_; }
  const std::string& headers() const { return headers_; }

  // Settles the reservation once with what the request really used: the usage block when there
  // was one; for a stream cut short, the events relayed (one token each) plus the input
  // estimate; a response delivered (status 200) without usage keeps its reservation as the
  // charge; nothing produced: released. Safe to call when nothing was reserved.
  void Finish(const TokenUsage& usage, uint32_t stream_events, int status);

  // The phase itself lives in the gateway (gateway/phases/govern.cc); these are its results.
  const GovernanceSnapshot* snapshot_ = nullptr;
  const Tenant* tenant_ = nullptr;
  const ApiKey* key_ = nullptr;
  Reservation reservation_;
  int64_t estimated_input_ = 0;
  std::string headers_;  // x-ratelimit-* lines for the response head
};

// Appends OpenAI's x-ratelimit-* headers for `d` (and Retry-After when `retry`).
void AppendRateLimitHeaders(std::string& out, const Decision& d, bool retry);

}  // namespace tokenway
