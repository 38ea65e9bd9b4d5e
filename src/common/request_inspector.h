// RequestInspector: reads an OpenAI request body once, in place, and extracts what the request
// path decides on (model, stream, usage options, token limits, user, prompt text).
//
// The body is parsed with simdjson on-demand directly from the connection's padded read buffer;
// nothing is re-serialised. When a phase must change the body (usage injection) it describes the
// change as one insertion (UsageInsertion) and the body goes out in pieces, still uncopied. One
// inspector per worker thread; not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tokenway {

enum class Operation : uint8_t { kChatCompletions, kCompletions, kEmbeddings };
std::string_view OperationName(Operation op);

// What the request path knows about one request body. Reused across requests on a connection so
// its strings keep their capacity.
struct InspectedRequest {
  Operation operation = Operation::kChatCompletions;
  std::string model;
  bool stream = false;
  bool has_stream_options = false;  // a non-null "stream_options" object is present
  bool include_usage = false;       // stream_options.include_usage is true
  int64_t max_tokens = -1;          // max_completion_tokens, else max_tokens; -1 when absent
  std::string user;
  // The prompt flattened as documented in common/prompt_text.h.
  std::string prompt_text;
  uint32_t message_count = 0;
  // Byte offset and length of the stream_options object inside the body (when present).
  size_t stream_options_offset = 0;
  size_t stream_options_length = 0;
  // Byte offset and length of the "model" value's string token, quotes included.
  size_t model_offset = 0;
  size_t model_length = 0;

  void Reset();
};

// Why a body was rejected: rendered as an OpenAI invalid_request_error (400).
struct InspectError {
  std::string message;
  std::string param;  // the offending field, empty when not about one field
  std::string code;   // e.g. "invalid_json", "invalid_type", "missing_required_field"
};

class RequestInspector {
 public:
  RequestInspector();
  ~RequestInspector();
  RequestInspector(const RequestInspector&) = delete;
  RequestInspector& operator=(const RequestInspector&) = delete;

  // Inspects `body`, which must be followed in memory by at least `padding` readable bytes
  // (>= 64, as IoBuffer guarantees). Fills `out`; on failure fills `error` and returns false.
  bool Inspect(Operation op, const char* body, size_t size, size_t padding, InspectedRequest& out,
               InspectError& error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One insertion into a body: `text` goes before byte `at`.
struct BodyInsertion {
  size_t at = 0;
  std::string_view text;  // a static string
};

// Where and what to insert into `body` (inspected as `req`, a JSON object) so that its
// stream_options.include_usage is true. Keys the client set inside stream_options are kept; when
// include_usage was present with another value, the inserted key wins because JSON parsers keep
// the last duplicate.
BodyInsertion UsageInsertion(std::string_view body, const InspectedRequest& req);
// The body with UsageInsertion applied, as one string (tests and tools; the gateway sends the
// pieces).
void RewriteForUsage(std::string_view body, const InspectedRequest& req, std::string& out);

// `body` (inspected as `req`) with its "model" value replaced by `model` (JSON-escaped), every
// other byte as it came: the one re-serialisation when a request goes upstream under another
// model name (an alias's version, a semantic route's target).
void ReplaceModel(std::string_view body, const InspectedRequest& req, std::string_view model,
                  std::string& out);

}  // namespace tokenway
