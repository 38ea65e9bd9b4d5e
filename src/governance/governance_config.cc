#include "governance/governance_config.h"

#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <sstream>

#include "common/json_writer.h"
#include "common/yaml_fields.h"

namespace tokenway {

namespace {

constexpr int64_t kMaxLimit = int64_t{1} << 50;  // far above any real budget; keeps sums exact

class GovernanceLoader : public YamlFields {
 public:
  using YamlFields::YamlFields;

  int64_t Int(const YAML::Node& node, const std::string& field, int64_t min, int64_t max) const {
    return Integer<int64_t>(node, field, min, max);
  }

  LimitSpec Limits(const YAML::Node& node, const std::string& f, bool nested,
                   TenantConfig* tenant) const {
    if (nested) {
      ExpectMap(node, f,
                {"requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute",
                 "tokens_per_minute", "concurrent_requests", "tokens_per_day", "tokens_per_month",
                 "per_key", "per_model"});
    } else {
      ExpectMap(node, f,
                {"requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute",
                 "tokens_per_minute", "concurrent_requests", "tokens_per_day", "tokens_per_month"});
    }
    LimitSpec x;
    auto get = [&](const char* name, int64_t& v) {
      if (auto n = node[name]) v = Int(n, f + "." + name, 0, kMaxLimit);
    };
    get("requests_per_minute", x.requests_per_minute);
    get("input_tokens_per_minute", x.input_tokens_per_minute);
    get("output_tokens_per_minute", x.output_tokens_per_minute);
    get("tokens_per_minute", x.tokens_per_minute);
    get("concurrent_requests", x.concurrent_requests);
    get("tokens_per_day", x.tokens_per_day);
    get("tokens_per_month", x.tokens_per_month);
    if (nested && tenant) {
      if (auto n = node["per_key"]) tenant->per_key = Limits(n, f + ".per_key", false, nullptr);
      if (auto n = node["per_model"]) {
        if (!n.IsMap()) Fail(n, f + ".per_model", "must be a mapping of model name to limits");
        for (const auto& kv : n) {
          std::string model = kv.first.as<std::string>();
          tenant->per_model[model] = Limits(kv.second, f + ".per_model." + model, false, nullptr);
        }
      }
    }
    return x;
  }

  static bool IsHex64(const std::string& s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
             return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
  }

