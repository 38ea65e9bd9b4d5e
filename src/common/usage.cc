#include "common/usage.h"

#include <simdjson.h>
#include <string.h>

namespace tokenway {

namespace od = simdjson::ondemand;

struct UsageReader::Impl {
  od::parser parser;
  std::string scratch;
};

UsageReader::UsageReader() : impl_(std::make_unique<Impl>()) {}
UsageReader::~UsageReader() = default;

bool UsageReader::MayCarryUsage(std::string_view json) {
  static constexpr std::string_view kKey = "\"usage\"";
  const char* p = json.data();
  const char* const end = p + json.size();
  while (p < end) {
    const void* hit = ::memmem(p, static_cast<size_t>(end - p), kKey.data(), kKey.size());
    if (!hit) return false;
    p = static_cast<const char*>(hit) + kKey.size();
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ':')) ++p;
    if (p < end && *p == '{') return true;
  }
  return false;
}

namespace {

int64_t IntOr(od::value v, int64_t fallback) {
  int64_t n;
  if (v.get_int64().get(n) == simdjson::SUCCESS) return n;
  return fallback;
}

}  // namespace

bool UsageReader::Read(std::string_view json, UsageReading& out) {
  std::string& s = impl_->scratch;
  s.assign(json);
  s.append(simdjson::SIMDJSON_PADDING, '\0');
  return Parse(s.data(), json.size(), s.size(), out);
}

bool UsageReader::ReadInPlace(std::string& json, UsageReading& out) {
  json.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  return Parse(json.data(), json.size(), json.capacity(), out);
}

bool UsageReader::Parse(const char* data, size_t size, size_t capacity, UsageReading& out) {
  out = UsageReading{};
  od::document doc;
  if (impl_->parser.iterate(data, size, capacity).get(doc)) return false;
  od::object root;
  if (doc.get_object().get(root)) return false;
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    od::value v;
    if (field.value().get(v)) return false;
    if (key == "model") {
      std::string_view model;
      if (v.get_string().get(model) == simdjson::SUCCESS) out.model = model;
    } else if (key == "choices") {
      od::array arr;
      if (v.get_array().get(arr) == simdjson::SUCCESS) {
        bool empty;
        if (arr.is_empty().get(empty) == simdjson::SUCCESS) out.choices_empty = empty;
      }
    } else if (key == "usage") {
      od::object usage;
      if (v.get_object().get(usage) != simdjson::SUCCESS) continue;
      out.has_usage = true;
      for (auto uf : usage) {
        std::string_view uk;
        if (uf.unescaped_key().get(uk)) return false;
        od::value uv;
        if (uf.value().get(uv)) return false;
        if (uk == "prompt_tokens") {
          out.usage.prompt_tokens = IntOr(uv, -1);
        } else if (uk == "completion_tokens") {
          out.usage.completion_tokens = IntOr(uv, -1);
        } else if (uk == "prompt_tokens_details") {
          od::object details;
          if (uv.get_object().get(details) != simdjson::SUCCESS) continue;
          for (auto df : details) {
            std::string_view dk;
            if (df.unescaped_key().get(dk)) return false;
            if (dk == "cached_tokens") {
              od::value dv;
              if (df.value().get(dv)) return false;
              out.usage.cached_tokens = IntOr(dv, -1);
            }
          }
        }
      }
    }
  }
  const char* trailing = nullptr;
  if (doc.current_location().get(trailing) == simdjson::SUCCESS) return false;
  return true;
}

}  // namespace tokenway
