#include "control/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>

#include "common/yaml_fields.h"
#include "routing/engine_adapter.h"
#include "telemetry/access_log.h"
#include "telemetry/otlp_endpoint.h"

namespace tokenway {

const std::vector<std::string>& KnownPolicies() {
  static const std::vector<std::string> kPolicies = {"round-robin", "least-request",
                                                     "power-of-two"};
  return kPolicies;
}

namespace {

class Loader : public YamlFields {
 public:
  using YamlFields::YamlFields;

  uint64_t Unsigned(const YAML::Node& node, const std::string& field, uint64_t min,
                    uint64_t max) const {
    return Integer<uint64_t>(node, field, min, max);
  }

  // Sizes accept plain bytes or KiB/MiB/GiB suffixes.
  uint64_t Size(const YAML::Node& node, const std::string& field, uint64_t min,
                uint64_t max) const {
    if (!node.IsScalar()) Fail(node, field, "must be a size");
    std::string s = node.Scalar();
    uint64_t scale = 1;
    for (auto [suffix, mult] : {std::pair{"KiB", 1024ull}, std::pair{"MiB", 1024ull * 1024},
                                std::pair{"GiB", 1024ull * 1024 * 1024}}) {
      std::string_view sv(s);
      if (sv.size() > 3 && sv.substr(sv.size() - 3) == suffix) {
        s.resize(s.size() - 3);
        scale = mult;
        break;
      }
    }
    uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size()) {
      Fail(node, field, "must be a size such as 65536, 64KiB or 8MiB");
    }
    // Checked before multiplying: a huge count with a suffix must not wrap into range.
    if (v > max / scale) {
      Fail(node, field,
           "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
    }
    v *= scale;
    if (v < min || v > max) {
      Fail(node, field,
           "must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
    }
    return v;
  }

  int64_t Signed(const YAML::Node& node, const std::string& field, int64_t min, int64_t max) const {
    return Integer<int64_t>(node, field, min, max);
  }

  void LoadFlowControl(const YAML::Node& node, const std::string& f, FlowControlConfig& x) const {
    ExpectMap(node, f,
              {"enabled", "queue_threshold", "kv_threshold", "max_in_flight", "max_queue",
               "queue_ttl", "fairness_key", "priority_header", "max_header_priority"});
    x.enabled = true;
    if (auto n = node["enabled"]) x.enabled = Bool(n, f + ".enabled");
    if (auto n = node["queue_threshold"]) {
      x.queue_threshold = static_cast<uint32_t>(Unsigned(n, f + ".queue_threshold", 1, 1000000));
    }
    if (auto n = node["kv_threshold"]) {
      x.kv_threshold = Weight(n, f + ".kv_threshold");
      if (x.kv_threshold <= 0 || x.kv_threshold > 1) {
        Fail(n, f + ".kv_threshold", "must be in (0, 1]");
      }
    }
    if (auto n = node["max_in_flight"]) {
      x.max_in_flight = static_cast<uint32_t>(Unsigned(n, f + ".max_in_flight", 0, 1000000));
    }
    if (auto n = node["max_queue"]) {
      x.max_queue = static_cast<uint32_t>(Unsigned(n, f + ".max_queue", 0, 10000000));
    }
    if (auto n = node["queue_ttl"]) x.queue_ttl = Dur(n, f + ".queue_ttl");
    if (auto n = node["fairness_key"]) {
      x.fairness_key = String(n, f + ".fairness_key");
      bool header = x.fairness_key.rfind("header:", 0) == 0 && x.fairness_key.size() > 7;
      if (x.fairness_key != "user" && x.fairness_key != "none" && x.fairness_key != "tenant" &&
          !header) {
        Fail(n, f + ".fairness_key",
             "must be 'user', 'tenant', 'none' or 'header:<name>', got '" + x.fairness_key + "'");
      }
      if (header && !IsHeaderName(std::string_view(x.fairness_key).substr(7))) {
        Fail(n, f + ".fairness_key", "'" + x.fairness_key.substr(7) + "' is not a header name");
      }
    }
    if (auto n = node["priority_header"]) {
      x.priority_header = String(n, f + ".priority_header");
      if (!x.priority_header.empty() && !IsHeaderName(x.priority_header)) {
        Fail(n, f + ".priority_header", "'" + x.priority_header + "' is not a header name");
      }
    }
    if (auto n = node["max_header_priority"]) {
      x.max_header_priority =
          static_cast<int32_t>(Signed(n, f + ".max_header_priority", -1000000, 1000000));
    }
  }

  void LoadScaleFromZero(const YAML::Node& node, const std::string& f,
                         ScaleFromZeroConfig& x) const {
    ExpectMap(node, f, {"queue_ttl", "max_waiting"});
    x.enabled = true;
    if (auto n = node["queue_ttl"]) {
      x.queue_ttl = Dur(n, f + ".queue_ttl");
      if (x.queue_ttl.count() <= 0) Fail(n, f + ".queue_ttl", "must be positive");
    }
    if (auto n = node["max_waiting"]) {
      x.max_waiting = static_cast<uint32_t>(Unsigned(n, f + ".max_waiting", 1, 1000000));
    }
  }

  void LoadAutoscaling(const YAML::Node& node, const std::string& f, AutoscalingConfig& x) const {
    ExpectMap(node, f,
              {"target_utilisation", "endpoint_output_tokens_per_second", "min_replicas",
               "max_replicas", "window"});
    if (auto n = node["target_utilisation"]) {
      x.target_utilisation = Weight(n, f + ".target_utilisation");
      if (x.target_utilisation <= 0 || x.target_utilisation > 1) {
        Fail(n, f + ".target_utilisation", "must be in (0, 1]");
      }
    }
    if (auto n = node["endpoint_output_tokens_per_second"]) {
      x.endpoint_output_tokens_per_second = Capacity(n, f + ".endpoint_output_tokens_per_second");
    }
    if (auto n = node["min_replicas"]) {
      x.min_replicas = static_cast<uint32_t>(Unsigned(n, f + ".min_replicas", 0, 100000));
    }
    if (auto n = node["max_replicas"]) {
      x.max_replicas = static_cast<uint32_t>(Unsigned(n, f + ".max_replicas", 0, 100000));
      if (x.max_replicas && x.max_replicas < x.min_replicas) {
        Fail(n, f + ".max_replicas", "must be 0 (no bound) or at least min_replicas");
      }
    }
    if (auto n = node["window"]) x.window = Dur(n, f + ".window");
  }

  // models[i].versions, .sticky, .response_model and .shadow (the model's other fields are read
  // by the caller).
  void LoadVersions(const YAML::Node& m, const std::string& f, const GatewayConfig& c,
                    ModelConfig& model) const {
    const YAML::Node& list = m["versions"];
    if (!list.IsSequence() || list.size() == 0) {
      Fail(list, f + ".versions", "must be a non-empty list");
    }
    if (list.size() > kMaxModelVersions) {
      Fail(list, f + ".versions", "at most " + std::to_string(kMaxModelVersions) + " versions");
    }
    double total = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node& v = list[i];
      const std::string g = f + ".versions[" + std::to_string(i) + "]";
      ExpectMap(v, g, {"name", "model", "pool", "weight", "match"});
      ModelVersionConfig version;
      if (!v["name"]) Fail(v, g + ".name", "is required");
      version.name = String(v["name"], g + ".name");
      if (version.name.empty()) Fail(v["name"], g + ".name", "must not be empty");
      for (const auto& earlier : model.versions) {
        if (earlier.name == version.name) {
          Fail(v["name"], g + ".name", "version '" + version.name + "' is defined twice");
        }
      }
      version.model = v["model"] ? String(v["model"], g + ".model") : version.name;
      if (version.model.empty()) Fail(v["model"], g + ".model", "must not be empty");
      if (!v["pool"]) Fail(v, g + ".pool", "is required");
      version.pool = String(v["pool"], g + ".pool");
      bool pool_known = std::any_of(c.pools.begin(), c.pools.end(),
                                    [&](const PoolConfig& p) { return p.name == version.pool; });
      if (!pool_known) Fail(v["pool"], g + ".pool", "no pool named '" + version.pool + "'");
      if (auto n = v["weight"]) version.weight = Weight(n, g + ".weight");
      if (auto n = v["match"]) {
        ExpectMap(n, g + ".match", {"headers", "tenants"});
        if (auto h = n["headers"]) {
          if (!h.IsMap()) Fail(h, g + ".match.headers", "must be a mapping of header: value");
          for (const auto& kv : h) {
            std::string name = kv.first.as<std::string>();
            const std::string hf = g + ".match.headers." + name;
            if (!IsHeaderName(name)) Fail(kv.first, hf, "'" + name + "' is not a header name");
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char ch) { return std::tolower(ch); });
            version.match.headers[name] = String(kv.second, hf);
          }
        }
        if (auto t = n["tenants"]) {
          if (!t.IsSequence()) Fail(t, g + ".match.tenants", "must be a list of tenant names");
          for (size_t k = 0; k < t.size(); ++k) {
            version.match.tenants.push_back(
                String(t[k], g + ".match.tenants[" + std::to_string(k) + "]"));
          }
        }
      }
      total += version.weight;
      model.versions.push_back(std::move(version));
    }
    if (!(total > 0)) {
      Fail(list, f + ".versions", "the versions' weights must add up to more than 0");
    }
    if (auto n = m["sticky"]) {
      ExpectMap(n, f + ".sticky", {"by"});
      if (!n["by"]) Fail(n, f + ".sticky.by", "is required: user, tenant or header: <name>");
      const YAML::Node& by = n["by"];
      if (by.IsMap()) {
        ExpectMap(by, f + ".sticky.by", {"header"});
        model.sticky.by = StickyBy::kHeader;
        model.sticky.header = String(by["header"], f + ".sticky.by.header");
        if (!IsHeaderName(model.sticky.header)) {
          Fail(by["header"], f + ".sticky.by.header",
               "'" + model.sticky.header + "' is not a header name");
        }
      } else {
        const std::string s = String(by, f + ".sticky.by");
        if (s == "user") {
          model.sticky.by = StickyBy::kUser;
        } else if (s == "tenant") {
          model.sticky.by = StickyBy::kTenant;
        } else {
          Fail(by, f + ".sticky.by", "must be user, tenant or {header: <name>}, got '" + s + "'");
        }
      }
    }
    if (auto n = m["response_model"]) {
      const std::string s = String(n, f + ".response_model");
      if (s == "alias") {
        model.response_model = ResponseModel::kAlias;
      } else if (s == "version") {
        model.response_model = ResponseModel::kVersion;
      } else {
        Fail(n, f + ".response_model", "must be alias or version, got '" + s + "'");
      }
    }
    if (auto n = m["shadow"]) {
      ExpectMap(n, f + ".shadow", {"version", "percent", "max_concurrency"});
      if (!n["version"]) Fail(n, f + ".shadow.version", "is required");
      model.shadow.version = String(n["version"], f + ".shadow.version");
      bool known =
          std::any_of(model.versions.begin(), model.versions.end(),
                      [&](const ModelVersionConfig& v) { return v.name == model.shadow.version; });
      if (!known) {
        Fail(n["version"], f + ".shadow.version",
             "no version named '" + model.shadow.version + "' in " + f + ".versions");
      }
      if (auto p = n["percent"]) {
        model.shadow.percent = Weight(p, f + ".shadow.percent");
        if (model.shadow.percent > 100) {
          Fail(p, f + ".shadow.percent", "must be between 0 and 100");
        }
      }
      if (auto k = n["max_concurrency"]) {
        model.shadow.max_concurrency =
            static_cast<uint32_t>(Unsigned(k, f + ".shadow.max_concurrency", 1, 100000));
      }
    }
  }