  GovernanceConfig Load(const YAML::Node& g) const {
    const std::string f = "governance";
    ExpectMap(g, f,
              {"enabled", "anonymous_tenant", "keys_file", "backend", "redis", "window",
               "default_max_tokens", "charge", "tenants"});
    GovernanceConfig c;
    c.enabled = true;
    if (auto n = g["enabled"]) c.enabled = Bool(n, f + ".enabled");
    if (auto n = g["anonymous_tenant"]) c.anonymous_tenant = String(n, f + ".anonymous_tenant");
    if (auto n = g["keys_file"]) c.keys_file = String(n, f + ".keys_file");
    if (auto n = g["backend"]) {
      c.backend = String(n, f + ".backend");
      if (c.backend != "local" && c.backend != "redis") {
        Fail(n, f + ".backend", "must be 'local' or 'redis', got '" + c.backend + "'");
      }
    }
    if (auto r = g["redis"]) {
      ExpectMap(r, f + ".redis", {"address", "timeout", "fail_mode", "key_prefix"});
      if (auto n = r["address"]) {
        c.redis.address = String(n, f + ".redis.address");
        size_t colon = c.redis.address.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == c.redis.address.size()) {
          Fail(n, f + ".redis.address", "must be host:port");
        }
      }
      if (auto n = r["timeout"]) c.redis.timeout = Dur(n, f + ".redis.timeout");
      if (auto n = r["fail_mode"]) {
        std::string mode = String(n, f + ".redis.fail_mode");
        if (mode != "open" && mode != "closed") {
          Fail(n, f + ".redis.fail_mode", "must be 'open' or 'closed', got '" + mode + "'");
        }
        c.redis.fail_open = mode == "open";
      }
      if (auto n = r["key_prefix"]) c.redis.key_prefix = String(n, f + ".redis.key_prefix");
    }
    if (auto n = g["window"]) {
      c.window = Dur(n, f + ".window");
      if (c.window < std::chrono::milliseconds(100)) {
        Fail(n, f + ".window", "must be at least 100ms");
      }
    }
    if (auto n = g["default_max_tokens"]) {
      c.default_max_tokens = Int(n, f + ".default_max_tokens", 1, 10'000'000);
    }
    if (auto n = g["charge"]) {
      c.charge = String(n, f + ".charge");
      if (c.charge != "reserve" && c.charge != "post_hoc") {
        Fail(n, f + ".charge", "must be 'reserve' or 'post_hoc', got '" + c.charge + "'");
      }
    }
    std::set<std::string> names;
    std::set<std::string> digests;
    if (auto ts = g["tenants"]) {
      if (!ts.IsSequence()) Fail(ts, f + ".tenants", "must be a list");
      for (size_t i = 0; i < ts.size(); ++i) {
        const YAML::Node& t = ts[i];
        std::string tf = f + ".tenants[" + std::to_string(i) + "]";
        ExpectMap(
            t, tf,
            {"name", "keys", "models", "priority", "labels", "limits", "max_tokens_cap", "cache"});
        TenantConfig tc;
        if (!t["name"]) Fail(t, tf + ".name", "is required");
        tc.name = String(t["name"], tf + ".name");
        if (tc.name.empty() || tc.name.size() > 64 ||
            !std::all_of(tc.name.begin(), tc.name.end(), [](char ch) {
              return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' ||
                     ch == '.';
            })) {
          Fail(t["name"], tf + ".name", "must be 1-64 characters of [A-Za-z0-9._-]");
        }
        if (!names.insert(tc.name).second) {
          Fail(t["name"], tf + ".name", "tenant '" + tc.name + "' is defined twice");
        }
        if (auto ks = t["keys"]) {
          if (!ks.IsSequence()) Fail(ks, tf + ".keys", "must be a list");
          for (size_t k = 0; k < ks.size(); ++k) {
            std::string kf = tf + ".keys[" + std::to_string(k) + "]";
            ExpectMap(ks[k], kf, {"id", "sha256", "key"});
            ApiKeyConfig key;
            if (!ks[k]["id"]) Fail(ks[k], kf + ".id", "is required");
            key.id = String(ks[k]["id"], kf + ".id");
            if (key.id.empty() || key.id.size() > 64) Fail(ks[k], kf + ".id", "must be 1-64 chars");
            if (ks[k]["sha256"] && ks[k]["key"]) {
              Fail(ks[k], kf, "give either sha256 or key, not both");
            }
            if (auto n = ks[k]["sha256"]) {
              key.sha256 = String(n, kf + ".sha256");
              std::transform(key.sha256.begin(), key.sha256.end(), key.sha256.begin(),
                             [](char ch) { return std::tolower(static_cast<unsigned char>(ch)); });
              if (!IsHex64(key.sha256)) Fail(n, kf + ".sha256", "must be 64 hex digits");
            } else if (auto kn = ks[k]["key"]) {
              std::string clear = String(kn, kf + ".key");
              if (clear.size() < 8 || clear.size() > 256) {
                Fail(kn, kf + ".key", "must be 8-256 characters");
              }
              key.sha256 = Sha256Hex(clear);
            } else {
              Fail(ks[k], kf + ".sha256", "is required (or key)");
            }
            if (!digests.insert(key.sha256).second) {
              Fail(ks[k], kf, "the same key is listed twice");
            }
            tc.keys.push_back(std::move(key));
          }
        }
        if (auto ms = t["models"]) {
          if (!ms.IsSequence()) Fail(ms, tf + ".models", "must be a list of model names");
          for (size_t k = 0; k < ms.size(); ++k) {
            tc.models.push_back(String(ms[k], tf + ".models[" + std::to_string(k) + "]"));
          }
        }
        if (auto n = t["priority"]) {
          tc.has_priority = true;
          tc.priority = static_cast<int32_t>(Int(n, tf + ".priority", -1000000, 1000000));
        }
        if (auto ls = t["labels"]) {
          if (!ls.IsMap()) Fail(ls, tf + ".labels", "must be a mapping");
          for (const auto& kv : ls) {
            std::string name = kv.first.as<std::string>();
            bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                         std::all_of(name.begin(), name.end(), [](char ch) {
                           return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
                         });
            if (!valid) Fail(kv.first, tf + ".labels", "'" + name + "' is not a label name");
            tc.labels[name] = String(kv.second, tf + ".labels." + name);
          }
        }
        if (auto n = t["limits"]) tc.limits = Limits(n, tf + ".limits", true, &tc);
        if (auto n = t["cache"]) tc.cache = Bool(n, tf + ".cache");
        if (auto n = t["max_tokens_cap"]) {
          tc.max_tokens_cap = Int(n, tf + ".max_tokens_cap", 0, 10'000'000);
        }
        c.tenants.push_back(std::move(tc));
      }
    }
    if (!c.anonymous_tenant.empty() && !names.count(c.anonymous_tenant)) {
      Fail(g["anonymous_tenant"], f + ".anonymous_tenant",
           "no tenant named '" + c.anonymous_tenant + "'");
    }
    return c;
  }
};

}  // namespace

