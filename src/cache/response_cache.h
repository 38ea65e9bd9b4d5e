// ResponseCache: the process's response cache — the in-process store every worker shares, the
// Redis store replicas share (when cache.backend is redis), and their counters. Created once by
// the gateway (it outlives configuration reloads, which may change its bounds); the request path
// reaches it through GatewayShared, the admin listener for purges and /metrics.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string_view>

#include "cache/cache_config.h"
#include "cache/cache_stats.h"
#include "cache/memory_store.h"
#include "cache/redis_store.h"
#include "tokenway/status.h"

namespace tokenway {

class PrometheusText;

class ResponseCache {
 public:
  explicit ResponseCache(const CacheConfig& config);
  ~ResponseCache();
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  // Control thread, at start and on every accepted reload: the store's bound, and the Redis
  // store (created the first time a configuration names it; reconfigured afterwards).
  void Apply(const CacheConfig& config);
  // Control thread at shutdown, before the workers stop.
  void Stop();

  MemoryStore& memory() { return memory_; }
  CacheStats& stats() { return stats_; }
  // Null until a configuration used the Redis backend.
  RedisStore* redis() { return redis_.load(std::memory_order_acquire); }

  // Admin thread: removes the entries of `tenant` and/or `model` (empty: any) from both stores;
  // how many in-process entries and Redis keys were removed.
  struct Purged {
    size_t memory = 0;
    size_t redis = 0;
    std::string redis_error;  // empty when Redis was not used or answered
  };
  Purged Purge(std::string_view tenant, std::string_view model);

  // Admin thread: the tokenway_cache_* families.
  void Render(PrometheusText& t) const;

 private:
  MemoryStore memory_;
  CacheStats stats_;
  std::mutex mu_;  // control and admin threads: creating the Redis store
  std::unique_ptr<RedisStore> redis_owner_;
  std::atomic<RedisStore*> redis_{nullptr};
};

}  // namespace tokenway
