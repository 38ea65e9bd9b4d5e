// CacheConfig: the `cache:` section — the response cache's typed configuration, loaded by the
// control thread (control/config.cc calls LoadCacheConfig) and read by the request path from the
// pinned Runtime snapshot. Errors name the file, line and field.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "tokenway/status.h"

namespace tokenway {

// What a tenant is charged for an answer served from the cache.
enum class CacheCharge : uint8_t {
  kNone,   // nothing
  kInput,  // the prompt tokens (the default)
  kFull,   // prompt and completion tokens, as if generated
};
std::string_view CacheChargeName(CacheCharge c);

struct CacheRedisConfig {
  std::string address = "127.0.0.1:6379";  // host:port
  // A lookup that takes longer counts as a miss (the request goes upstream).
  Duration timeout = std::chrono::milliseconds(20);
  std::string key_prefix = "tokenway:cache:";
};

// The semantic cache: a miss of the exact key may still be answered by the stored answer of a
// similar prompt (same tenant, served model and other parameters).
struct CacheSemanticConfig {
  bool enabled = false;
  float threshold = 0.9f;         // cosine similarity of the prompts' lexical vectors
  uint32_t dimension = 256;       // dense dimension the sparse vectors are folded to
  uint32_t exact_below = 4096;    // exact scan below this many vectors, HNSW from there on
  uint32_t max_entries = 100000;  // per tenant and model; beyond it no more vectors are added
};

struct CacheConfig {
  bool enabled = false;  // a `cache:` section turns it on unless it says enabled: false
  // memory: the in-process store only; redis: the in-process store in front of Redis, which
  // replicas share (a local miss asks Redis; a store goes to both).
  std::string backend = "memory";
  uint64_t max_bytes = 256ull << 20;      // the in-process store's bound (all workers together)
  uint64_t max_entry_bytes = 1ull << 20;  // larger answers are not stored
  Duration ttl = std::chrono::minutes(10);
  // Only requests whose sampling is deterministic (temperature 0, or top_k 1) are cached.
  bool deterministic_only = true;
  // Requests that offer tools are cached too (their tools' effects are the client's business).
  bool allow_tools = false;
  CacheCharge charge = CacheCharge::kInput;
  CacheRedisConfig redis;
  CacheSemanticConfig semantic;

  bool redis_enabled() const { return enabled && backend == "redis"; }
};

class JsonWriter;

// Reads a `cache:` mapping. `source` names the file in error messages.
StatusOr<CacheConfig> LoadCacheConfig(const YAML::Node& node, const std::string& source);
// The section as /admin/config shows it.
void WriteCacheConfig(JsonWriter& w, const CacheConfig& c);

}  // namespace tokenway
