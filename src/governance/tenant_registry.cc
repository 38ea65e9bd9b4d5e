#include "governance/tenant_registry.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace tokenway {

std::string_view TenantOutcomeName(TenantOutcome o) {
  switch (o) {
    case TenantOutcome::kAllowed:
      return "allowed";
    case TenantOutcome::kRateLimited:
      return "rate_limited";
    case TenantOutcome::kForbidden:
      return "forbidden";
    case TenantOutcome::kInvalid:
      return "invalid";
    case TenantOutcome::kLimiterUnavailable:
      return "limiter_unavailable";
  }
  return "unknown";
}

bool Tenant::MayUse(std::string_view model) const {
  return models.empty() || std::binary_search(models.begin(), models.end(), model);
}

const LimitScope* Tenant::ModelScope(std::string_view model) const {
  auto it = per_model.find(model);
  return it == per_model.end() ? nullptr : &it->second;
}

bool ParseDigestHex(std::string_view hex, KeyDigest& out) {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

KeyDigest DigestOf(std::string_view key) {
  KeyDigest d;
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), d.data());
  return d;
}

bool DigestEquals(const KeyDigest& a, const KeyDigest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

StatusOr<std::unique_ptr<TenantTable>> TenantTable::Build(
    const GovernanceConfig& config, const std::vector<KeyFileEntry>& file_keys,
    const Binder& binder) {
  auto table = std::make_unique<TenantTable>();
  std::map<std::string, Tenant*, std::less<>> by_name;
  for (const TenantConfig& tc : config.tenants) {
    auto t = std::make_unique<Tenant>();
    t->name = tc.name;
    t->has_priority = tc.has_priority;
    t->priority = tc.priority;
    t->models = tc.models;
    std::sort(t->models.begin(), t->models.end());
    t->labels = tc.labels;
    t->cache = tc.cache;
    t->max_tokens_cap = tc.max_tokens_cap > 0 ? tc.max_tokens_cap : config.default_max_tokens;
    t->scope.id = "t:" + tc.name;
    t->scope.limits = tc.limits;
    t->scope.counters = binder.counters(t->scope.id);
    t->per_key = tc.per_key;
    for (const auto& [model, limits] : tc.per_model) {
      LimitScope& s = t->per_model[model];
      s.id = "m:" + tc.name + ":" + model;
      s.limits = limits;
      s.counters = binder.counters(s.id);
    }
    t->stats = binder.stats(tc.name);
    by_name[t->name] = t.get();
    table->tenants_.push_back(std::move(t));
  }
  auto add_key = [&](Tenant* tenant, const std::string& id, const std::string& hex,
                     const std::string& where) -> Status {
    auto key = std::make_unique<ApiKey>();
    if (!ParseDigestHex(hex, key->digest)) return Status::Error(where + ": invalid digest");
    key->id = id;
    key->tenant = tenant;
    if (tenant->per_key.any()) {
      key->scope = std::make_unique<LimitScope>();
      key->scope->id = "k:" + tenant->name + ":" + id;
      key->scope->limits = tenant->per_key;
      key->scope->counters = binder.counters(key->scope->id);
    }
    KeyDigest digest = key->digest;
    if (!table->keys_.emplace(digest, std::move(key)).second) {
      return Status::Error(where + ": the same key is listed twice");
    }
    return Status::Ok();
  };
  for (const TenantConfig& tc : config.tenants) {
    for (const ApiKeyConfig& k : tc.keys) {
      Status s =
          add_key(by_name[tc.name], k.id, k.sha256, "tenant '" + tc.name + "' key '" + k.id + "'");
      if (!s.ok()) return s;
    }
  }
  for (size_t i = 0; i < file_keys.size(); ++i) {
    const KeyFileEntry& e = file_keys[i];
    auto it = by_name.find(e.tenant);
    std::string where = config.keys_file + ": key '" + e.id + "'";
    if (it == by_name.end())
      return Status::Error(where + " names unknown tenant '" + e.tenant + "'");
    Status s = add_key(it->second, e.id, e.sha256, where);
    if (!s.ok()) return s;
  }
  if (!config.anonymous_tenant.empty()) table->anonymous_ = by_name.at(config.anonymous_tenant);
  return table;
}

bool TenantTable::DigestEq::operator()(const KeyDigest& a, const KeyDigest& b) const {
  return DigestEquals(a, b);
}

const ApiKey* TenantTable::FindKey(const KeyDigest& digest) const {
  auto it = keys_.find(digest);
  return it == keys_.end() ? nullptr : it->second.get();
}

}  // namespace tokenway
