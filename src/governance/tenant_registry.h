// TenantTable: who may call tokenway and what each tenant may do: the tenants of the
// configuration, their API keys (from the configuration and the keys file, as SHA-256 digests),
// allowed models, priority, labels and limit scopes.
//
// Built on the control thread from a validated GovernanceConfig and the keys file's entries;
// immutable afterwards and read by every worker (it hangs off the Runtime snapshot). Keys are
// looked up by their digest and confirmed with a constant-time comparison; the table never holds
// a key itself.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "governance/governance_config.h"
#include "governance/keys_file.h"
#include "governance/limiter.h"

namespace tokenway {

using KeyDigest = std::array<uint8_t, 32>;

// What happened to a tenant's requests at the governance phase (tokenway_tenant_requests_total).
enum class TenantOutcome : uint8_t {
  kAllowed,
  kRateLimited,
  kForbidden,           // the tenant may not use the model
  kInvalid,             // max_tokens above the tenant's cap
  kLimiterUnavailable,  // refused because the limiter backend was down (fail_mode: closed)
};
inline constexpr int kTenantOutcomes = 5;
std::string_view TenantOutcomeName(TenantOutcome o);

// Counters of one tenant, shared by every snapshot (by tenant name) and by all workers.
struct TenantStats {
  std::atomic<uint64_t> requests[kTenantOutcomes] = {};
  std::atomic<uint64_t> input_tokens{0};
  std::atomic<uint64_t> output_tokens{0};
  std::atomic<uint64_t> rate_limited[kLimitKinds] = {};
};

struct Tenant {
  std::string name;
  bool has_priority = false;
  int32_t priority = 0;
  std::vector<std::string> models;  // sorted; empty: every model
  std::map<std::string, std::string> labels;
  int64_t max_tokens_cap = 0;  // effective: the tenant's cap, else governance.default_max_tokens
  bool cache = true;           // tenants[].cache: may the response cache serve and store it
  LimitScope scope;            // "t:<name>"
  LimitSpec per_key;
  std::map<std::string, LimitScope, std::less<>> per_model;  // "m:<name>:<model>"
  std::shared_ptr<TenantStats> stats;

  bool MayUse(std::string_view model) const;
  const LimitScope* ModelScope(std::string_view model) const;
};

struct ApiKey {
  KeyDigest digest{};
  std::string id;
  const Tenant* tenant = nullptr;
  std::unique_ptr<LimitScope> scope;  // "k:<tenant>:<id>" when the tenant has per_key limits
};

class TenantTable {
 public:
  // Hooks the table needs from the process-lived state: counters of a limit scope (local
  // backend) and the stats of a tenant. Both are called on the control thread while building.
  struct Binder {
    std::function<std::shared_ptr<ScopeCounters>(const std::string& scope_id)> counters;
    std::function<std::shared_ptr<TenantStats>(const std::string& tenant)> stats;
  };
  // Fails when a keys-file entry names an unknown tenant or repeats a configured key.
  static StatusOr<std::unique_ptr<TenantTable>> Build(const GovernanceConfig& config,
                                                      const std::vector<KeyFileEntry>& file_keys,
                                                      const Binder& binder);

  // The key whose SHA-256 digest is `digest`, or null. Constant-time in the digest's bytes.
  const ApiKey* FindKey(const KeyDigest& digest) const;
  const Tenant* anonymous() const { return anonymous_; }
  const std::vector<std::unique_ptr<Tenant>>& tenants() const { return tenants_; }
  size_t key_count() const { return keys_.size(); }

 private:
  struct DigestHash {
    size_t operator()(const KeyDigest& d) const {
      size_t h;
      std::memcpy(&h, d.data(), sizeof h);  // a SHA-256 digest is already uniformly spread
      return h;
    }
  };
  struct DigestEq {
    bool operator()(const KeyDigest& a, const KeyDigest& b) const;  // constant time
  };
  std::vector<std::unique_ptr<Tenant>> tenants_;
  std::unordered_map<KeyDigest, std::unique_ptr<ApiKey>, DigestHash, DigestEq> keys_;
  const Tenant* anonymous_ = nullptr;
};

// Parses 64 hex digits into a digest; false on anything else.
bool ParseDigestHex(std::string_view hex, KeyDigest& out);
// SHA-256 of a presented key.
KeyDigest DigestOf(std::string_view key);
// Constant-time equality of two digests (CRYPTO_memcmp).
bool DigestEquals(const KeyDigest& a, const KeyDigest& b);

}  // namespace tokenway
