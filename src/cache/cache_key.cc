#include "cache/cache_key.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <utility>
#include <vector>

#include "common/json_writer.h"

namespace tokenway {

namespace dom = simdjson::dom;

std::string_view CacheBypassName(CacheBypass b) {
  switch (b) {
    case CacheBypass::kNone:
      return "none";
    case CacheBypass::kNotDeterministic:
      return "not_deterministic";
    case CacheBypass::kMultipleChoices:
      return "multiple_choices";
    case CacheBypass::kTools:
      return "tools";
    case CacheBypass::kLogprobs:
      return "logprobs";
    case CacheBypass::kNotJson:
      return "not_json";
    case CacheBypass::kOperation:
      return "operation";
    default:
      return "other";
  }
}

namespace {

// Top-level fields that never change the answer.
bool Excluded(std::string_view key) {
  return key == "user" || key == "stream" || key == "stream_options" || key == "metadata";
}

bool IsPrompt(std::string_view key) {
  return key == "messages" || key == "prompt";
}

enum class Level : uint8_t { kNested, kTop, kTopWithoutPrompt };

bool NumberValue(dom::element e, double& out) {
  switch (e.type()) {
    case dom::element_type::INT64:
      out = static_cast<double>(int64_t(e));
      return true;
    case dom::element_type::UINT64:
      out = static_cast<double>(uint64_t(e));
      return true;
    case dom::element_type::DOUBLE:
      out = double(e);
      return true;
    default:
      return false;
  }
}

void AppendCanonicalObject(std::string& out, dom::object object, Level level) {
  // Small objects are the rule; a vector sorted by key costs less than a map.
  // One member list per nesting depth; a deque keeps outer lists in place while inner ones grow.
  thread_local std::deque<std::vector<std::pair<std::string_view, dom::element>>> stacks;
  thread_local size_t depth = 0;
  if (stacks.size() <= depth) stacks.emplace_back();
  auto& members = stacks[depth];
  members.clear();
  for (dom::key_value_pair kv : object) {
    if (level != Level::kNested && Excluded(kv.key)) continue;
    if (level == Level::kTopWithoutPrompt && IsPrompt(kv.key)) continue;
    members.emplace_back(kv.key, kv.value);
  }
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  out.push_back('{');
  bool first = true;
  ++depth;
  for (size_t i = 0; i < members.size(); ++i) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, members[i].first);
    out.push_back(':');
    AppendCanonicalJson(out, members[i].second);
  }
  --depth;
  out.push_back('}');
}

}  // namespace

void AppendCanonicalJson(std::string& out, dom::element e) {
  switch (e.type()) {
    case dom::element_type::OBJECT:
      AppendCanonicalObject(out, dom::object(e), Level::kNested);
      break;
    case dom::element_type::ARRAY: {
      out.push_back('[');
      bool first = true;
      for (dom::element v : dom::array(e)) {
        if (!first) out.push_back(',');
        first = false;
        AppendCanonicalJson(out, v);
      }
      out.push_back(']');
      break;
    }
    case dom::element_type::STRING:
      AppendJsonString(out, std::string_view(e));
      break;
    case dom::element_type::INT64:
      AppendJsonInt(out, int64_t(e));
      break;
    case dom::element_type::UINT64: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, uint64_t(e));
      out.append(buf, end);
      break;
    }
    case dom::element_type::DOUBLE:
      AppendJsonNumber(out, double(e));
      break;
    case dom::element_type::BOOL:
      out.append(bool(e) ? "true" : "false");
      break;
    case dom::element_type::NULL_VALUE:
      out.append("null");
      break;
  }
}

CacheBypass CacheKeyBuilder::Build(const CacheKeyInput& in, const CacheRules& rules,
                                   CacheKey& key) {
  if (in.operation == Operation::kEmbeddings) return CacheBypass::kOperation;
  const char* data = in.body.data();
  if (in.padding < simdjson::SIMDJSON_PADDING) {
    padded_.assign(in.body);
    padded_.append(simdjson::SIMDJSON_PADDING, '\0');
    data = padded_.data();
  }
  dom::element root;
  if (parser_.parse(reinterpret_cast<const uint8_t*>(data), in.body.size(), false).get(root) !=
          simdjson::SUCCESS ||
      !root.is_object()) {
    return CacheBypass::kNotJson;
  }
  dom::object body = dom::object(root);
  double v = 0;
  dom::element field;
  for (const char* name : {"n", "best_of"}) {
    if (body.at_key(name).get(field) == simdjson::SUCCESS && NumberValue(field, v) && v > 1) {
      return CacheBypass::kMultipleChoices;
    }
  }
  if (body.at_key("logprobs").get(field) == simdjson::SUCCESS &&
      ((field.is_bool() && bool(field)) || (NumberValue(field, v) && v > 0))) {
    return CacheBypass::kLogprobs;
  }
  if (body.at_key("top_logprobs").get(field) == simdjson::SUCCESS && NumberValue(field, v) &&
      v > 0) {
    return CacheBypass::kLogprobs;
  }
  if (!rules.allow_tools) {
    for (const char* name : {"tools", "functions"}) {
      if (body.at_key(name).get(field) == simdjson::SUCCESS && field.is_array() &&
          dom::array(field).size() > 0) {
        return CacheBypass::kTools;
      }
    }
  }
  if (rules.deterministic_only) {
    // Greedy decoding: temperature 0 (top_p then has nothing to choose from), or top_k 1.
    // OpenAI's default temperature is 1, so a request that names none is not deterministic.
    bool greedy = false;
    if (body.at_key("temperature").get(field) == simdjson::SUCCESS && NumberValue(field, v) &&
        v == 0) {
      greedy = true;
    }
    if (body.at_key("top_k").get(field) == simdjson::SUCCESS && NumberValue(field, v) && v == 1) {
      greedy = true;
    }
    if (!greedy) return CacheBypass::kNotDeterministic;
  }
  std::string& c = canonical_;
  c.clear();
  c.append(in.tenant).push_back('\0');
  c.append(in.model).push_back('\0');
  c.append(OperationName(in.operation)).push_back('\0');
  const size_t prefix = c.size();
  AppendCanonicalObject(c, body, Level::kTop);
  const XXH128_hash_t h = XXH3_128bits(c.data(), c.size());
  key.high = h.high64;
  key.low = h.low64;
  last_body_ = body;
  prefix_ = prefix;
  return CacheBypass::kNone;
}

uint64_t CacheKeyBuilder::Params() {
  params_text_.assign(canonical_, 0, prefix_);
  AppendCanonicalObject(params_text_, last_body_, Level::kTopWithoutPrompt);
  return XXH3_64bits(params_text_.data(), params_text_.size());
}

}  // namespace tokenway
