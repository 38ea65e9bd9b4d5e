// Token usage as reported by an OpenAI-compatible server, and how tokenway reads it from a
// response body or from one event of a stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tokenway {

struct TokenUsage {
  int64_t prompt_tokens = -1;  // -1: not reported
  int64_t completion_tokens = -1;
  int64_t cached_tokens = -1;  // usage.prompt_tokens_details.cached_tokens
  bool known() const { return prompt_tokens >= 0 || completion_tokens >= 0; }
};

// What one JSON payload (a whole response, or one stream chunk) says about usage.
struct UsageReading {
  TokenUsage usage;
  bool has_usage = false;      // a non-null "usage" object was present
  bool choices_empty = false;  // "choices" was present and an empty array (the usage chunk)
  std::string_view model;      // top-level "model"; valid until the reader parses again
};

// Parses payloads with simdjson; owns the parser and a padded scratch copy. Per worker.
class UsageReader {
 public:
  UsageReader();
  ~UsageReader();
  UsageReader(const UsageReader&) = delete;
  UsageReader& operator=(const UsageReader&) = delete;

  // Cheap pre-check: could `json` carry a usage object? Avoids parsing most stream chunks.
  static bool MayCarryUsage(std::string_view json);

  // Reads usage from `json`. Returns false if `json` is not a well-formed JSON object.
  bool Read(std::string_view json, UsageReading& out);
  // The same for a body the caller owns: parsed in place, after reserving simdjson's padding in
  // the string's capacity (no copy when the capacity is already there).
  bool ReadInPlace(std::string& json, UsageReading& out);

 private:
  bool Parse(const char* data, size_t size, size_t capacity, UsageReading& out);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokenway
