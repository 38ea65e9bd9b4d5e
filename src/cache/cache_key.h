// The exact response cache's key and its cacheability rule.
//
// key = xxh3-128 of (tenant, served model, operation, canonical request). The canonical request
// is the JSON body with every object's keys sorted (recursively), numbers and strings written in
// one canonical form, and the top-level fields that do not change the answer left out (`user`,
// `stream`, `stream_options`, `metadata`): the same question asked as a stream or not, by
// another end user, with its keys in another order, finds the same entry. The served model is
// the one after the resolve phase, so a new model version never finds an old one's answers;
// the tenant keeps every tenant's entries apart.
//
// CacheKeyBuilder is per worker thread (it owns a simdjson parser and scratch text); the request
// path calls Build once per request that may use the cache, right after the resolve phase.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/request_inspector.h"

namespace tokenway {

struct CacheKey {
  uint64_t high = 0;
  uint64_t low = 0;
  bool operator==(const CacheKey&) const = default;
};

struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const { return static_cast<size_t>(k.low ^ k.high); }
};

// Why a request does not use the cache (kNone: it does).
enum class CacheBypass : uint8_t {
  kNone,
  kNotDeterministic,  // sampling is not deterministic (deterministic_only)
  kMultipleChoices,   // n > 1 or best_of > 1
  kTools,             // offers tools (allow_tools is off)
  kLogprobs,          // asks for log probabilities, which cached answers do not keep
  kNotJson,           // the body is not a JSON object (the upstream will say so)
  kOperation,         // embeddings are not cached
  kCount,
};
std::string_view CacheBypassName(CacheBypass b);

struct CacheRules {
  bool deterministic_only = true;
  bool allow_tools = false;
};

struct CacheKeyInput {
  std::string_view tenant;  // empty: no tenant
  std::string_view model;   // the served model (after resolve)
  Operation operation = Operation::kChatCompletions;
  std::string_view body;
  size_t padding = 0;  // readable bytes after `body`; simdjson needs SIMDJSON_PADDING or a copy
};

class CacheKeyBuilder {
 public:
  // Decides whether the request may use the cache under `rules`; when it may, fills `key`.
  CacheBypass Build(const CacheKeyInput& in, const CacheRules& rules, CacheKey& key);
  // The canonical request text of the last Build that got that far (for tests).
  std::string_view canonical() const { return canonical_; }
  // Of the last successful Build (computed on demand, before the next Build): a hash of the
  // same canonical request without its prompt (`messages`, `prompt`) — what a semantic match
  // must share besides a similar prompt.
  uint64_t Params();

 private:
  simdjson::dom::parser parser_;
  std::string canonical_;
  std::string params_text_;
  std::string padded_;
  simdjson::dom::object last_body_;  // valid until the parser parses again
  size_t prefix_ = 0;                // tenant, model and operation at the start of canonical_
};

// Writes `element` canonically: object keys sorted (byte order), no whitespace, strings with
// JSON's minimal escapes, numbers in their shortest round-trip form.
void AppendCanonicalJson(std::string& out, simdjson::dom::element element);

}  // namespace tokenway
