#include "sim/api.h"

#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "common/prompt_text.h"
#include "common/tokenizer.h"
#include "semantic/text_vector.h"

namespace tokenway::sim {
namespace {

using simdjson::dom::element;

ApiError BadRequest(std::string message) {
  return ApiError{400, std::move(message)};
}

// Reads a string field or a list of strings (stop). Returns an error message on wrong types.
std::string ReadStop(element value, std::vector<std::string>& out) {
  if (value.is_null()) return {};
  std::string_view text;
  if (value.get_string().get(text) == simdjson::SUCCESS) {
    out.emplace_back(text);
    return {};
  }
  simdjson::dom::array list;
  if (value.get_array().get(list) != simdjson::SUCCESS) {
    return "'stop' must be a string or a list of strings";
  }
  for (element item : list) {
    if (item.get_string().get(text) != simdjson::SUCCESS) {
      return "'stop' must be a string or a list of strings";
    }
    out.emplace_back(text);
  }
  return {};
}

std::string FlattenChatMessages(element messages, std::string& out) {
  simdjson::dom::array list;
  if (messages.get_array().get(list) != simdjson::SUCCESS) return "'messages' must be a list";
  if (list.size() == 0) return "'messages' must not be empty";
  for (element message : list) {
    simdjson::dom::object object;
    if (message.get_object().get(object) != simdjson::SUCCESS) {
      return "each message must be an object";
    }
    std::string_view role;
    if (object["role"].get_string().get(role) != simdjson::SUCCESS) {
      return "each message needs a string 'role'";
    }
    element content;
    std::string content_text;
    if (object["content"].get(content) == simdjson::SUCCESS && !content.is_null()) {
      std::string_view text;
      simdjson::dom::array parts;
      if (content.get_string().get(text) == simdjson::SUCCESS) {
        content_text = text;
      } else if (content.get_array().get(parts) == simdjson::SUCCESS) {
        for (element part : parts) {
          std::string_view type, part_text;
          if (!part.is_object()) return "content parts must be objects";
          if (part["type"].get_string().get(type) != simdjson::SUCCESS) {
            return "content parts need a string 'type'";
          }
          if (type != "text") continue;
          if (part["text"].get_string().get(part_text) != simdjson::SUCCESS) {
            return "text content parts need a string 'text'";
          }
          content_text.append(part_text);
        }
      } else {
        return "'content' must be a string or a list of parts";
      }
    }
    tokenway::AppendChatMessage(out, role, content_text);
  }
  return {};
}

std::string ReadPrompt(element prompt, std::string& out) {
  std::string_view text;
  if (prompt.get_string().get(text) == simdjson::SUCCESS) {
    out = text;
    return {};
  }
  simdjson::dom::array list;
  if (prompt.get_array().get(list) != simdjson::SUCCESS || list.size() == 0) {
    return "'prompt' must be a string or a non-empty list of strings";
  }
  bool first = true;
  for (element item : list) {
    if (item.get_string().get(text) != simdjson::SUCCESS) {
      return "'prompt' must be a string or a non-empty list of strings";
    }
    if (!first) out.push_back('\n');
    out.append(text);
    first = false;
  }
  return {};
}

void AppendInt(std::string& out, int64_t value) {
  out += std::to_string(value);
}

void AppendHead(std::string& out, const ResponseIdentity& identity, std::string_view object) {
  out += "{\"id\":";
  AppendJsonString(out, identity.id);
  out += ",\"object\":\"";
  out += object;
  out += "\",\"created\":";
  AppendInt(out, identity.created);
  out += ",\"model\":";
  AppendJsonString(out, identity.model);
}

void AppendFinish(std::string& out, std::string_view finish_reason) {
  out += ",\"finish_reason\":";
  if (finish_reason.empty()) {
    out += "null";
  } else {
    AppendJsonString(out, finish_reason);
  }
  out += ",\"stop_reason\":null";
}

// The request body as a JSON object, or the 400 that says why it is not one.
std::optional<ApiError> ParseObject(simdjson::dom::parser& parser, std::string_view body,
                                    simdjson::dom::object& object) {
  element doc;
  if (auto error = parser.parse(body.data(), body.size()).get(doc); error != simdjson::SUCCESS) {
    return BadRequest(std::string("Invalid JSON in request body: ") +
                      simdjson::error_message(error));
  }
  if (doc.get_object().get(object) != simdjson::SUCCESS) {
    return BadRequest("Request body must be a JSON object");
  }
  return std::nullopt;
}

}  // namespace

std::variant<EmbeddingsSpec, ApiError> ParseEmbeddingsRequest(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (auto error = ParseObject(parser, body, object)) return *error;
  EmbeddingsSpec spec;
  std::string_view text;
  if (object["model"].get_string().get(text) != simdjson::SUCCESS) {
    return BadRequest("'model' is required and must be a string");
  }
  spec.model = text;
  element input;
  if (object["input"].get(input) != simdjson::SUCCESS) return BadRequest("'input' is required");
  if (input.get_string().get(text) == simdjson::SUCCESS) {
    spec.inputs.emplace_back(text);
  } else {
    simdjson::dom::array list;
    if (input.get_array().get(list) != simdjson::SUCCESS || list.size() == 0) {
      return BadRequest("'input' must be a string or a non-empty list of strings");
    }
    if (list.size() > 2048) return BadRequest("'input' may hold at most 2048 strings");
    for (element item : list) {
      if (item.get_string().get(text) != simdjson::SUCCESS) {
        return BadRequest(
            "'input' must be a string or a non-empty list of strings "
            "(token arrays are not supported)");
      }
      spec.inputs.emplace_back(text);
    }
  }
  element value;
  if (object["encoding_format"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (value.get_string().get(text) != simdjson::SUCCESS ||
        (text != "float" && text != "base64")) {
      return BadRequest("'encoding_format' must be 'float' or 'base64'");
    }
    spec.base64 = text == "base64";
  }
  if (object["dimensions"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    int64_t n = 0;
    if (value.get_int64().get(n) != simdjson::SUCCESS || n < 1 || n > 4096) {
      return BadRequest("'dimensions' must be an integer between 1 and 4096");
    }
    spec.dimensions = static_cast<uint32_t>(n);
  }
  return spec;
}

std::string EmbeddingsResponse(const EmbeddingsSpec& spec, std::string_view id, int64_t created) {
  static constexpr char kBase64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "{\"id\":";
  AppendJsonString(out, id);
  out += ",\"object\":\"list\",\"created\":";
  AppendInt(out, created);
  out += ",\"model\":";
  AppendJsonString(out, spec.model);
  out += ",\"data\":[";
  std::vector<float> embedding(spec.dimensions);
  int64_t tokens = 0;
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    tokens += static_cast<int64_t>(tokenizer::CountTokens(spec.inputs[i]));
    semantic::LexicalEmbedding(spec.inputs[i], embedding);
    if (i) out.push_back(',');
    out += "{\"index\":";
    AppendInt(out, static_cast<int64_t>(i));
    out += ",\"object\":\"embedding\",\"embedding\":";
    if (spec.base64) {
      // Little-endian float32 bytes, base64-encoded (what OpenAI clients decode).
      std::string bytes(embedding.size() * 4, '\0');
      for (size_t k = 0; k < embedding.size(); ++k) {
        uint32_t bits;
        std::memcpy(&bits, &embedding[k], 4);
        for (int b = 0; b < 4; ++b) bytes[k * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
      }
      out.push_back('"');
      for (size_t k = 0; k < bytes.size(); k += 3) {
        const uint32_t n = (uint32_t(uint8_t(bytes[k])) << 16) |
                           (k + 1 < bytes.size() ? uint32_t(uint8_t(bytes[k + 1])) << 8 : 0) |
                           (k + 2 < bytes.size() ? uint32_t(uint8_t(bytes[k + 2])) : 0);
        out.push_back(kBase64[(n >> 18) & 63]);
        out.push_back(kBase64[(n >> 12) & 63]);
        out.push_back(k + 1 < bytes.size() ? kBase64[(n >> 6) & 63] : '=');
        out.push_back(k + 2 < bytes.size() ? kBase64[n & 63] : '=');
      }
      out.push_back('"');
    } else {
      out.push_back('[');
      char number[32];
      for (size_t k = 0; k < embedding.size(); ++k) {
        if (k) out.push_back(',');
        const int n = std::snprintf(number, sizeof number, "%.7g", double(embedding[k]));
        out.append(number, static_cast<size_t>(n));
      }
      out.push_back(']');
    }
    out.push_back('}');
  }
  out += "],\"usage\":{\"prompt_tokens\":";
  AppendInt(out, tokens);
  out += ",\"total_tokens\":";
  AppendInt(out, tokens);
  out += "}}";
  return out;
}

std::variant<GenerationSpec, ApiError> ParseGenerationRequest(ApiKind kind, std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (auto error = ParseObject(parser, body, object)) return *error;
  GenerationSpec spec;
  spec.kind = kind;
  std::string_view model;
  if (object["model"].get_string().get(model) != simdjson::SUCCESS) {
    return BadRequest("'model' is required and must be a string");
  }
  spec.model = model;

  if (kind == ApiKind::kChat) {
    element messages;
    if (object["messages"].get(messages) != simdjson::SUCCESS) {
      return BadRequest("'messages' is required");
    }
    if (auto error = FlattenChatMessages(messages, spec.prompt_text); !error.empty()) {
      return BadRequest(error);
    }
  } else {
    element prompt;
    if (object["prompt"].get(prompt) != simdjson::SUCCESS)
      return BadRequest("'prompt' is required");
    if (auto error = ReadPrompt(prompt, spec.prompt_text); !error.empty()) {
      return BadRequest(error);
    }
  }

  element value;
  if (object["stream"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (value.get_bool().get(spec.stream) != simdjson::SUCCESS) {
      return BadRequest("'stream' must be a boolean");
    }
  }
  if (object["stream_options"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (!value.is_object()) return BadRequest("'stream_options' must be an object");
    element include;
    if (value["include_usage"].get(include) == simdjson::SUCCESS && !include.is_null()) {
      if (include.get_bool().get(spec.include_usage) != simdjson::SUCCESS) {
        return BadRequest("'stream_options.include_usage' must be a boolean");
      }
    }
    if (!spec.stream) return BadRequest("Stream options can only be defined when `stream=True`.");
  }
  for (std::string_view field : {"max_tokens", "max_completion_tokens"}) {
    if (kind == ApiKind::kCompletion && field == "max_completion_tokens") continue;
    if (object[field].get(value) != simdjson::SUCCESS || value.is_null()) continue;
    int64_t limit = 0;
    if (value.get_int64().get(limit) != simdjson::SUCCESS) {
      return BadRequest("'" + std::string(field) + "' must be an integer");
    }
    if (limit < 1) {
      return BadRequest("max_tokens must be at least 1, got " + std::to_string(limit) + ".");
    }
    if (field == "max_completion_tokens" || !spec.max_tokens) spec.max_tokens = limit;
  }
  if (object["ignore_eos"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (value.get_bool().get(spec.ignore_eos) != simdjson::SUCCESS) {
      return BadRequest("'ignore_eos' must be a boolean");
    }
  }
  if (object["stop"].get(value) == simdjson::SUCCESS) {
    if (auto error = ReadStop(value, spec.stop); !error.empty()) return BadRequest(error);
  }
  if (object["seed"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    int64_t seed = 0;
    if (value.get_int64().get(seed) != simdjson::SUCCESS) {
      return BadRequest("'seed' must be an integer");
    }
    spec.seed = static_cast<uint64_t>(seed);
  }
  if (object["n"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    int64_t n = 0;
    if (value.get_int64().get(n) != simdjson::SUCCESS || n < 1) {
      return BadRequest("'n' must be a positive integer");
    }
    if (n != 1) return BadRequest("tokenway-sim supports only n=1");
  }
  for (std::string_view field : {"temperature", "top_p"}) {
    if (object[field].get(value) == simdjson::SUCCESS && !value.is_null() && !value.is_number()) {
      return BadRequest("'" + std::string(field) + "' must be a number");
    }
  }
  return spec;
}

std::string_view ErrorTypeForStatus(int status) {
  switch (status) {
    case 400:
      return "BadRequestError";
    case 401:
      return "AuthenticationError";
    case 403:
      return "PermissionDeniedError";
    case 404:
      return "NotFoundError";
    case 413:
      return "BadRequestError";
    case 422:
      return "UnprocessableEntityError";
    case 429:
      return "RateLimitError";
    case 503:
      return "ServiceUnavailableError";
    default:
      return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

std::string ErrorJson(int status, std::string_view message) {
  std::string out = "{\"object\":\"error\",\"message\":";
  AppendJsonString(out, message);
  out += ",\"type\":\"";
  out += ErrorTypeForStatus(status);
  out += "\",\"param\":null,\"code\":";
  AppendInt(out, status);
  out += "}";
  return out;
}

void AppendUsage(std::string& out, const UsageCounts& usage) {
  out += "{\"prompt_tokens\":";
  AppendInt(out, usage.prompt_tokens);
  out += ",\"total_tokens\":";
  AppendInt(out, usage.prompt_tokens + usage.completion_tokens);
  out += ",\"completion_tokens\":";
  AppendInt(out, usage.completion_tokens);
  out += ",\"prompt_tokens_details\":{\"cached_tokens\":";
  AppendInt(out, usage.cached_tokens);
  out += "}}";
}

std::string ChatRoleChunk(const ResponseIdentity& identity) {
  std::string out;
  AppendHead(out, identity, "chat.completion.chunk");
  out +=
      ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
      "\"logprobs\":null,\"finish_reason\":null}]}";
  return out;
}

std::string ContentChunk(const ResponseIdentity& identity, std::string_view text,
                         std::string_view finish_reason) {
  std::string out;
  out.reserve(200 + text.size());
  if (identity.kind == ApiKind::kChat) {
    AppendHead(out, identity, "chat.completion.chunk");
    out += ",\"choices\":[{\"index\":0,\"delta\":{\"content\":";
    AppendJsonString(out, text);
    out += "},\"logprobs\":null";
  } else {
    AppendHead(out, identity, "text_completion");
    out += ",\"choices\":[{\"index\":0,\"text\":";
    AppendJsonString(out, text);
    out += ",\"logprobs\":null";
  }
  AppendFinish(out, finish_reason);
  out += "}]}";
  return out;
}

std::string UsageChunk(const ResponseIdentity& identity, const UsageCounts& usage) {
  std::string out;
  AppendHead(out, identity,
             identity.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion");
  out += ",\"choices\":[],\"usage\":";
  AppendUsage(out, usage);
  out += "}";
  return out;
}

std::string CompleteResponse(const ResponseIdentity& identity, std::string_view text,
                             std::string_view finish_reason, const UsageCounts& usage) {
  std::string out;
  out.reserve(400 + text.size());
  if (identity.kind == ApiKind::kChat) {
    AppendHead(out, identity, "chat.completion");
    out += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":";
    AppendJsonString(out, text);
    out += ",\"tool_calls\":[],\"reasoning_content\":null},\"logprobs\":null";
  } else {
    AppendHead(out, identity, "text_completion");
    out += ",\"choices\":[{\"index\":0,\"text\":";
    AppendJsonString(out, text);
    out += ",\"logprobs\":null";
  }
  AppendFinish(out, finish_reason);
  out += "}],\"usage\":";
  AppendUsage(out, usage);
  out += ",\"prompt_logprobs\":null}";
  return out;
}

std::string ModelListJson(std::string_view base_model, int64_t max_model_len, int64_t created,
                          const std::vector<AdapterEntry>& adapters) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  auto append_model = [&](std::string_view id, std::string_view root, std::string_view parent) {
    out += "{\"id\":";
    AppendJsonString(out, id);
    out += ",\"object\":\"model\",\"created\":";
    AppendInt(out, created);
    out += ",\"owned_by\":\"vllm\",\"root\":";
    AppendJsonString(out, root);
    out += ",\"parent\":";
    if (parent.empty()) {
      out += "null";
    } else {
      AppendJsonString(out, parent);
    }
    out += ",\"max_model_len\":";
    AppendInt(out, max_model_len);
    out += ",\"permission\":[]}";
  };
  append_model(base_model, base_model, "");
  for (const auto& adapter : adapters) {
    out.push_back(',');
    append_model(adapter.name, adapter.path, base_model);
  }
  out += "]}";
  return out;
}

std::variant<AdapterEntry, ApiError> ParseLoraRequest(std::string_view body, bool require_path) {
  simdjson::dom::parser parser;
  element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    return BadRequest("Request body must be a JSON object");
  }
  AdapterEntry entry;
  std::string_view text;
  if (doc["lora_name"].get_string().get(text) != simdjson::SUCCESS || text.empty()) {
    return BadRequest("'lora_name' is required and must be a non-empty string");
  }
  entry.name = text;
  if (doc["lora_path"].get_string().get(text) == simdjson::SUCCESS) {
    entry.path = text;
  } else if (require_path) {
    return BadRequest("'lora_path' is required and must be a string");
  }
  return entry;
}

}  // namespace tokenway::sim
