// GovernanceConfig: the `governance:` section of the configuration (tenants, keys, limits,
// limiter backend), and its YAML loader.
//
// Loaded on the control thread together with the rest of the configuration (control/config.cc
// calls LoadGovernanceConfig); validated once; the request path sees only the TenantTable built
// from it (tenant_registry.h). docs/configuration.md documents each field.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/duration.h"
#include "tokenway/status.h"

namespace tokenway {

class JsonWriter;

// Limits of one scope (a tenant, each of its keys, or one model of it). 0 means "no limit".
struct LimitSpec {
  int64_t requests_per_minute = 0;
  int64_t input_tokens_per_minute = 0;
  int64_t output_tokens_per_minute = 0;
  int64_t tokens_per_minute = 0;
  int64_t concurrent_requests = 0;
  int64_t tokens_per_day = 0;
  int64_t tokens_per_month = 0;
  bool any() const {
    return requests_per_minute || input_tokens_per_minute || output_tokens_per_minute ||
           tokens_per_minute || concurrent_requests || tokens_per_day || tokens_per_month;
  }
};

// One API key of a tenant: an id (shown in logs and metrics instead of the key) and the
// SHA-256 digest of the key. Keys written in clear in the configuration are hashed at load.
struct ApiKeyConfig {
  std::string id;
  std::string sha256;  // 64 lowercase hex digits
};

struct TenantConfig {
  std::string name;
  std::vector<ApiKeyConfig> keys;
  std::vector<std::string> models;  // empty: every model
  bool has_priority = false;
  int32_t priority = 0;  // flow-control priority of the tenant's requests
  std::map<std::string, std::string> labels;
  LimitSpec limits;
  LimitSpec per_key;                           // applied to each key separately
  std::map<std::string, LimitSpec> per_model;  // model name -> limits within the tenant
  int64_t max_tokens_cap = 0;  // output tokens reserved (and allowed) per request; 0: default
  bool cache = true;           // false: the response cache is never used for this tenant
};

struct RedisLimiterConfig {
  std::string address = "127.0.0.1:6379";  // host:port
  Duration timeout = std::chrono::milliseconds(50);
  bool fail_open = true;  // fail_mode: open | closed
  std::string key_prefix = "tokenway:";
};

struct GovernanceConfig {
  bool enabled = false;
  std::string anonymous_tenant;   // tenant of requests without Authorization; empty: 401
  std::string keys_file;          // extra keys, "tenant key_id sha256" per line; empty: none
  std::string backend = "local";  // local | redis
  RedisLimiterConfig redis;
  // Length of the "per minute" window. 60s in production; shorter for benchmarks and tests.
  Duration window = std::chrono::seconds(60);
  // Output tokens reserved for a request without max_tokens (and the ceiling of max_tokens).
  int64_t default_max_tokens = 4096;
  // "reserve" (reserve at admission, settle after) or "post_hoc" (count only after the response,
  // as other gateways do; exists for the overshoot comparison in docs/benchmarks.md).
  std::string charge = "reserve";
  std::vector<TenantConfig> tenants;
};

// Loads `node` (the value of `governance:`). Errors name `source`, the line and the field.
StatusOr<GovernanceConfig> LoadGovernanceConfig(const YAML::Node& node, const std::string& source);

// SHA-256 of `text` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view text);

// Writes the section as one JSON object value for /admin/config (control/config_render.h). Key
// digests are never rendered, only key ids.
void WriteGovernanceJson(JsonWriter& w, const GovernanceConfig& config);

}  // namespace tokenway
