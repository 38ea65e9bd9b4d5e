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
#include "cache/semantic_index.h"
#include "semantic/text_vector.h"
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

  // Any thread: the semantic index of `row` (created on first use with `config`'s sizes).
  SemanticIndex& SemanticFor(CacheStatsRow& row, const CacheSemanticConfig& config);
  // Any thread: the prompt's lexical vector folded to `dimension` floats into `out` (empty when
  // the text has no features); `scratch` keeps its capacity across calls.
  void Vectorize(std::string_view text, uint32_t dimension, semantic::SparseVector& scratch,
                 std::vector<float>& out) const;

  // Admin thread: removes the entries of `tenant` and/or `model` (empty: any) from both stores;
  // how many in-process entries and Redis keys were removed.
  struct Purged {
    size_t memory = 0;
    size_t semantic = 0;  // prompt vectors forgotten
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
  // IDF not fitted: every feature weighs the same, so no corpus is needed and the vectors of
  // two prompts do not depend on what else was stored.
  const semantic::TextVectorizer vectorizer_;
  std::atomic<RedisStore*> redis_{nullptr};
};

}  // namespace tokenway