  static bool IsHeaderName(std::string_view name) {
    if (name.empty() || name.size() > 128) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    });
  }

  double Weight(const YAML::Node& node, const std::string& field) const {
    if (!node.IsScalar()) Fail(node, field, "must be a number");
    const std::string& s = node.Scalar();
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || !(v >= 0) || v > 1000) {
      Fail(node, field, "must be a number between 0 and 1000, got '" + s + "'");
    }
    return v;
  }

  // A relative capacity: a positive number, at most 1e6.
  double Capacity(const YAML::Node& node, const std::string& field) const {
    if (!node.IsScalar()) Fail(node, field, "must be a positive number");
    const std::string& s = node.Scalar();
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || !(v > 0) || v > 1e6) {
      Fail(node, field, "must be a positive number of at most 1000000, got '" + s + "'");
    }
    return v;
  }

  // An HTTP header name (RFC 9110 token) the request parser keeps; empty turns the feature off.
  std::string SessionHeader(const YAML::Node& node, const std::string& field) const {
    std::string name = String(node, field);
    for (char c : name) {
      bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
      if (!tchar) Fail(node, field, "'" + name + "' is not an HTTP header name");
    }
    // Headers the gateway consumes itself instead of passing them on (http/request_parser.cc).
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* consumed :
         {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
          "proxy-connection", "te", "trailer", "upgrade", "expect", "x-request-id"}) {
      if (lower == consumed) {
        Fail(node, field, "'" + name + "' cannot carry a session: the gateway consumes it");
      }
    }
    return name;
  }

  std::string Engine(const YAML::Node& node, const std::string& field) const {
    std::string engine = String(node, field);
    if (!IsKnownName(kEngineNames, engine)) {
      Fail(node, field, "unknown engine '" + engine + "' (known: " + JoinNames(kEngineNames) + ")");
    }
    return engine;
  }

  void LoadAccelerators(const YAML::Node& node, const std::string& f, PoolConfig& pool) const {
    if (!node.IsMap()) {
      Fail(node, f, "must be a mapping of accelerator name to relative capacity");
    }
    for (const auto& kv : node) {
      if (!kv.first.IsScalar() || kv.first.Scalar().empty()) {
        Fail(kv.first, f, "accelerator names must be non-empty strings");
      }
      const std::string& name = kv.first.Scalar();
      pool.accelerators[name] = Capacity(kv.second, f + "." + name);
    }
  }

  // One pools[].endpoints[] entry: "http://host:port" or {url, engine, accelerator, capacity}.
  EndpointConfig LoadEndpoint(const YAML::Node& node, const std::string& f, const PoolConfig& pool,
                              const std::string& pool_field) const {
    if (!node.IsMap()) {
      if (!node.IsScalar()) {
        Fail(node, f,
             "must be a http://host:port URL or a mapping {url, engine, accelerator, "
             "capacity}");
      }
      auto ep = ParseEndpointUrl(node.Scalar());
      if (!ep.ok()) Fail(node, f, ep.status().message());
      return *ep;
    }
    ExpectMap(node, f, {"url", "engine", "accelerator", "capacity"});
    if (!node["url"]) Fail(node, f + ".url", "is required");
    auto ep = ParseEndpointUrl(String(node["url"], f + ".url"));
    if (!ep.ok()) Fail(node["url"], f + ".url", ep.status().message());
    if (auto n = node["engine"]) ep->engine = Engine(n, f + ".engine");
    if (auto n = node["accelerator"]) {
      ep->accelerator = String(n, f + ".accelerator");
      if (!pool.accelerators.count(ep->accelerator)) {
        std::string known;
        for (const auto& [name, capacity] : pool.accelerators) {
          known += (known.empty() ? "" : ", ") + name;
        }
        Fail(n, f + ".accelerator",
             "unknown accelerator '" + ep->accelerator + "': " + pool_field +
                 ".accelerators has no entry for it (" +
                 (known.empty() ? "none defined" : "known: " + known) + ")");
      }
    }
    if (auto n = node["capacity"]) ep->capacity = Capacity(n, f + ".capacity");
    return *ep;
  }

  void LoadScheduler(const YAML::Node& node, const std::string& f, SchedulerConfig& x) const {
    ExpectMap(node, f,
              {"preset", "filters", "scorers", "picker", "prefix", "session_header", "affinity",
               "sample", "slo"});
    x.enabled = true;
    if (auto n = node["preset"]) {
      x.preset = String(n, f + ".preset");
      if (x.preset == "oracle") {
        Fail(n, f + ".preset",
             "preset 'oracle' exists only in `tokenway-bench simulate` (it reads the engines' "
             "true state, which a gateway cannot see)");
      }
      if (!ExpandSchedulerPreset(x.preset, x)) {
        Fail(n, f + ".preset",
             "unknown preset '" + x.preset + "' (known: " + JoinNames(kSchedulerPresets) + ")");
      }
      if (node["scorers"]) Fail(node["scorers"], f + ".scorers", "cannot be combined with preset");
    }
    if (auto list = node["scorers"]) {
      if (!list.IsSequence() || list.size() == 0) {
        Fail(list, f + ".scorers", "must be a non-empty list of {name, weight}");
      }
      for (size_t i = 0; i < list.size(); ++i) {
        std::string sf = f + ".scorers[" + std::to_string(i) + "]";
        ExpectMap(list[i], sf, {"name", "weight"});
        ScorerConfig sc;
        if (!list[i]["name"]) Fail(list[i], sf + ".name", "is required");
        sc.name = String(list[i]["name"], sf + ".name");
        if (!IsKnownName(kScorerNames, sc.name)) {
          Fail(list[i]["name"], sf + ".name",
               "unknown scorer '" + sc.name + "' (known: " + JoinNames(kScorerNames) + ")");
        }
        for (const auto& earlier : x.scorers) {
          if (earlier.name == sc.name) {
            Fail(list[i]["name"], sf + ".name", "scorer '" + sc.name + "' is listed twice");
          }
        }
        if (auto w = list[i]["weight"]) sc.weight = Weight(w, sf + ".weight");
        x.scorers.push_back(sc);
      }
    }
    if (x.scorers.empty()) Fail(node, f + ".scorers", "is required unless a preset is given");
    if (auto list = node["filters"]) {
      if (!list.IsSequence()) Fail(list, f + ".filters", "must be a list of filter names");
      for (size_t i = 0; i < list.size(); ++i) {
        std::string ff = f + ".filters[" + std::to_string(i) + "]";
        FilterConfig fc;
        if (list[i].IsMap()) {
          ExpectMap(list[i], ff, {"name", "queue_threshold", "kv_threshold"});
          if (!list[i]["name"]) Fail(list[i], ff + ".name", "is required");
          if (auto n = list[i]["queue_threshold"]) {
            fc.queue_threshold =
                static_cast<uint32_t>(Unsigned(n, ff + ".queue_threshold", 1, 1000000));
          }
          if (auto n = list[i]["kv_threshold"]) {
            fc.kv_threshold = Weight(n, ff + ".kv_threshold");
            if (fc.kv_threshold <= 0 || fc.kv_threshold > 1) {
              Fail(n, ff + ".kv_threshold", "must be in (0, 1]");
            }
          }
        }
        // A const copy, not an assignment: assigning a YAML::Node rewrites the node it refers to.
        const YAML::Node name_node = list[i].IsMap() ? list[i]["name"] : list[i];
        fc.name = String(name_node, ff);
        if (!IsKnownName(kFilterNames, fc.name)) {
          Fail(name_node, ff,
               "unknown filter '" + fc.name + "' (known: " + JoinNames(kFilterNames) + ")");
        }
        x.filters.push_back(fc);
      }
    }
    if (auto n = node["picker"]) {
      x.picker = String(n, f + ".picker");
      if (!IsKnownName(kSchedulerPickerNames, x.picker)) {
        Fail(n, f + ".picker",
             "unknown picker '" + x.picker + "' (known: " + JoinNames(kSchedulerPickerNames) + ")");
      }
    }
    if (auto n = node["session_header"]) {
      x.session_header = SessionHeader(n, f + ".session_header");
      bool scored = std::any_of(x.scorers.begin(), x.scorers.end(), [](const ScorerConfig& sc) {
        return sc.name == "session-affinity";
      });
      if (!x.session_header.empty() && !scored) {
        Fail(n, f + ".session_header", "needs the session-affinity scorer in scorers");
      }
    }
    if (auto p = node["prefix"]) {
      ExpectMap(p, f + ".prefix", {"block_bytes", "capacity", "max_blocks"});
      if (auto n = p["block_bytes"]) {
        x.prefix.block_bytes =
            static_cast<uint32_t>(Unsigned(n, f + ".prefix.block_bytes", 16, 65536));
      }
      if (auto n = p["capacity"]) {
        x.prefix.capacity =
            static_cast<uint32_t>(Unsigned(n, f + ".prefix.capacity", 1, 16u << 20));
      }
      if (auto n = p["max_blocks"]) {
        x.prefix.max_blocks =
            static_cast<uint32_t>(Unsigned(n, f + ".prefix.max_blocks", 1, 1u << 20));
      }
    }
    LoadAffinityAndSample(node, f, x);
  }

  // pools[].scheduler.affinity (the consistent-prefix scorer) and pools[].scheduler.sample.
  void LoadAffinityAndSample(const YAML::Node& node, const std::string& f,
                             SchedulerConfig& x) const {
    if (auto a = node["affinity"]) {
      ExpectMap(a, f + ".affinity", {"blocks", "epsilon"});
      bool scored = std::any_of(x.scorers.begin(), x.scorers.end(), [](const ScorerConfig& sc) {
        return sc.name == "consistent-prefix";
      });
      if (!scored) Fail(a, f + ".affinity", "needs the consistent-prefix scorer in scorers");
      if (auto n = a["blocks"]) {
        x.affinity.blocks = static_cast<uint32_t>(Unsigned(n, f + ".affinity.blocks", 1, 4096));
      }
      if (auto n = a["epsilon"]) {
        x.affinity.epsilon = Weight(n, f + ".affinity.epsilon");
        if (x.affinity.epsilon <= 0 || x.affinity.epsilon > 10) {
          Fail(n, f + ".affinity.epsilon", "must be in (0, 10]");
        }
      }
    }
    if (auto n = node["sample"]) {
      x.sample = static_cast<uint32_t>(Unsigned(n, f + ".sample", 0, 1u << 20));
      if (x.sample > 0 && x.sample < 2) Fail(n, f + ".sample", "must be 0 (off) or at least 2");
    }
    if (auto s = node["slo"]) LoadSlo(s, f + ".slo", x);
  }

  // pools[].scheduler.slo (the predicted-latency scorer).
  void LoadSlo(const YAML::Node& node, const std::string& f, SchedulerConfig& x) const {
    ExpectMap(node, f, {"ttft", "tpot", "min_samples", "shed"});
    if (!x.PredictsLatency()) Fail(node, f, "needs the predicted-latency scorer in scorers");
    auto positive = [&](const YAML::Node& n, const std::string& field) {
      const Duration d = Dur(n, field);
      if (d.count() <= 0) Fail(n, field, "must be a positive duration");
      return d;
    };
    if (auto n = node["ttft"]) x.slo.ttft = positive(n, f + ".ttft");
    if (auto n = node["tpot"]) x.slo.tpot = positive(n, f + ".tpot");
    x.slo.objective_set = node["ttft"] || node["tpot"];
    if (auto n = node["min_samples"]) {
      x.slo.min_samples = static_cast<uint32_t>(Unsigned(n, f + ".min_samples", 1, 1000000));
    }
    if (auto n = node["shed"]) x.slo.shed = Bool(n, f + ".shed");
  }

  void LoadTracing(const YAML::Node& t, TracingConfig& x) const {
    ExpectMap(t, "tracing",
              {"enabled", "endpoint", "sample_ratio", "service_name", "provider_name", "batch_size",
               "batch_interval", "queue_size", "timeout"});
    if (auto n = t["enabled"]) x.enabled = Bool(n, "tracing.enabled");
    if (auto n = t["endpoint"]) {
      x.endpoint = String(n, "tracing.endpoint");
      auto target = ParseOtlpEndpoint(x.endpoint);
      if (!target.ok()) Fail(n, "tracing.endpoint", target.status().message());
    }
    if (auto n = t["sample_ratio"]) {
      if (!n.IsScalar()) Fail(n, "tracing.sample_ratio", "must be a number between 0 and 1");
      const std::string& s = n.Scalar();
      double v = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || ptr != s.data() + s.size() || !(v >= 0) || v > 1) {
        Fail(n, "tracing.sample_ratio", "must be a number between 0 and 1, got '" + s + "'");
      }
      x.sample_ratio = v;
    }
    if (auto n = t["service_name"]) {
      x.service_name = String(n, "tracing.service_name");
      if (x.service_name.empty()) Fail(n, "tracing.service_name", "must not be empty");
    }
    if (auto n = t["provider_name"]) x.provider_name = String(n, "tracing.provider_name");
    if (auto n = t["batch_size"]) {
      x.batch_size = static_cast<uint32_t>(Unsigned(n, "tracing.batch_size", 1, 65536));
    }
    if (auto n = t["batch_interval"]) x.batch_interval = Dur(n, "tracing.batch_interval");
    if (auto n = t["queue_size"]) {
      x.queue_size = static_cast<uint32_t>(Unsigned(n, "tracing.queue_size", 1, 1u << 20));
    }
    if (auto n = t["timeout"]) x.timeout = Dur(n, "tracing.timeout");
  }

  // --- Kubernetes discovery: pools[].discovery and the kubernetes: section ---------------------

  static bool IsLabelPart(std::string_view s, size_t max) {
    if (s.empty() || s.size() > max) return false;
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    if (!alnum(s.front()) || !alnum(s.back())) return false;
    return std::all_of(s.begin(), s.end(),
                       [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
  }
  // A label key ([prefix/]name) or value as Kubernetes accepts them.
  static bool IsLabelKey(std::string_view k) {
    size_t slash = k.find('/');
    if (slash == std::string_view::npos) return IsLabelPart(k, 63);
    return IsLabelPart(k.substr(0, slash), 253) && IsLabelPart(k.substr(slash + 1), 63);
  }
  static bool IsLabelValue(std::string_view v) { return v.empty() || IsLabelPart(v, 63); }

  uint16_t Port(const YAML::Node& node, const std::string& field) const {
    return static_cast<uint16_t>(Unsigned(node, field, 1, 65535));
  }

  void LoadDiscovery(const YAML::Node& node, const std::string& f, PoolDiscoveryConfig& x) const {
    ExpectMap(node, f,
              {"inference_pool", "namespace", "selector", "port", "ports", "dra", "objectives"});
    x.enabled = true;
    if (auto n = node["dra"]) x.dra = Bool(n, f + ".dra");
    if (auto n = node["objectives"]) {
      x.objectives = Bool(n, f + ".objectives");
      if (x.objectives && !node["inference_pool"]) {
        Fail(n, f + ".objectives", "needs inference_pool (objectives name their InferencePool)");
      }
    }
    if (auto n = node["namespace"]) x.namespace_name = String(n, f + ".namespace");
    if (auto ip = node["inference_pool"]) {
      ExpectMap(ip, f + ".inference_pool", {"namespace", "name"});
      if (!ip["name"]) Fail(ip, f + ".inference_pool.name", "is required");
      x.inference_pool = String(ip["name"], f + ".inference_pool.name");
      if (!IsLabelPart(x.inference_pool, 253)) {
        Fail(ip["name"], f + ".inference_pool.name", "is not a Kubernetes object name");
      }
      if (auto n = ip["namespace"]) x.namespace_name = String(n, f + ".inference_pool.namespace");
      for (const char* other : {"selector", "port", "ports"}) {
        if (node[other]) {
          Fail(node[other], f + "." + other,
               "cannot be combined with inference_pool (the InferencePool names its selector "
               "and target ports)");
        }
      }
    } else {
      auto sel = node["selector"];
      if (!sel || !sel.IsMap() || sel.size() == 0) {
        Fail(sel ? sel : node, f + ".selector",
             "is required without inference_pool: a mapping of pod labels {key: value}");
      }
      for (const auto& kv : sel) {
        std::string key = String(kv.first, f + ".selector");
        std::string value = String(kv.second, f + ".selector." + key);
        if (!IsLabelKey(key)) Fail(kv.first, f + ".selector", "'" + key + "' is not a label key");
        if (!IsLabelValue(value)) {
          Fail(kv.second, f + ".selector." + key, "'" + value + "' is not a label value");
        }
        x.selector[key] = value;
      }
      if (node["port"] && node["ports"]) Fail(node["ports"], f + ".ports", "use port or ports");
      if (auto n = node["port"]) x.ports.push_back(Port(n, f + ".port"));
      if (auto n = node["ports"]) {
        if (!n.IsSequence() || n.size() == 0 || n.size() > 8) {
          Fail(n, f + ".ports", "must be a list of 1 to 8 port numbers");
        }
        for (size_t i = 0; i < n.size(); ++i) {
          uint16_t port = Port(n[i], f + ".ports[" + std::to_string(i) + "]");
          if (std::find(x.ports.begin(), x.ports.end(), port) != x.ports.end()) {
            Fail(n[i], f + ".ports[" + std::to_string(i) + "]", "is listed twice");
          }
          x.ports.push_back(port);
        }
      }
      if (x.ports.empty()) Fail(node, f + ".port", "is required without inference_pool");
    }
    if (!x.namespace_name.empty() && !IsLabelPart(x.namespace_name, 63)) {
      Fail(node, f + ".namespace", "'" + x.namespace_name + "' is not a namespace name");
    }
  }

  void LoadKubernetes(const YAML::Node& node, KubernetesConfig& x) const {
    const std::string f = "kubernetes";
    ExpectMap(node, f,
              {"kubeconfig", "context", "service_account_dir", "watch_idle_timeout",
               "request_timeout", "backoff_initial", "backoff_max", "coalesce", "max_event_bytes",
               "page_size", "objective_api"});
    if (auto n = node["kubeconfig"]) x.kubeconfig = String(n, f + ".kubeconfig");
    if (auto n = node["context"]) x.context = String(n, f + ".context");
    if (auto n = node["service_account_dir"]) {
      x.service_account_dir = String(n, f + ".service_account_dir");
      if (x.service_account_dir.empty()) Fail(n, f + ".service_account_dir", "must not be empty");
    }
    if (auto n = node["watch_idle_timeout"]) {
      x.watch_idle_timeout = Dur(n, f + ".watch_idle_timeout");
    }
    if (auto n = node["request_timeout"]) x.request_timeout = Dur(n, f + ".request_timeout");
    if (auto n = node["backoff_initial"]) x.backoff_initial = Dur(n, f + ".backoff_initial");
    if (auto n = node["backoff_max"]) x.backoff_max = Dur(n, f + ".backoff_max");
    if (x.backoff_max < x.backoff_initial) {
      Fail(node["backoff_max"] ? node["backoff_max"] : node, f + ".backoff_max",
           "must be at least backoff_initial");
    }
    if (auto n = node["coalesce"]) x.coalesce = Dur(n, f + ".coalesce");
    if (x.coalesce > std::chrono::seconds(1)) {
      Fail(node["coalesce"], f + ".coalesce", "must be at most 1s");
    }
    if (auto n = node["max_event_bytes"]) {
      x.max_event_bytes = Size(n, f + ".max_event_bytes", 1024, 256ull << 20);
    }
    if (auto n = node["objective_api"]) {
      x.objective_api = String(n, f + ".objective_api");
      size_t slash = x.objective_api.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == x.objective_api.size() ||
          x.objective_api.find('/', slash + 1) != std::string::npos) {
        Fail(n, f + ".objective_api", "must be group/version, e.g. llm-d.ai/v1alpha2");
      }
    }
    if (auto n = node["page_size"]) {
      x.page_size = static_cast<uint32_t>(Unsigned(n, f + ".page_size", 1, 100000));
    }
  }

  // --- end of Kubernetes discovery ---------------------------------------------------------

  // autoscaling: {keda: {listen}} — the KEDA external scaler's gRPC listener.
  void LoadScalerListeners(const YAML::Node& node, const GatewayConfig& c,
                           KedaScalerConfig& x) const {
    ExpectMap(node, "autoscaling", {"keda"});
    auto k = node["keda"];
    if (!k) return;
    ExpectMap(k, "autoscaling.keda", {"listen"});
    auto n = k["listen"];
    if (!n) Fail(k, "autoscaling.keda.listen", "is required: ip:port, e.g. 0.0.0.0:9100");
    x.listen = String(n, "autoscaling.keda.listen");
    auto port = ParseListenPort(x.listen);
    if (!port.ok()) Fail(n, "autoscaling.keda.listen", port.status().message());
    auto clash = [&](const char* name, const std::string& other) {
      // `listen` and `admin` also accept "*:port" and an empty host; only their ports matter.
      size_t colon = other.rfind(':');
      std::string other_port = colon == std::string::npos ? "" : other.substr(colon + 1);
      if (*port != 0 && other_port == std::to_string(*port)) {
        Fail(n, "autoscaling.keda.listen",
             "'" + x.listen + "' uses the port of `" + name + "` (" + other + ")");
      }
    };
    clash("listen", c.listen);
    clash("admin", c.admin);
    x.enabled = true;
  }

  void LoadEpp(const YAML::Node& node, EppConfig& x) {
    ExpectMap(node, "epp",
              {"listen", "tls", "max_streams", "message_timeout", "fallback_endpoints"});
    if (auto n = node["listen"]) {
      x.listen = String(n, "epp.listen");
      if (x.listen.empty() || x.listen.rfind(':') == std::string::npos) {
        Fail(n, "epp.listen", "must be host:port");
      }
    } else {
      Fail(node, "epp.listen", "is required (host:port) in an epp section");
    }
    if (auto t = node["tls"]) {
      ExpectMap(t, "epp.tls", {"cert_file", "key_file"});
      if (auto n = t["cert_file"]) x.cert_file = String(n, "epp.tls.cert_file");
      if (auto n = t["key_file"]) x.key_file = String(n, "epp.tls.key_file");
      if (x.cert_file.empty() || x.key_file.empty()) {
        Fail(t, "epp.tls", "needs both cert_file and key_file");
      }
    }
    if (auto n = node["max_streams"]) {
      x.max_streams = static_cast<uint32_t>(Unsigned(n, "epp.max_streams", 1, 1000000));
    }
    if (auto n = node["message_timeout"]) x.message_timeout = Dur(n, "epp.message_timeout");
    if (auto n = node["fallback_endpoints"]) {
      x.fallback_endpoints = static_cast<uint32_t>(Unsigned(n, "epp.fallback_endpoints", 1, 8));
    }
  }

  GatewayConfig Load(const YAML::Node& root) {
    GatewayConfig c;
    c.source = source_;
    if (!root.IsDefined() || root.IsNull()) {
      // An empty document has no position of its own; the error is about the whole file.
      throw YamlFieldError{source_ + ":1:1: (root): the file is empty"};
    }
    ExpectMap(root, "",
              {"listen",     "admin",          "workers", "drain_timeout", "reload_poll_interval",
               "limits",     "upstream",       "health",  "streaming",     "access_log",
               "tracing",    "engine_metrics", "pools",   "models",        "governance",
               "kubernetes", "autoscaling",    "epp",     "processors",    "rollouts",
               "cache"});
    if (auto n = root["listen"]) c.listen = String(n, "listen");
    if (auto n = root["admin"]) c.admin = String(n, "admin");
    if (auto n = root["workers"]) c.workers = static_cast<uint32_t>(Unsigned(n, "workers", 0, 256));
    if (auto n = root["drain_timeout"]) c.drain_timeout = Dur(n, "drain_timeout");
    if (auto n = root["reload_poll_interval"]) {
      c.reload_poll_interval = Dur(n, "reload_poll_interval");
    }
    if (auto l = root["limits"]) {
      ExpectMap(l, "limits",
                {"max_header_bytes", "max_body_bytes", "max_response_bytes", "max_connections",
                 "header_timeout", "idle_timeout", "write_timeout"});
      auto& x = c.limits;
      if (auto n = l["max_header_bytes"]) {
        x.max_header_bytes =
            static_cast<uint32_t>(Size(n, "limits.max_header_bytes", 1024, 1024 * 1024));
      }
      if (auto n = l["max_body_bytes"]) {
        x.max_body_bytes = Size(n, "limits.max_body_bytes", 1024, 1ull << 30);
      }
      if (auto n = l["max_response_bytes"]) {
        x.max_response_bytes = Size(n, "limits.max_response_bytes", 1024, 1ull << 32);
      }
      if (auto n = l["max_connections"]) {
        x.max_connections =
            static_cast<uint32_t>(Unsigned(n, "limits.max_connections", 1, 10000000));
      }
      if (auto n = l["header_timeout"]) x.header_timeout = Dur(n, "limits.header_timeout");
      if (auto n = l["idle_timeout"]) x.idle_timeout = Dur(n, "limits.idle_timeout");
      if (auto n = l["write_timeout"]) x.write_timeout = Dur(n, "limits.write_timeout");
    }
    if (auto u = root["upstream"]) {
      ExpectMap(u, "upstream",
                {"connect_timeout", "first_byte_timeout", "stream_idle_timeout", "total_timeout",
                 "idle_connection_timeout", "max_idle_per_endpoint", "max_attempts"});
      auto& x = c.upstream;
      if (auto n = u["connect_timeout"]) x.connect_timeout = Dur(n, "upstream.connect_timeout");
      if (auto n = u["first_byte_timeout"]) {
        x.first_byte_timeout = Dur(n, "upstream.first_byte_timeout");
      }
      if (auto n = u["stream_idle_timeout"]) {
        x.stream_idle_timeout = Dur(n, "upstream.stream_idle_timeout");
      }
      if (auto n = u["total_timeout"]) x.total_timeout = Dur(n, "upstream.total_timeout");
      if (auto n = u["idle_connection_timeout"]) {
        x.idle_connection_timeout = Dur(n, "upstream.idle_connection_timeout");
      }
      if (auto n = u["max_idle_per_endpoint"]) {
        x.max_idle_per_endpoint =
            static_cast<uint32_t>(Unsigned(n, "upstream.max_idle_per_endpoint", 0, 100000));
      }
      if (auto n = u["max_attempts"]) {
        x.max_attempts = static_cast<uint32_t>(Unsigned(n, "upstream.max_attempts", 1, 10));
      }
    }
    if (auto h = root["health"]) {
      ExpectMap(h, "health", {"active", "passive"});
      if (auto a = h["active"]) {
        ExpectMap(
            a, "health.active",
            {"enabled", "interval", "timeout", "path", "unhealthy_threshold", "healthy_threshold"});
        auto& x = c.active_health;
        if (auto n = a["enabled"]) x.enabled = Bool(n, "health.active.enabled");
        if (auto n = a["interval"]) x.interval = Dur(n, "health.active.interval");
        if (auto n = a["timeout"]) x.timeout = Dur(n, "health.active.timeout");
        if (auto n = a["path"]) {
          x.path = String(n, "health.active.path");
          if (x.path.empty() || x.path[0] != '/')
            Fail(n, "health.active.path", "must start with /");
        }
        if (auto n = a["unhealthy_threshold"]) {
          x.unhealthy_threshold =
              static_cast<uint32_t>(Unsigned(n, "health.active.unhealthy_threshold", 1, 100));
        }
        if (auto n = a["healthy_threshold"]) {
          x.healthy_threshold =
              static_cast<uint32_t>(Unsigned(n, "health.active.healthy_threshold", 1, 100));
        }
      }
      if (auto p = h["passive"]) {
        ExpectMap(p, "health.passive", {"consecutive_failures", "base_ejection", "max_ejection"});
        auto& x = c.passive_health;
        if (auto n = p["consecutive_failures"]) {
          x.consecutive_failures =
              static_cast<uint32_t>(Unsigned(n, "health.passive.consecutive_failures", 0, 1000));
        }
        if (auto n = p["base_ejection"]) x.base_ejection = Dur(n, "health.passive.base_ejection");
        if (auto n = p["max_ejection"]) x.max_ejection = Dur(n, "health.passive.max_ejection");
      }
    }
    if (auto e = root["epp"]) LoadEpp(e, c.epp);
    if (auto s = root["streaming"]) {
      ExpectMap(s, "streaming", {"inject_usage"});
      if (auto n = s["inject_usage"]) c.streaming.inject_usage = Bool(n, "streaming.inject_usage");
    }
    if (auto a = root["access_log"]) {
      ExpectMap(a, "access_log",
                {"enabled", "path", "fields", "sample_ratio", "always_log_errors"});
      if (auto n = a["enabled"]) c.access_log.enabled = Bool(n, "access_log.enabled");
      if (auto n = a["path"]) c.access_log.path = String(n, "access_log.path");
      if (auto n = a["fields"]) {
        if (!n.IsSequence() || n.size() == 0) {
          Fail(n, "access_log.fields", "must be a non-empty list of field names");
        }
        c.access_log.fields = 0;
        for (size_t i = 0; i < n.size(); ++i) {
          std::string f = "access_log.fields[" + std::to_string(i) + "]";
          std::string name = String(n[i], f);
          AccessLogField field;
          if (!ParseAccessLogField(name, field)) {
            std::string list;
            for (unsigned k = 0; k < static_cast<unsigned>(AccessLogField::kCount); ++k) {
              list +=
                  (k ? ", " : "") + std::string(AccessLogFieldName(static_cast<AccessLogField>(k)));
            }
            Fail(n[i], f, "unknown field '" + name + "' (known: " + list + ")");
          }
          c.access_log.fields |= AccessLogFields{1} << static_cast<unsigned>(field);
        }
      }
      if (auto n = a["sample_ratio"]) {
        c.access_log.sample_ratio = Weight(n, "access_log.sample_ratio");
        if (c.access_log.sample_ratio > 1) Fail(n, "access_log.sample_ratio", "must be in [0, 1]");
      }
      if (auto n = a["always_log_errors"]) {
        c.access_log.always_log_errors = Bool(n, "access_log.always_log_errors");
      }
    }
    if (auto t = root["tracing"]) LoadTracing(t, c.tracing);
    if (auto e = root["engine_metrics"]) {
      ExpectMap(e, "engine_metrics",
                {"enabled", "interval", "timeout", "stale_after", "path", "max_body_bytes"});
      auto& x = c.engine_metrics;
      if (auto n = e["enabled"]) x.enabled = Bool(n, "engine_metrics.enabled");
      if (auto n = e["interval"]) x.interval = Dur(n, "engine_metrics.interval");
      if (auto n = e["timeout"]) x.timeout = Dur(n, "engine_metrics.timeout");
      if (auto n = e["stale_after"]) x.stale_after = Dur(n, "engine_metrics.stale_after");
      if (auto n = e["path"]) {
        x.path = String(n, "engine_metrics.path");
        if (x.path.empty() || x.path[0] != '/') Fail(n, "engine_metrics.path", "must start with /");
      }
      if (auto n = e["max_body_bytes"]) {
        x.max_body_bytes = Size(n, "engine_metrics.max_body_bytes", 1024, 64ull << 20);
      }
    }
    struct SeenEndpoint {
      SeenEndpoint(std::string f, const PoolConfig& pool, const EndpointConfig& ep)
          : field(std::move(f)),
            engine(EffectiveEngine(pool, ep)),
            accelerator(ep.accelerator),
            capacity(EffectiveCapacity(pool, ep)) {}
      std::string field;
      std::string engine;
      std::string accelerator;
      double capacity;
    };
    std::map<std::string, SeenEndpoint> seen_endpoints;  // by URL
    auto pools = root["pools"];
    if (!pools) Fail(root, "pools", "is required: at least one pool of endpoints");
    if (!pools.IsSequence() || pools.size() == 0) {
      Fail(pools, "pools", "must be a non-empty list");
    }
    for (size_t i = 0; i < pools.size(); ++i) {
      const YAML::Node& p = pools[i];
      std::string f = "pools[" + std::to_string(i) + "]";
      ExpectMap(p, f,
                {"name", "policy", "engine", "scheduler", "flow_control", "autoscaling",
                 "accelerators", "endpoints", "discovery", "scale_from_zero"});
      PoolConfig pool;
      if (!p["name"]) Fail(p, f + ".name", "is required");
      pool.name = String(p["name"], f + ".name");
      for (const auto& earlier : c.pools) {
        if (earlier.name == pool.name) {
          Fail(p["name"], f + ".name", "pool '" + pool.name + "' is defined twice");
        }
      }
      if (auto n = p["policy"]) {
        pool.policy = String(n, f + ".policy");
        const auto& known = KnownPolicies();
        if (std::find(known.begin(), known.end(), pool.policy) == known.end()) {
          std::string list;
          for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
          Fail(n, f + ".policy", "unknown policy '" + pool.policy + "' (known: " + list + ")");
        }
      }
      if (auto n = p["engine"]) pool.engine = Engine(n, f + ".engine");
      if (auto n = p["scheduler"]) LoadScheduler(n, f + ".scheduler", pool.scheduler);
      if (!p["policy"] && !p["scheduler"]) {
        // A pool that sets no policy gets the tokenway scheduling profile (docs/benchmarks.md,
        // "The tokenway preset": no worse than gie-default on any workload measured).
        pool.scheduler.enabled = true;
        pool.scheduler.preset = "tokenway";
        ExpandSchedulerPreset(pool.scheduler.preset, pool.scheduler);
      }
      if (auto n = p["flow_control"]) LoadFlowControl(n, f + ".flow_control", pool.flow_control);
      if (auto n = p["autoscaling"]) LoadAutoscaling(n, f + ".autoscaling", pool.autoscaling);
      if (auto n = p["accelerators"]) LoadAccelerators(n, f + ".accelerators", pool);
      if (auto n = p["scale_from_zero"]) {
        LoadScaleFromZero(n, f + ".scale_from_zero", pool.scale_from_zero);
      }
      if (auto n = p["discovery"]) {
        LoadDiscovery(n, f + ".discovery", pool.discovery);
        if (p["endpoints"]) {
          Fail(p["endpoints"], f + ".endpoints", "cannot be combined with discovery");
        }
      }
      auto eps = p["endpoints"];
      if (!pool.discovery.enabled && (!eps || !eps.IsSequence() || eps.size() == 0)) {
        Fail(eps ? eps : p, f + ".endpoints",
             "must be a non-empty list of http://host:port URLs (or use discovery)");
      }
      for (size_t j = 0; eps && j < eps.size(); ++j) {
        std::string ef = f + ".endpoints[" + std::to_string(j) + "]";
        EndpointConfig ep = LoadEndpoint(eps[j], ef, pool, f);
        // Live state (and so the scraped dialect and the capacity scorers read) is kept per URL:
        // every mention of one URL must describe the same server.
        auto [it, first] = seen_endpoints.try_emplace(ep.url, SeenEndpoint{ef, pool, ep});
        if (!first) {
          const SeenEndpoint& was = it->second;
          if (was.engine != EffectiveEngine(pool, ep) ||
              was.capacity != EffectiveCapacity(pool, ep) || was.accelerator != ep.accelerator) {
            Fail(eps[j], ef,
                 "endpoint '" + ep.url + "' is also " + was.field + " with another engine, " +
                     "accelerator or capacity; one server has one of each");
          }
        }
        pool.endpoints.push_back(std::move(ep));
      }
      c.pools.push_back(std::move(pool));
    }
    auto models = root["models"];
    if (!models) Fail(root, "models", "is required: at least one model");
    if (!models.IsSequence() || models.size() == 0) {
      Fail(models, "models", "must be a non-empty list");
    }
    for (size_t i = 0; i < models.size(); ++i) {
      const YAML::Node& m = models[i];
      std::string f = "models[" + std::to_string(i) + "]";
      ExpectMap(m, f,
                {"name", "pool", "parent", "priority", "versions", "sticky", "response_model",
                 "shadow", "router"});
      ModelConfig model;
      if (!m["name"]) Fail(m, f + ".name", "is required");
      model.name = String(m["name"], f + ".name");
      for (const auto& earlier : c.models) {
        if (earlier.name == model.name) {
          Fail(m["name"], f + ".name", "model '" + model.name + "' is defined twice");
        }
      }
      if (auto r = m["router"]) {
        // A virtual model: its routes name the models that serve it.
        if (m["pool"] || m["parent"] || m["priority"] || m["versions"] || m["sticky"] ||
            m["response_model"] || m["shadow"]) {
          Fail(m, f,
               "model '" + model.name +
                   "' has a router, so it takes no pool, parent, priority or versions");
        }
        auto router = LoadRouterConfig(r, f + ".router", source_);
        if (!router.ok()) throw YamlFieldError{router.status().message()};
        model.router = std::move(*router);
        c.models.push_back(std::move(model));
        continue;
      }
      if (auto n = m["versions"]) LoadVersions(m, f, c, model);
      if (!m["pool"] && model.versions.empty()) {
        Fail(m, f + ".pool", "is required (or a router: for a virtual model)");
      }
      if (m["pool"]) {
        model.pool = String(m["pool"], f + ".pool");
      } else {
        model.pool = model.versions.front().pool;
      }
      if (auto n = m["parent"]) model.parent = String(n, f + ".parent");
      if (auto n = m["priority"]) {
        model.priority = static_cast<int32_t>(Signed(n, f + ".priority", -1000000, 1000000));
      }
      bool pool_known = std::any_of(c.pools.begin(), c.pools.end(),
                                    [&](const PoolConfig& p) { return p.name == model.pool; });
      if (!pool_known) Fail(m["pool"], f + ".pool", "no pool named '" + model.pool + "'");
      c.models.push_back(std::move(model));
    }
    // Parents may be defined after the adapters that name them, so they are checked last.
    for (size_t i = 0; i < c.models.size(); ++i) {
      const std::string& parent = c.models[i].parent;
      bool known =
          parent.empty() || std::any_of(c.models.begin(), c.models.end(),
                                        [&](const ModelConfig& m) { return m.name == parent; });
      if (!known) {
        Fail(models[i]["parent"], "models[" + std::to_string(i) + "].parent",
             "model '" + c.models[i].name + "' names unknown parent '" + parent + "'");
      }
    }
    if (auto k = root["kubernetes"]) LoadKubernetes(k, c.kubernetes);
    if (auto a = root["autoscaling"]) LoadScalerListeners(a, c, c.keda);
    if (auto g = root["governance"]) {
      auto governance = LoadGovernanceConfig(g, source_);
      if (!governance.ok()) throw YamlFieldError{governance.status().message()};
      c.governance = std::move(*governance);
    }
    if (auto k = root["cache"]) {
      auto cache = LoadCacheConfig(k, source_);
      if (!cache.ok()) throw YamlFieldError{cache.status().message()};
      c.cache = std::move(*cache);
    }
    if (auto p = root["processors"]) {
      auto processors = LoadProcessorsConfig(p, source_);
      if (!processors.ok()) throw YamlFieldError{processors.status().message()};
      c.processors = std::move(*processors);
    }
    if (auto r = root["rollouts"]) {
      auto rollouts = LoadRolloutsConfig(r, source_);
      if (!rollouts.ok()) throw YamlFieldError{rollouts.status().message()};
      c.rollouts = std::move(*rollouts);
    }
    auto status = ValidateConfig(c);
    if (!status.ok()) Fail(root, "(config)", status.message());
    return c;
  }
};

}  // namespace