StatusOr<GovernanceConfig> LoadGovernanceConfig(const YAML::Node& node, const std::string& source) {
  try {
    return GovernanceLoader(source).Load(node);
  } catch (const YamlFieldError& e) {
    return Status::Error(e.message);
  }
}

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xF];
  }
  return out;
}

namespace {
void WriteLimits(JsonWriter& w, const LimitSpec& l) {
  w.BeginObject();
  w.Key("requests_per_minute").Int(l.requests_per_minute);
  w.Key("input_tokens_per_minute").Int(l.input_tokens_per_minute);
  w.Key("output_tokens_per_minute").Int(l.output_tokens_per_minute);
  w.Key("tokens_per_minute").Int(l.tokens_per_minute);
  w.Key("concurrent_requests").Int(l.concurrent_requests);
  w.Key("tokens_per_day").Int(l.tokens_per_day);
  w.Key("tokens_per_month").Int(l.tokens_per_month);
  w.EndObject();
}
}  // namespace

void WriteGovernanceJson(JsonWriter& w, const GovernanceConfig& c) {
  w.BeginObject();
  w.Key("enabled").Bool(c.enabled);
  w.Key("anonymous_tenant").String(c.anonymous_tenant);
  w.Key("keys_file").String(c.keys_file);
  w.Key("backend").String(c.backend);
  w.Key("redis").BeginObject();
  w.Key("address").String(c.redis.address);
  w.Key("timeout").String(FormatDuration(c.redis.timeout));
  w.Key("fail_mode").String(c.redis.fail_open ? "open" : "closed");
  w.Key("key_prefix").String(c.redis.key_prefix);
  w.EndObject();
  w.Key("window").String(FormatDuration(c.window));
  w.Key("default_max_tokens").Int(c.default_max_tokens);
  w.Key("charge").String(c.charge);
  w.Key("tenants").BeginArray();
  for (const TenantConfig& t : c.tenants) {
    w.BeginObject();
    w.Key("name").String(t.name);
    w.Key("keys").BeginArray();  // ids only: digests stay out of /admin
    for (const auto& key : t.keys) w.String(key.id);
    w.EndArray();
    w.Key("models").BeginArray();
    for (const auto& model : t.models) w.String(model);
    w.EndArray();
    w.Key("priority");
    if (t.has_priority) {
      w.Int(t.priority);
    } else {
      w.Null();
    }
    w.Key("labels").BeginObject();
    for (const auto& [k, v] : t.labels) w.Key(k).String(v);
    w.EndObject();
    WriteLimits(w.Key("limits"), t.limits);
    WriteLimits(w.Key("per_key"), t.per_key);
    w.Key("per_model").BeginObject();
    for (const auto& [model, l] : t.per_model) WriteLimits(w.Key(model), l);
    w.EndObject();
    w.Key("max_tokens_cap").Int(t.max_tokens_cap);
    w.Key("cache").Bool(t.cache);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace tokenway
