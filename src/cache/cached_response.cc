#include "cache/cached_response.h"

#include "common/json_writer.h"

namespace tokenway {

namespace dom = simdjson::dom;

namespace {

// Content bytes per streamed chunk of a hit (cut at a UTF-8 character boundary).
constexpr size_t kStreamPieceBytes = 512;

bool IsChat(const CachedResponse& r) {
  return r.operation == Operation::kChatCompletions;
}

void AppendUsage(const CachedResponse& r, std::string& out) {
  out.append("\"usage\":{\"prompt_tokens\":");
  AppendJsonInt(out, r.prompt_tokens);
  out.append(",\"completion_tokens\":");
  AppendJsonInt(out, r.completion_tokens);
  out.append(",\"total_tokens\":");
  AppendJsonInt(out, r.prompt_tokens + r.completion_tokens);
  out.append(",\"prompt_tokens_details\":{\"cached_tokens\":");
  AppendJsonInt(out, r.prompt_tokens);
  out.append("}}");
}

void AppendHead(const CachedResponse& r, std::string_view id, int64_t created, bool chunk,
                std::string& out) {
  out.append("{\"id\":");
  std::string full_id(IsChat(r) ? "chatcmpl-" : "cmpl-");
  full_id.append(id);
  AppendJsonString(out, full_id);
  out.append(",\"object\":\"");
  out.append(IsChat(r) ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
  out.append("\",\"created\":");
  AppendJsonInt(out, created);
  out.append(",\"model\":");
  AppendJsonString(out, r.model);
  out.push_back(',');
}

// The length of the longest prefix of `s` of at most `max` bytes that ends on a character
// boundary (at least one character).
size_t PieceLength(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  if (n == 0) {
    n = 1;
    while (n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) ++n;
  }
  return n;
}

}  // namespace

bool ResponseReader::Parse(std::string_view json, dom::element& root) {
  padded_.assign(json);
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  return parser_.parse(reinterpret_cast<const uint8_t*>(padded_.data()), json.size(), false)
                 .get(root) == simdjson::SUCCESS &&
         root.is_object();
}

void ResponseReader::ReadChoice(dom::element choice, bool stream, ResponseAssembly& a) {
  int64_t index = 0;
  if (choice["index"].get(index) == simdjson::SUCCESS && index != 0) {
    a.unusable = true;
    return;
  }
  std::string_view text;
  dom::element message;
  if (choice[stream ? "delta" : "message"].get(message) == simdjson::SUCCESS &&
      message.is_object()) {
    dom::element calls;
    // vLLM sends "tool_calls": [] with plain answers; only calls made count.
    if (message["tool_calls"].get(calls) == simdjson::SUCCESS && !calls.is_null() &&
        !(calls.is_array() && dom::array(calls).size() == 0)) {
      a.unusable = true;
    }
    if (message["function_call"].get(calls) == simdjson::SUCCESS && !calls.is_null()) {
      a.unusable = true;
    }
    if (message["refusal"].get(calls) == simdjson::SUCCESS && !calls.is_null()) {
      a.unusable = true;
    }
    if (message["content"].get(text) == simdjson::SUCCESS) a.content.append(text);
  } else if (choice["text"].get(text) == simdjson::SUCCESS) {
    a.content.append(text);
  }
  std::string_view finish;
  if (choice["finish_reason"].get(finish) == simdjson::SUCCESS) a.finish_reason.assign(finish);
}

void ResponseReader::ReadBody(std::string_view json, ResponseAssembly& a) {
  dom::element root;
  a.done = true;
  if (!Parse(json, root)) {
    a.unusable = true;
    return;
  }
  std::string_view model;
  if (root["model"].get(model) == simdjson::SUCCESS) a.model.assign(model);
  dom::array choices;
  if (root["choices"].get(choices) != simdjson::SUCCESS || choices.size() != 1) {
    a.unusable = true;
    return;
  }
  ReadChoice(choices.at(0), false, a);
}

void ResponseReader::ReadStreamEvent(std::string_view data, ResponseAssembly& a) {
  if (a.unusable) return;
  if (data == "[DONE]") {
    a.done = true;
    return;
  }
  dom::element root;
  if (!Parse(data, root)) {
    a.unusable = true;
    return;
  }
  if (a.model.empty()) {
    std::string_view model;
    if (root["model"].get(model) == simdjson::SUCCESS) a.model.assign(model);
  }
  dom::element error;
  if (root["error"].get(error) == simdjson::SUCCESS) {
    a.unusable = true;
    return;
  }
  dom::array choices;
  if (root["choices"].get(choices) != simdjson::SUCCESS) return;
  for (dom::element choice : choices) ReadChoice(choice, true, a);
}

void RenderCachedJson(const CachedResponse& r, std::string_view id, int64_t created,
                      std::string& out) {
  out.reserve(out.size() + r.content.size() + r.model.size() + 320);
  AppendHead(r, id, created, false, out);
  out.append("\"choices\":[{\"index\":0,");
  if (IsChat(r)) {
    out.append("\"message\":{\"role\":\"assistant\",\"content\":");
    AppendJsonString(out, r.content);
    out.push_back('}');
  } else {
    out.append("\"text\":");
    AppendJsonString(out, r.content);
  }
  out.append(",\"logprobs\":null,\"finish_reason\":");
  AppendJsonString(out, r.finish_reason);
  out.append("}],");
  AppendUsage(r, out);
  out.push_back('}');
}

void RenderCachedStream(const CachedResponse& r, std::string_view id, int64_t created,
                        bool include_usage, std::string& out) {
  out.reserve(out.size() + r.content.size() * 5 / 4 + 1024);
  const bool chat = IsChat(r);
  auto event = [&](std::string_view choice_body, std::string_view finish) {
    out.append("data: ");
    AppendHead(r, id, created, true, out);
    out.append("\"choices\":[{\"index\":0,");
    out.append(choice_body);
    out.append(",\"logprobs\":null,\"finish_reason\":");
    if (finish.empty()) {
      out.append("null");
    } else {
      AppendJsonString(out, finish);
    }
    out.append("}]}\n\n");
  };
  std::string piece;
  if (chat) event("\"delta\":{\"role\":\"assistant\",\"content\":\"\"}", {});
  std::string_view rest = r.content;
  while (!rest.empty()) {
    const size_t n = PieceLength(rest, kStreamPieceBytes);
    piece.assign(chat ? "\"delta\":{\"content\":" : "\"text\":");
    AppendJsonString(piece, rest.substr(0, n));
    if (chat) piece.push_back('}');
    event(piece, {});
    rest.remove_prefix(n);
  }
  event(chat ? "\"delta\":{}" : "\"text\":\"\"", r.finish_reason);
  if (include_usage) {
    out.append("data: ");
    AppendHead(r, id, created, true, out);
    out.append("\"choices\":[],");
    AppendUsage(r, out);
    out.append("}\n\n");
  }
  out.append("data: [DONE]\n\n");
}

std::string EncodeCachedResponse(const CachedResponse& r) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject()
      .Key("v")
      .Int(1)
      .Key("op")
      .String(OperationName(r.operation))
      .Key("model")
      .String(r.model)
      .Key("content")
      .String(r.content)
      .Key("finish_reason")
      .String(r.finish_reason)
      .Key("prompt_tokens")
      .Int(r.prompt_tokens)
      .Key("completion_tokens")
      .Int(r.completion_tokens)
      .Key("generation_ns")
      .Int(r.generation_ns)
      .EndObject();
  return out;
}

bool DecodeCachedResponse(std::string_view text, CachedResponse& r) {
  dom::parser parser;
  dom::element root;
  if (parser.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) return false;
  int64_t version = 0;
  std::string_view op, model, content, finish;
  if (root["v"].get(version) != simdjson::SUCCESS || version != 1 ||
      root["op"].get(op) != simdjson::SUCCESS || root["model"].get(model) != simdjson::SUCCESS ||
      root["content"].get(content) != simdjson::SUCCESS ||
      root["finish_reason"].get(finish) != simdjson::SUCCESS ||
      root["prompt_tokens"].get(r.prompt_tokens) != simdjson::SUCCESS ||
      root["completion_tokens"].get(r.completion_tokens) != simdjson::SUCCESS ||
      root["generation_ns"].get(r.generation_ns) != simdjson::SUCCESS) {
    return false;
  }
  if (op == OperationName(Operation::kChatCompletions)) {
    r.operation = Operation::kChatCompletions;
  } else if (op == OperationName(Operation::kCompletions)) {
    r.operation = Operation::kCompletions;
  } else {
    return false;
  }
  r.model.assign(model);
  r.content.assign(content);
  r.finish_reason.assign(finish);
  return true;
}

}  // namespace tokenway