StatusOr<uint16_t> ParseListenPort(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return Status::Error("'" + address + "' must be ip:port, e.g. 0.0.0.0:9100 or [::]:9100");
  }
  std::string host = address.substr(0, colon);
  bool v6 = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), buf) != 1) {
    return Status::Error("'" + address + "': '" + host + "' is not an IP address" +
                         (v6 ? "" : " (IPv6 goes in brackets: [::]:9100)"));
  }
  std::string_view port(address.data() + colon + 1, address.size() - colon - 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return Status::Error("'" + address + "' has an invalid port");
  }
  return static_cast<uint16_t>(value);
}

StatusOr<EndpointConfig> ParseEndpointUrl(const std::string& url) {
  std::string_view rest(url);
  if (rest.substr(0, 7) != "http://") {
    return Status::Error("'" + url + "' must start with http:// (TLS upstreams are not supported)");
  }
  rest.remove_prefix(7);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return Status::Error("'" + url + "' must not have a path");
  }
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::Error("'" + url + "' must be http://host:port");
  }
  EndpointConfig ep;
  ep.url = url;
  ep.host = std::string(rest.substr(0, colon));
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']') {
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  }
  std::string_view port = rest.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
    return Status::Error("'" + url + "' has an invalid port");
  }
  ep.port = static_cast<uint16_t>(value);
  return ep;
}

