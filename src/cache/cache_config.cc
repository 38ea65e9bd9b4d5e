#include "cache/cache_config.h"

#include <charconv>

#include "common/json_writer.h"
#include "common/yaml_fields.h"

namespace tokenway {

std::string_view CacheChargeName(CacheCharge c) {
  switch (c) {
    case CacheCharge::kNone:
      return "none";
    case CacheCharge::kFull:
      return "full";
    default:
      return "input";
  }
}

namespace {

class CacheLoader : public YamlFields {
 public:
  using YamlFields::YamlFields;

  CacheConfig Load(const YAML::Node& node) {
    CacheConfig c;
    c.enabled = true;
    if (node.IsNull()) return c;
    ExpectMap(node, "cache",
              {"enabled", "backend", "max_bytes", "max_entry_bytes", "ttl", "deterministic_only",
               "allow_tools", "charge", "redis", "semantic"});
    if (auto n = node["enabled"]) c.enabled = Bool(n, "cache.enabled");
    if (auto n = node["backend"]) {
      c.backend = String(n, "cache.backend");
      if (c.backend != "memory" && c.backend != "redis") {
        Fail(n, "cache.backend", "must be memory or redis, got '" + c.backend + "'");
      }
    }
    if (auto n = node["max_bytes"]) {
      c.max_bytes = Integer<uint64_t>(n, "cache.max_bytes", 1 << 16, 1ull << 40);
    }
    if (auto n = node["max_entry_bytes"]) {
      c.max_entry_bytes = Integer<uint64_t>(n, "cache.max_entry_bytes", 256, 64ull << 20);
    }
    if (c.max_entry_bytes > c.max_bytes / 16) {
      Fail(node, "cache.max_entry_bytes", "must be at most max_bytes / 16 (one store shard)");
    }
    if (auto n = node["ttl"]) c.ttl = Dur(n, "cache.ttl");
    if (auto n = node["deterministic_only"]) {
      c.deterministic_only = Bool(n, "cache.deterministic_only");
    }
    if (auto n = node["allow_tools"]) c.allow_tools = Bool(n, "cache.allow_tools");
    if (auto n = node["charge"]) {
      const std::string s = String(n, "cache.charge");
      if (s == "none") {
        c.charge = CacheCharge::kNone;
      } else if (s == "input") {
        c.charge = CacheCharge::kInput;
      } else if (s == "full") {
        c.charge = CacheCharge::kFull;
      } else {
        Fail(n, "cache.charge", "must be none, input or full, got '" + s + "'");
      }
    }
    if (auto s = node["semantic"]) {
      ExpectMap(s, "cache.semantic",
                {"enabled", "threshold", "dimension", "exact_below", "max_entries"});
      CacheSemanticConfig& x = c.semantic;
      x.enabled = true;
      if (auto n = s["enabled"]) x.enabled = Bool(n, "cache.semantic.enabled");
      if (auto n = s["threshold"]) {
        double v = 0;
        const std::string text = String(n, "cache.semantic.threshold");
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || ptr != text.data() + text.size() || !(v > 0) || v > 1) {
          Fail(n, "cache.semantic.threshold", "must be a number in (0, 1], got '" + text + "'");
        }
        x.threshold = static_cast<float>(v);
      }
      if (auto n = s["dimension"]) {
        x.dimension = Integer<uint32_t>(n, "cache.semantic.dimension", 16, 4096);
      }
      if (auto n = s["exact_below"]) {
        x.exact_below = Integer<uint32_t>(n, "cache.semantic.exact_below", 0, 1u << 24);
      }
      if (auto n = s["max_entries"]) {
        x.max_entries = Integer<uint32_t>(n, "cache.semantic.max_entries", 1, 1u << 24);
      }
    }
    if (auto r = node["redis"]) {
      ExpectMap(r, "cache.redis", {"address", "timeout", "key_prefix"});
      if (auto n = r["address"]) {
        c.redis.address = String(n, "cache.redis.address");
        const size_t colon = c.redis.address.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == c.redis.address.size()) {
          Fail(n, "cache.redis.address", "must be host:port");
        }
      }
      if (auto n = r["timeout"]) c.redis.timeout = Dur(n, "cache.redis.timeout");
      if (auto n = r["key_prefix"]) c.redis.key_prefix = String(n, "cache.redis.key_prefix");
    }
    return c;
  }
};

}  // namespace

StatusOr<CacheConfig> LoadCacheConfig(const YAML::Node& node, const std::string& source) {
  try {
    return CacheLoader(source).Load(node);
  } catch (const YamlFieldError& e) {
    return Status::Error(e.message);
  }
}

void WriteCacheConfig(JsonWriter& w, const CacheConfig& c) {
  w.BeginObject();
  w.Key("enabled").Bool(c.enabled);
  w.Key("backend").String(c.backend);
  w.Key("max_bytes").Uint(c.max_bytes);
  w.Key("max_entry_bytes").Uint(c.max_entry_bytes);
  w.Key("ttl").String(FormatDuration(c.ttl));
  w.Key("deterministic_only").Bool(c.deterministic_only);
  w.Key("allow_tools").Bool(c.allow_tools);
  w.Key("charge").String(CacheChargeName(c.charge));
  w.Key("semantic").BeginObject();
  w.Key("enabled").Bool(c.semantic.enabled);
  w.Key("threshold").Number(c.semantic.threshold);
  w.Key("dimension").Uint(c.semantic.dimension);
  w.Key("exact_below").Uint(c.semantic.exact_below);
  w.Key("max_entries").Uint(c.semantic.max_entries);
  w.EndObject();
  if (c.backend == "redis") {
    w.Key("redis").BeginObject();
    w.Key("address").String(c.redis.address);
    w.Key("timeout").String(FormatDuration(c.redis.timeout));
    w.Key("key_prefix").String(c.redis.key_prefix);
    w.EndObject();
  }
  w.EndObject();
}

}  // namespace tokenway
