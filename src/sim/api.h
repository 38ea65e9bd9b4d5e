// The simulator's OpenAI/vLLM API surface without sockets: parsing of /v1/chat/completions and
// /v1/completions bodies into a GenerationSpec, and the exact JSON vLLM answers with (response
// objects, SSE chunks, usage, errors, the model list). Called by the HTTP endpoint on its event
// loop thread; every function is pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>
#include "common/json_writer.h"

namespace tokenway::sim {

enum class ApiKind { kChat, kCompletion };

// A validated generation request.
struct GenerationSpec {
  ApiKind kind = ApiKind::kChat;
  std::string model;
  std::string prompt_text;  // chat: flattened with tokenway::AppendChatMessage
  bool stream = false;
  bool include_usage = false;
  std::optional<int64_t> max_tokens;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
};

// An error answered in vLLM's shape.
struct ApiError {
  int status = 400;
  std::string message;
};

std::variant<GenerationSpec, ApiError> ParseGenerationRequest(ApiKind kind, std::string_view body);

// vLLM error type for an HTTP status (BadRequestError, NotFoundError, ...).
std::string_view ErrorTypeForStatus(int status);
// {"object":"error","message":...,"type":...,"param":null,"code":status}
std::string ErrorJson(int status, std::string_view message);

// JSON string literals: the project's one escaper.
using tokenway::AppendJsonString;

struct UsageCounts {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};
void AppendUsage(std::string& out, const UsageCounts& usage);

// Identity shared by every chunk of one response.
struct ResponseIdentity {
  ApiKind kind = ApiKind::kChat;
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
};

// SSE event payloads (JSON only, without "data: " framing).
std::string ChatRoleChunk(const ResponseIdentity& identity);
// A content chunk; `finish_reason` empty means null.
std::string ContentChunk(const ResponseIdentity& identity, std::string_view text,
                         std::string_view finish_reason);
std::string UsageChunk(const ResponseIdentity& identity, const UsageCounts& usage);
// Whole non-streaming response.
std::string CompleteResponse(const ResponseIdentity& identity, std::string_view text,
                             std::string_view finish_reason, const UsageCounts& usage);

struct AdapterEntry {
  std::string name;
  std::string path;
};
std::string ModelListJson(std::string_view base_model, int64_t max_model_len, int64_t created,
                          const std::vector<AdapterEntry>& adapters);

// A validated /v1/embeddings request (OpenAI shape).
struct EmbeddingsSpec {
  std::string model;
  std::vector<std::string> inputs;  // `input`: a string or a list of strings
  uint32_t dimensions = 1024;       // `dimensions`, 1 .. 4096
  bool base64 = false;              // encoding_format "base64" (little-endian float32)
};
std::variant<EmbeddingsSpec, ApiError> ParseEmbeddingsRequest(std::string_view body);
// The response: one lexical embedding (semantic/text_vector.h LexicalEmbedding) per input, and
// usage.prompt_tokens the token count of all inputs.
std::string EmbeddingsResponse(const EmbeddingsSpec& spec, std::string_view id, int64_t created);

// Parses {"lora_name": ..., "lora_path": ...}; lora_path optional when `require_path` is false.
std::variant<AdapterEntry, ApiError> ParseLoraRequest(std::string_view body, bool require_path);

}  // namespace tokenway::sim