const std::string& EffectiveEngine(const PoolConfig& pool, const EndpointConfig& endpoint) {
  return endpoint.engine.empty() ? pool.engine : endpoint.engine;
}

double EffectiveCapacity(const PoolConfig& pool, const EndpointConfig& endpoint) {
  if (endpoint.capacity > 0) return endpoint.capacity;
  auto it = pool.accelerators.find(endpoint.accelerator);
  return endpoint.accelerator.empty() || it == pool.accelerators.end() ? 1.0 : it->second;
}

namespace {

// models[].versions, sticky and shadow of one model (ParseConfig has checked the same while
// walking the YAML; quick-flag and programmatic configurations come through here only).
Status ValidateVersions(const ModelConfig& m, const std::set<std::string>& pool_names) {
  if (m.versions.empty()) {
    if (m.shadow.enabled()) {
      return Status::Error("model '" + m.name + "': shadow needs versions");
    }
    return Status::Ok();
  }
  if (m.versions.size() > kMaxModelVersions) {
    return Status::Error("model '" + m.name + "': at most " + std::to_string(kMaxModelVersions) +
                         " versions");
  }
  std::set<std::string> names;
  double total = 0;
  for (const auto& v : m.versions) {
    if (v.name.empty()) return Status::Error("model '" + m.name + "': a version has no name");
    if (!names.insert(v.name).second) {
      return Status::Error("model '" + m.name + "': version '" + v.name + "' is defined twice");
    }
    if (v.model.empty()) {
      return Status::Error("model '" + m.name + "': version '" + v.name + "' has no model");
    }
    if (!pool_names.count(v.pool)) {
      return Status::Error("model '" + m.name + "': version '" + v.name + "' names unknown pool '" +
                           v.pool + "'");
    }
    if (!(v.weight >= 0) || !std::isfinite(v.weight)) {
      return Status::Error("model '" + m.name + "': version '" + v.name + "' needs a weight >= 0");
    }
    total += v.weight;
  }
  if (!(total > 0)) {
    return Status::Error("model '" + m.name +
                         "': the versions' weights must add up to more than 0");
  }
  if (m.sticky.by == StickyBy::kHeader && m.sticky.header.empty()) {
    return Status::Error("model '" + m.name + "': sticky.by header needs a header name");
  }
  if (!m.shadow.version.empty()) {
    if (!names.count(m.shadow.version)) {
      return Status::Error("model '" + m.name + "': shadow.version '" + m.shadow.version +
                           "' is not one of its versions");
    }
    if (!(m.shadow.percent >= 0) || m.shadow.percent > 100) {
      return Status::Error("model '" + m.name + "': shadow.percent must be between 0 and 100");
    }
    if (m.shadow.max_concurrency < 1) {
      return Status::Error("model '" + m.name + "': shadow.max_concurrency must be >= 1");
    }
  }
  return Status::Ok();
}

// Virtual models: every route's target is a configured model that is not itself virtual (so a
// request is routed once and routes cannot loop), and every tenant a route names exists.
Status ValidateRouters(const GatewayConfig& c) {
  for (const auto& m : c.models) {
    if (!m.router.enabled()) continue;
    const std::string& pool = m.router.embeddings.pool;
    if (!pool.empty() && std::none_of(c.pools.begin(), c.pools.end(),
                                      [&](const PoolConfig& p) { return p.name == pool; })) {
      return Status::Error("model '" + m.name + "' router.embeddings names unknown pool '" + pool +
                           "'");
    }
    for (const RouteConfig& route : m.router.routes) {
      const std::string where = "model '" + m.name + "' route '" + route.name + "'";
      auto target = std::find_if(c.models.begin(), c.models.end(),
                                 [&](const ModelConfig& t) { return t.name == route.target; });
      if (target == c.models.end()) {
        return Status::Error(where + " targets unknown model '" + route.target + "'");
      }
      if (target->router.enabled()) {
        return Status::Error(where + " targets '" + route.target +
                             "', a virtual model itself; a route must name a served model");
      }
      for (const std::string& tenant : route.tenants) {
        const bool known = std::any_of(c.governance.tenants.begin(), c.governance.tenants.end(),
                                       [&](const auto& t) { return t.name == tenant; });
        if (!known) {
          return Status::Error(where + " names unknown tenant '" + tenant +
                               "' (tenants come from the governance section)");
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateConfig(const GatewayConfig& c) {
  if (c.listen.empty() && !c.epp.enabled()) {
    return Status::Error("listen may be empty only when epp.listen serves the endpoint picker");
  }
  if (c.pools.empty()) return Status::Error("at least one pool is required");
  if (c.models.empty()) return Status::Error("at least one model is required");
  std::set<std::string> pool_names;
  for (const auto& p : c.pools) {
    if (p.name.empty()) return Status::Error("a pool has an empty name");
    if (!pool_names.insert(p.name).second) {
      return Status::Error("pool '" + p.name + "' is defined twice");
    }
    if (p.endpoints.empty() && !p.discovery.enabled) {
      return Status::Error("pool '" + p.name + "' has no endpoints");
    }
    if (!IsKnownName(kEngineNames, p.engine)) {
      return Status::Error("pool '" + p.name + "': unknown engine '" + p.engine + "'");
    }
    for (const auto& [name, capacity] : p.accelerators) {
      if (!(capacity > 0)) {
        return Status::Error("pool '" + p.name + "': accelerator '" + name +
                             "' needs a positive capacity");
      }
    }
    for (const auto& ep : p.endpoints) {
      if (!ep.engine.empty() && !IsKnownName(kEngineNames, ep.engine)) {
        return Status::Error("endpoint '" + ep.url + "': unknown engine '" + ep.engine + "'");
      }
      if (!ep.accelerator.empty() && !p.accelerators.count(ep.accelerator)) {
        return Status::Error("endpoint '" + ep.url + "': unknown accelerator '" + ep.accelerator +
                             "' in pool '" + p.name + "'");
      }
      if (!(ep.capacity >= 0)) {
        return Status::Error("endpoint '" + ep.url + "': capacity must be positive (0: unset)");
      }
    }
  }
  // One URL is one server: one engine, accelerator and capacity wherever it is listed.
  std::map<std::string, std::tuple<std::string, std::string, double>> by_url;
  for (const auto& p : c.pools) {
    for (const auto& ep : p.endpoints) {
      auto described =
          std::make_tuple(EffectiveEngine(p, ep), ep.accelerator, EffectiveCapacity(p, ep));
      auto [it, first] = by_url.try_emplace(ep.url, described);
      if (!first && it->second != described) {
        return Status::Error("endpoint '" + ep.url +
                             "' is listed with different engines, accelerators or capacities");
      }
    }
  }
  std::set<std::string> model_names;
  for (const auto& m : c.models) {
    if (m.name.empty()) return Status::Error("a model has an empty name");
    if (!model_names.insert(m.name).second) {
      return Status::Error("model '" + m.name + "' is defined twice");
    }
    if (m.router.enabled()) continue;
    if (!pool_names.count(m.pool)) {
      return Status::Error("model '" + m.name + "' names unknown pool '" + m.pool + "'");
    }
    if (auto st = ValidateVersions(m, pool_names); !st.ok()) return st;
  }
  if (Status s = ValidateRouters(c); !s.ok()) return s;
  for (const auto& m : c.models) {
    if (!m.parent.empty() && !model_names.count(m.parent)) {
      return Status::Error("model '" + m.name + "' names unknown parent '" + m.parent + "'");
    }
  }
  if (c.upstream.max_attempts < 1) return Status::Error("upstream.max_attempts must be >= 1");
  for (const auto& p : c.processors) {
    for (const auto& m : p.match.models) {
      if (!model_names.count(m)) {
        return Status::Error("processor '" + p.name + "' matches unknown model '" + m + "'");
      }
    }
  }
  for (const auto& t : c.governance.tenants) {
    for (const auto& m : t.models) {
      if (!model_names.count(m)) {
        return Status::Error("governance tenant '" + t.name + "' names unknown model '" + m + "'");
      }
    }
    for (const auto& [m, limits] : t.per_model) {
      if (!model_names.count(m)) {
        return Status::Error("governance tenant '" + t.name + "' limits unknown model '" + m + "'");
      }
    }
  }
  for (const auto& r : c.rollouts.rollouts) {
    const ModelConfig* model = nullptr;
    for (const auto& m : c.models) {
      if (m.name == r.model) model = &m;
    }
    if (!model) return Status::Error("rollout names unknown model '" + r.model + "'");
    for (const std::string* version : {&r.candidate, &r.stable}) {
      bool found = false;
      for (const auto& v : model->versions) found = found || v.name == *version;
      if (!found) {
        return Status::Error("rollout of model '" + r.model + "' names '" + *version +
                             "', which is not one of its versions");
      }
    }
  }
  return Status::Ok();
}

StatusOr<GatewayConfig> ParseConfig(const std::string& text, const std::string& source) {
  try {
    YAML::Node root = YAML::Load(text);
    return Loader(source).Load(root);
  } catch (const YamlFieldError& e) {
    return Status::Error(e.message);
  } catch (const YAML::Exception& e) {
    std::ostringstream out;
    out << source;
    if (e.mark.line >= 0) out << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    out << ": " << e.msg;
    return Status::Error(out.str());
  }
}

StatusOr<GatewayConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open the file");
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseConfig(buf.str(), path);
}

}  // namespace tokenway
