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

void ResponseCache::Render(PrometheusText& t) const {
  stats_.Render(t, memory_.bytes(), memory_.entries(), memory_.max_bytes());
}

}  // namespace tokenway
