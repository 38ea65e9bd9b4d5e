#include "cache/cache_stats.h"

#include <xxhash.h>

#include "telemetry/prometheus_text.h"

namespace tokenway {

CacheStats::~CacheStats() {
  for (auto& b : buckets_) {
    CacheStatsRow* r = b.load();
    while (r) {
      CacheStatsRow* next = r->next.load();
      delete r;
      r = next;
    }
  }
}

CacheStatsRow& CacheStats::Row(std::string_view tenant, std::string_view model) {
  const uint64_t h = XXH3_64bits_withSeed(model.data(), model.size(), tenant.size()) ^
                     XXH3_64bits(tenant.data(), tenant.size());
  std::atomic<CacheStatsRow*>& bucket = buckets_[h % kBuckets];
  CacheStatsRow* head = bucket.load(std::memory_order_acquire);
  for (CacheStatsRow* r = head; r; r = r->next.load(std::memory_order_acquire)) {
    if (r->tenant == tenant && r->model == model) return *r;
  }
  auto fresh = std::make_unique<CacheStatsRow>(std::string(tenant), std::string(model));
  for (;;) {
    fresh->next.store(head, std::memory_order_relaxed);
    if (bucket.compare_exchange_weak(head, fresh.get(), std::memory_order_acq_rel)) {
      return *fresh.release();
    }
    // Another thread inserted first: it may have inserted this very pair.
    for (CacheStatsRow* r = head; r; r = r->next.load(std::memory_order_acquire)) {
      if (r->tenant == tenant && r->model == model) return *r;
    }
  }
}

void CacheStats::Render(PrometheusText& t, uint64_t bytes, uint64_t entries,
                        uint64_t max_bytes) const {
  auto each = [&](auto&& fn) {
    for (const auto& b : buckets_) {
      for (CacheStatsRow* r = b.load(std::memory_order_acquire); r;
           r = r->next.load(std::memory_order_acquire)) {
        fn(*r);
      }
    }
  };
  auto counter = [&](const char* name, const char* help, auto field) {
    t.Family(name, "counter", help);
    each([&](const CacheStatsRow& r) {
      t.Sample(name, {{"tenant", r.tenant}, {"model", r.model}},
               static_cast<uint64_t>((r.*field).load(std::memory_order_relaxed)));
    });
  };
  counter("tokenway_cache_hits_total", "Requests answered from the response cache.",
          &CacheStatsRow::hits);
  counter("tokenway_cache_semantic_hits_total",
          "Of the cache hits, those found by prompt similarity rather than the exact key.",
          &CacheStatsRow::semantic_hits);
  counter("tokenway_cache_misses_total",
          "Cacheable requests the response cache did not answer (sent upstream).",
          &CacheStatsRow::misses);
  counter("tokenway_cache_stores_total", "Answers stored in the response cache.",
          &CacheStatsRow::stores);
  counter("tokenway_cache_evictions_total",
          "Entries the in-process store dropped for room or because their TTL passed.",
          &CacheStatsRow::evictions);
  counter("tokenway_cache_charged_tokens_total",
          "Tokens charged to tenants for cache hits (cache.charge).",
          &CacheStatsRow::charged_tokens);
  t.Family("tokenway_cache_hit_tokens_total", "counter",
           "Tokens of the answers served from the cache, by kind (not generated again).");
  each([&](const CacheStatsRow& r) {
    t.Sample("tokenway_cache_hit_tokens_total",
             {{"tenant", r.tenant}, {"model", r.model}, {"kind", "input"}},
             r.hit_prompt_tokens.load(std::memory_order_relaxed));
    t.Sample("tokenway_cache_hit_tokens_total",
             {{"tenant", r.tenant}, {"model", r.model}, {"kind", "output"}},
             r.hit_completion_tokens.load(std::memory_order_relaxed));
  });
  t.Family("tokenway_cache_latency_saved_seconds_total", "counter",
           "Recorded generation time of the answers served from the cache.");
  each([&](const CacheStatsRow& r) {
    t.Sample("tokenway_cache_latency_saved_seconds_total",
             {{"tenant", r.tenant}, {"model", r.model}},
             static_cast<double>(r.saved_ns.load(std::memory_order_relaxed)) / 1e9);
  });
  t.Family("tokenway_cache_bypasses_total", "counter",
           "Requests that did not use the response cache, by reason.");
  each([&](const CacheStatsRow& r) {
    for (size_t i = 1; i < static_cast<size_t>(CacheBypass::kCount); ++i) {
      const uint64_t v = r.bypasses[i].load(std::memory_order_relaxed);
      if (v == 0) continue;
      t.Sample("tokenway_cache_bypasses_total",
               {{"tenant", r.tenant},
                {"model", r.model},
                {"reason", CacheBypassName(static_cast<CacheBypass>(i))}},
               v);
    }
  });
  t.Family("tokenway_cache_entry_bytes", "gauge",
           "Bytes the in-process store holds, by tenant and model.");
  each([&](const CacheStatsRow& r) {
    const int64_t v = r.bytes.load(std::memory_order_relaxed);
    t.Sample("tokenway_cache_entry_bytes", {{"tenant", r.tenant}, {"model", r.model}},
             static_cast<uint64_t>(v < 0 ? 0 : v));
  });
  t.Family("tokenway_cache_model_entries", "gauge",
           "Entries the in-process store holds, by tenant and model.");
  each([&](const CacheStatsRow& r) {
    const int64_t v = r.entries.load(std::memory_order_relaxed);
    t.Sample("tokenway_cache_model_entries", {{"tenant", r.tenant}, {"model", r.model}},
             static_cast<uint64_t>(v < 0 ? 0 : v));
  });
  t.Family("tokenway_cache_bytes", "gauge", "Bytes the in-process response store holds.");
  t.Sample("tokenway_cache_bytes", {}, bytes);
  t.Family("tokenway_cache_max_bytes", "gauge", "The in-process response store's bound.");
  t.Sample("tokenway_cache_max_bytes", {}, max_bytes);
  t.Family("tokenway_cache_entries", "gauge", "Entries in the in-process response store.");
  t.Sample("tokenway_cache_entries", {}, entries);
  const CacheTotals& c = totals_;
  auto total = [&](const char* name, const char* help, const std::atomic<uint64_t>& v) {
    t.Family(name, "counter", help);
    t.Sample(name, {}, v.load(std::memory_order_relaxed));
  };
  total("tokenway_cache_busy_lookups_total",
        "Lookups that found their store shard locked by another thread (counted as misses).",
        c.busy_lookups);
  total("tokenway_cache_busy_stores_total",
        "Stores skipped because their store shard was locked by another thread.", c.busy_stores);
  total("tokenway_cache_too_large_total", "Answers larger than cache.max_entry_bytes.",
        c.too_large);
  total("tokenway_cache_not_storable_total",
        "Misses whose answer was not stored (not a complete 200 with finish_reason stop).",
        c.not_storable);
  total("tokenway_cache_client_no_cache_total",
        "Requests whose Cache-Control: no-cache kept them from reading the cache.",
        c.client_no_cache);
  total("tokenway_cache_client_no_store_total",
        "Requests whose Cache-Control: no-store kept their answer out of the cache.",
        c.client_no_store);
  total("tokenway_cache_tenant_disabled_total",
        "Requests of tenants with cache: false (the cache was not used).", c.tenant_disabled);
  total("tokenway_cache_purged_total", "Entries removed by POST /admin/cache/purge.", c.purged);
  total("tokenway_cache_remote_hits_total", "Lookups answered by the Redis store.", c.remote_hits);
  total("tokenway_cache_remote_misses_total", "Lookups the Redis store did not answer.",
        c.remote_misses);
  total("tokenway_cache_remote_errors_total",
        "Redis store operations that failed, timed out or found the queue full.", c.remote_errors);
  total("tokenway_cache_remote_stores_total", "Answers written to the Redis store.",
        c.remote_stores);
  total("tokenway_cache_semantic_busy_total",
        "Semantic lookups or adds that found the index locked by another thread.", c.semantic_busy);
  total("tokenway_cache_semantic_full_total",
        "Prompt vectors not added because the semantic index was at max_entries.", c.semantic_full);
  total("tokenway_cache_semantic_stale_total",
        "Semantic matches whose answer had left the store (counted as misses).", c.semantic_stale);
  t.Family("tokenway_cache_semantic_entries", "gauge",
           "Prompt vectors in the semantic index, by tenant and model.");
  each([&](const CacheStatsRow& r) {
    const SemanticIndex* index = r.semantic.load(std::memory_order_acquire);
    if (!index) return;
    t.Sample("tokenway_cache_semantic_entries", {{"tenant", r.tenant}, {"model", r.model}},
             static_cast<uint64_t>(index->size()));
  });
  t.Family("tokenway_cache_semantic_similarity", "histogram",
           "Prompt similarity (cosine of lexical vectors) of semantic cache hits.");
  uint64_t counts[CacheTotals::kSimilarityBuckets];
  for (size_t i = 0; i < CacheTotals::kSimilarityBuckets; ++i) {
    counts[i] = c.similarity[i].load(std::memory_order_relaxed);
  }
  t.Histogram("tokenway_cache_semantic_similarity", {}, CacheTotals::kSimilarityBounds, counts,
              CacheTotals::kSimilarityBuckets,
              c.similarity[CacheTotals::kSimilarityBuckets].load(std::memory_order_relaxed),
              static_cast<double>(c.similarity_sum_micro.load(std::memory_order_relaxed)) / 1e6);
}

}  // namespace tokenway
