// CacheStats: the response cache's counters per tenant and served model — hits, misses, bypasses,
// stores, evictions, bytes and entries held, latency saved (the recorded generation time of the
// answers served) — for /metrics, kept for the life of the process.
//
// Rows are found without a lock: a fixed array of buckets, each a singly linked list whose head
// is swapped in with compare-and-swap when a new (tenant, model) pair first appears; rows are
// never removed. Worker threads add to a row's atomics; the admin thread renders them. The
// request path only asks for rows of configured models and authenticated tenants, which bounds
// their number.
#pragma once

#include <atomic>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

#include "cache/cache_key.h"
#include "cache/semantic_index.h"

namespace tokenway {

class PrometheusText;

struct CacheStatsRow {
  CacheStatsRow(std::string t, std::string m) : tenant(std::move(t)), model(std::move(m)) {}
  const std::string tenant;
  const std::string model;
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> semantic_hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> stores{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> entries{0};
  std::atomic<uint64_t> saved_ns{0};        // generation time of the answers served
  std::atomic<uint64_t> charged_tokens{0};  // tokens charged for hits
  std::atomic<uint64_t> hit_prompt_tokens{0};
  std::atomic<uint64_t> hit_completion_tokens{0};
  std::atomic<uint64_t> bypasses[static_cast<size_t>(CacheBypass::kCount)] = {};
  // The semantic index of this tenant and model (created on first use; owned by the row).
  std::atomic<SemanticIndex*> semantic{nullptr};
  std::atomic<CacheStatsRow*> next{nullptr};
  ~CacheStatsRow() { delete semantic.load(); }
};

// Process-wide counters that belong to no row.
struct CacheTotals {
  std::atomic<uint64_t> busy_lookups{0};  // a shard was locked by another thread: a miss
  std::atomic<uint64_t> busy_stores{0};   // the same for a store: skipped
  std::atomic<uint64_t> too_large{0};     // answers over max_entry_bytes, not stored
  std::atomic<uint64_t> not_storable{0};  // misses whose answer could not be stored
  std::atomic<uint64_t> client_no_cache{0};
  std::atomic<uint64_t> client_no_store{0};
  std::atomic<uint64_t> tenant_disabled{0};
  std::atomic<uint64_t> purged{0};
  std::atomic<uint64_t> remote_hits{0};  // Redis
  std::atomic<uint64_t> remote_misses{0};
  std::atomic<uint64_t> remote_errors{0};  // unreachable, timed out or queue full
  std::atomic<uint64_t> remote_stores{0};
  std::atomic<uint64_t> semantic_busy{0};   // the index was locked by another thread
  std::atomic<uint64_t> semantic_full{0};   // vectors not added: the index is at max_entries
  std::atomic<uint64_t> semantic_stale{0};  // a similar prompt's answer was no longer stored
  // Similarity of semantic hits (cumulated at render time).
  static constexpr double kSimilarityBounds[] = {0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1.0};
  static constexpr size_t kSimilarityBuckets = std::size(kSimilarityBounds);
  std::atomic<uint64_t> similarity[kSimilarityBuckets + 1] = {};
  std::atomic<uint64_t> similarity_sum_micro{0};
  void ObserveSimilarity(float s) {
    size_t i = 0;
    while (i < kSimilarityBuckets && s > kSimilarityBounds[i]) ++i;
    similarity[i].fetch_add(1, std::memory_order_relaxed);
    similarity_sum_micro.fetch_add(static_cast<uint64_t>(s * 1e6), std::memory_order_relaxed);
  }
};

class CacheStats {
 public:
  CacheStats() = default;
  ~CacheStats();
  CacheStats(const CacheStats&) = delete;
  CacheStats& operator=(const CacheStats&) = delete;

  // Any thread: the row of (tenant, model), created on first use.
  CacheStatsRow& Row(std::string_view tenant, std::string_view model);
  CacheTotals& totals() { return totals_; }
  // Any thread: calls fn(row) for every row.
  template <typename Fn>
  void ForEachRow(Fn&& fn) {
    for (auto& b : buckets_) {
      for (CacheStatsRow* r = b.load(std::memory_order_acquire); r;
           r = r->next.load(std::memory_order_acquire)) {
        fn(*r);
      }
    }
  }

  // Admin thread: the tokenway_cache_* families (the store's own gauges are passed in).
  void Render(PrometheusText& t, uint64_t bytes, uint64_t entries, uint64_t max_bytes) const;

 private:
  static constexpr size_t kBuckets = 256;
  std::atomic<CacheStatsRow*> buckets_[kBuckets] = {};
  CacheTotals totals_;
};

}  // namespace tokenway
