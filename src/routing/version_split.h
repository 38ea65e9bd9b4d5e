// Model version splits: the weights a model's versions share its traffic by, and the sticky
// weighted choice among them.
//
// VersionWeights holds, per model alias and version name, the weight the split uses. It lives as
// long as the process (owned by control/runtime.h's PoolStateRegistry), so a configuration
// reload keeps a weight set at run time; a version's configured weight applies until something
// (a rollout, the control thread) sets another, and again after Reset. Workers read a weight with
// one relaxed atomic load through the VersionWeight the Runtime snapshot holds; the control
// thread creates cells (while building a snapshot) and sets weights; the mutex guards the map
// only and is never taken on the request path.
//
// PickVersion is weighted rendezvous hashing: each version scores the request's sticky key with
// its own seed, −ln(u)/weight, and the lowest score wins. A key's choice therefore depends only on
// the versions' weights: raising one version's weight only moves keys onto that version, and
// lowering it only moves keys off it; the other versions keep every key they had relative to
// each other. Each version is chosen with probability weight / Σ weights.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tokenway {

inline constexpr size_t kMaxModelVersions = 16;

// models[].versions[].match: requests this version takes before any split. Every listed header
// must carry exactly its value, and when `tenants` is set the request's tenant must be one of
// them; an empty match selects nothing.
struct VersionMatchConfig {
  std::map<std::string, std::string> headers;  // header name (case-insensitive) → value
  std::vector<std::string> tenants;
  bool empty() const { return headers.empty() && tenants.empty(); }
};

// models[].versions[]: one version of a model alias (filled by control/config.cc).
struct ModelVersionConfig {
  std::string name;   // the version's name in metrics, logs and x-tokenway-version
  std::string model;  // the model name the upstream serves; empty: the version's name
  std::string pool;   // the pool that serves it
  double weight = 0;  // share of the split, relative to the other versions' weights (≥ 0)
  VersionMatchConfig match;
};

// models[].sticky: what keeps a client on one version across requests.
enum class StickyBy : uint8_t { kUser, kTenant, kHeader };
struct StickyConfig {
  StickyBy by = StickyBy::kUser;
  std::string header;  // with kHeader
};

// models[].response_model: the model name responses report.
enum class ResponseModel : uint8_t { kAlias, kVersion };

// models[].shadow: mirror a share of the alias's requests to a candidate version.
struct ShadowConfig {
  std::string version;           // empty: no shadow traffic
  double percent = 0;            // 0..100, by request id
  uint32_t max_concurrency = 8;  // shadow copies in flight per worker thread
  bool enabled() const { return !version.empty() && percent > 0; }
};

// One version's weight cell.
struct VersionWeight {
  std::atomic<double> weight{0};        // what the split uses now
  std::atomic<double> configured{0};    // models[].versions[].weight of the running configuration
  std::atomic<bool> overridden{false};  // set at run time; a reload keeps `weight`
};

class VersionWeights {
 public:
  // Control thread, while building a snapshot: the cell of alias/version, created on first use,
  // its configured weight updated (and its current weight too, unless set at run time).
  std::shared_ptr<VersionWeight> Cell(const std::string& alias, const std::string& version,
                                      double configured);
  // Control thread: the weight workers split by from now on (≥ 0, finite), until the next Set or
  // Reset, across reloads. False (nothing changes) for a version never configured or a bad
  // weight.
  bool Set(const std::string& alias, const std::string& version, double weight);
  // Control thread: back to the configured weight. False for a version never configured.
  bool Reset(const std::string& alias, const std::string& version);
  // Any thread: the current weight, or nullopt for a version never configured.
  std::optional<double> Weight(const std::string& alias, const std::string& version) const;

  struct Entry {
    std::string alias;
    std::string version;
    double weight = 0;
    double configured = 0;
    bool overridden = false;
  };
  // Any thread: every cell, by alias then version name.
  std::vector<Entry> All() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<VersionWeight>> cells_;
};

// The hash of a request's sticky key (user, tenant or header value; the request id when none).
uint64_t StickyKeyHash(std::string_view key);
// A version's seed for PickVersion, from its name (stable across reloads and list order).
uint64_t VersionSeed(std::string_view version);

// Weighted rendezvous choice of `weights.size()` versions (≤ kMaxModelVersions) for a key:
// the index of the lowest −ln(u_i)/w_i, u_i from the key's hash and seeds[i]. Versions of weight
// ≤ 0 (or not finite) are never chosen; -1 when no weight is positive.
int PickVersion(uint64_t key_hash, std::span<const double> weights,
                std::span<const uint64_t> seeds);

// Whether a request falls in the share `percent` (0..100) of requests, from the hash of its
// request id: deterministic per id, independent of the sticky key (shadow traffic).
bool InShare(uint64_t id_hash, double percent);

}  // namespace tokenway
