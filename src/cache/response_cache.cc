#include "cache/response_cache.h"

namespace tokenway {

ResponseCache::ResponseCache(const CacheConfig& config) : memory_(config.max_bytes) {
  Apply(config);
}

ResponseCache::~ResponseCache() {
  Stop();
}

void ResponseCache::Apply(const CacheConfig& config) {
  memory_.set_max_bytes(config.max_bytes);
  if (!config.redis_enabled()) return;
  std::lock_guard lock(mu_);
  if (redis_owner_) {
    redis_owner_->Configure(config.redis);
    return;
  }
  redis_owner_ = std::make_unique<RedisStore>(config.redis);
  redis_.store(redis_owner_.get(), std::memory_order_release);
}

void ResponseCache::Stop() {
  std::lock_guard lock(mu_);
  if (redis_owner_) redis_owner_->Stop();
}

ResponseCache::Purged ResponseCache::Purge(std::string_view tenant, std::string_view model) {
  Purged p;
  p.memory = memory_.Purge(tenant, model);
  stats_.totals().purged.fetch_add(p.memory, std::memory_order_relaxed);
  stats_.ForEachRow([&](CacheStatsRow& row) {
    if ((!tenant.empty() && row.tenant != tenant) || (!model.empty() && row.model != model)) {
      return;
    }
    if (SemanticIndex* index = row.semantic.load(std::memory_order_acquire)) {
      p.semantic += index->Clear();
    }
  });
  if (RedisStore* r = redis()) {
    auto removed = r->Purge(tenant, model);
    if (removed.ok()) {
      p.redis = *removed;
    } else {
      p.redis_error = removed.status().message();
    }
  }
  return p;
}

SemanticIndex& ResponseCache::SemanticFor(CacheStatsRow& row, const CacheSemanticConfig& config) {
  // A reload that changes the dimension keeps the first index: its lookups then find nothing.
  if (SemanticIndex* index = row.semantic.load(std::memory_order_acquire)) return *index;
  auto fresh =
      std::make_unique<SemanticIndex>(config.dimension, config.exact_below, config.max_entries);
  SemanticIndex* expected = nullptr;
  if (row.semantic.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) {
    return *fresh.release();
  }
  return *expected;
}

void ResponseCache::Vectorize(std::string_view text, uint32_t dimension,
                              semantic::SparseVector& scratch, std::vector<float>& out) const {
  vectorizer_.Vectorize(text, scratch);
  if (scratch.empty()) {
    out.clear();
    return;
  }
  out.assign(dimension, 0.0f);
  semantic::TextVectorizer::Fold(scratch, out);
}

void ResponseCache::Render(PrometheusText& t) const {
  stats_.Render(t, memory_.bytes(), memory_.entries(), memory_.max_bytes());
}

}  // namespace tokenway
