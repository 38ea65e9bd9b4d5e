#include "common/request_inspector.h"

#include <simdjson.h>

#include "common/json_writer.h"
#include "common/prompt_text.h"

namespace tokenway {

namespace od = simdjson::ondemand;

std::string_view OperationName(Operation op) {
  switch (op) {
    case Operation::kChatCompletions:
      return "chat";
    case Operation::kCompletions:
      return "text_completion";
    case Operation::kEmbeddings:
      return "embeddings";
  }
  return "unknown";
}

void InspectedRequest::Reset() {
  model.clear();
  stream = false;
  has_stream_options = false;
  include_usage = false;
  max_tokens = -1;
  user.clear();
  prompt_text.clear();
  message_count = 0;
  stream_options_offset = 0;
  model_offset = 0;
  model_length = 0;
  stream_options_length = 0;
}

struct RequestInspector::Impl {
  od::parser parser;
  od::parser nested_parser;  // for the small stream_options object
};

RequestInspector::RequestInspector() : impl_(std::make_unique<Impl>()) {}
RequestInspector::~RequestInspector() = default;

namespace {

// Small helper so every failure reads the same way.
bool Fail(InspectError& e, std::string message, std::string_view param, std::string_view code) {
  e.message = std::move(message);
  e.param.assign(param);
  e.code.assign(code);
  return false;
}

std::string_view TypeName(od::json_type t) {
  switch (t) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "unknown";
}

bool WrongType(InspectError& e, std::string_view field, std::string_view expected,
               od::json_type got) {
  std::string msg = "'";
  msg.append(field).append("' must be ").append(expected).append(", got ").append(TypeName(got));
  return Fail(e, std::move(msg), field, "invalid_type");
}

bool Malformed(InspectError& e, simdjson::error_code code) {
  if (code == simdjson::UTF8_ERROR) {
    return Fail(e, "request body is not valid UTF-8", "", "invalid_json");
  }
  std::string msg = "request body is not valid JSON: ";
  msg.append(simdjson::error_message(code));
  return Fail(e, std::move(msg), "", "invalid_json");
}

// Appends the text of a chat message's content (string, or array of parts) to `out`.
bool AppendContent(od::value content, std::string& out, InspectError& e) {
  od::json_type type;
  if (auto err = content.type().get(type)) return Malformed(e, err);
  switch (type) {
    case od::json_type::null:
      return true;
    case od::json_type::string: {
      std::string_view s;
      if (auto err = content.get_string().get(s)) return Malformed(e, err);
      out.append(s);
      return true;
    }
    case od::json_type::array: {
      od::array parts;
      if (auto err = content.get_array().get(parts)) return Malformed(e, err);
      for (auto part_result : parts) {
        od::object part;
        if (auto err = part_result.get_object().get(part)) {
          if (err == simdjson::INCORRECT_TYPE) {
            return Fail(e, "each content part must be an object", "messages", "invalid_type");
          }
          return Malformed(e, err);
        }
        std::string_view part_type;
        std::string_view text;
        bool has_text = false;
        for (auto field : part) {
          std::string_view key;
          if (auto err = field.unescaped_key().get(key)) return Malformed(e, err);
          od::value v = field.value();
          if (key == "type") {
            if (v.get_string().get(part_type) != simdjson::SUCCESS) part_type = {};
          } else if (key == "text") {
            has_text = v.get_string().get(text) == simdjson::SUCCESS;
          }
        }
        // Only parts of type "text" count, whichever order their keys come in (views into the
        // parser's string buffer stay valid for the whole document).
        if (has_text && part_type == "text") out.append(text);
      }
      return true;
    }
    default:
      return WrongType(e, "messages.content", "a string or an array of parts", type);
  }
}

bool InspectMessages(od::value value, InspectedRequest& out, InspectError& e) {
  od::array messages;
  od::json_type type;
  if (auto err = value.type().get(type)) return Malformed(e, err);
  if (type != od::json_type::array) return WrongType(e, "messages", "an array", type);
  if (auto err = value.get_array().get(messages)) return Malformed(e, err);
  // One message's content text; kept per thread so its capacity is reused across requests.
  thread_local std::string content;
  for (auto message_result : messages) {
    od::object message;
    if (auto err = message_result.get_object().get(message)) {
      if (err == simdjson::INCORRECT_TYPE) {
        return Fail(e, "each message must be an object", "messages", "invalid_type");
      }
      return Malformed(e, err);
    }
    std::string_view role;
    content.clear();
    bool has_role = false;
    for (auto field : message) {
      std::string_view key;
      if (auto err = field.unescaped_key().get(key)) return Malformed(e, err);
      od::value v = field.value();
      if (key == "role") {
        // The role view lives in the parser's string buffer, which later strings do not
        // overwrite within one document.
        od::json_type t;
        if (auto err = v.type().get(t)) return Malformed(e, err);
        if (t != od::json_type::string) return WrongType(e, "messages.role", "a string", t);
        if (auto err = v.get_string().get(role)) return Malformed(e, err);
        has_role = true;
      } else if (key == "content") {
        if (!AppendContent(v, content, e)) return false;
      }
    }
    if (!has_role) {
      return Fail(e, "each message needs a 'role'", "messages", "missing_required_field");
    }
    AppendChatMessage(out.prompt_text, role, content);
    ++out.message_count;
  }
  return true;
}

// Completions "prompt" and embeddings "input": a string or an array of strings (token arrays
// contribute nothing to the text).
bool InspectPromptField(od::value value, std::string_view field, InspectedRequest& out,
                        InspectError& e) {
  od::json_type type;
  if (auto err = value.type().get(type)) return Malformed(e, err);
  if (type == od::json_type::string) {
    std::string_view s;
    if (auto err = value.get_string().get(s)) return Malformed(e, err);
    out.prompt_text.append(s);
    return true;
  }
  if (type != od::json_type::array) {
    return WrongType(e, field, "a string or an array", type);
  }
  od::array items;
  if (auto err = value.get_array().get(items)) return Malformed(e, err);
  bool first = true;
  for (auto item_result : items) {
    od::value item;
    if (auto err = item_result.get(item)) return Malformed(e, err);
    od::json_type t;
    if (auto err = item.type().get(t)) return Malformed(e, err);
    if (t == od::json_type::string) {
      std::string_view s;
      if (auto err = item.get_string().get(s)) return Malformed(e, err);
      if (!first) out.prompt_text.push_back('\n');
      out.prompt_text.append(s);
      first = false;
    } else if (t != od::json_type::number && t != od::json_type::array) {
      return WrongType(e, field, "strings or token arrays", t);
    }
  }
  return true;
}

bool GetOptionalInt(od::value v, std::string_view field, int64_t& out, InspectError& e) {
  od::json_type type;
  if (auto err = v.type().get(type)) return Malformed(e, err);
  if (type == od::json_type::null) return true;
  if (type != od::json_type::number) return WrongType(e, field, "an integer", type);
  int64_t n;
  if (v.get_int64().get(n) != simdjson::SUCCESS) {
    return Fail(e, std::string("'").append(field).append("' must be an integer"), field,
                "invalid_type");
  }
  if (n < 0) {
    return Fail(e, std::string("'").append(field).append("' must not be negative"), field,
                "invalid_value");
  }
  out = n;
  return true;
}

}  // namespace

bool RequestInspector::Inspect(Operation op, const char* body, size_t size, size_t padding,
                               InspectedRequest& out, InspectError& e) {
  out.Reset();
  out.operation = op;
  if (size == 0) return Fail(e, "request body is empty", "", "invalid_json");
  od::document doc;
  auto padded = simdjson::padded_string_view(body, size, size + padding);
  if (auto err = impl_->parser.iterate(padded).get(doc)) return Malformed(e, err);
  od::object root;
  {
    od::json_type type;
    if (auto err = doc.type().get(type)) return Malformed(e, err);
    if (type != od::json_type::object) {
      return Fail(e, "request body must be a JSON object", "", "invalid_json");
    }
    if (auto err = doc.get_object().get(root)) return Malformed(e, err);
  }
  bool has_model = false;
  bool has_prompt = false;
  int64_t max_tokens = -1;
  int64_t max_completion_tokens = -1;
  for (auto field : root) {
    std::string_view key;
    if (auto err = field.unescaped_key().get(key)) return Malformed(e, err);
    od::value v;
    if (auto err = field.value().get(v)) return Malformed(e, err);
    if (key == "model") {
      od::json_type t;
      if (auto err = v.type().get(t)) return Malformed(e, err);
      if (t != od::json_type::string) return WrongType(e, "model", "a string", t);
      std::string_view token = v.raw_json_token();
      while (!token.empty() && token.back() != '"') token.remove_suffix(1);
      out.model_offset = static_cast<size_t>(token.data() - body);
      out.model_length = token.size();
      std::string_view s;
      if (auto err = v.get_string().get(s)) return Malformed(e, err);
      out.model.assign(s);
      has_model = true;
    } else if (key == "stream") {
      od::json_type t;
      if (auto err = v.type().get(t)) return Malformed(e, err);
      if (t == od::json_type::null) continue;
      if (t != od::json_type::boolean) return WrongType(e, "stream", "a boolean", t);
      if (auto err = v.get_bool().get(out.stream)) return Malformed(e, err);
    } else if (key == "stream_options") {
      od::json_type t;
      if (auto err = v.type().get(t)) return Malformed(e, err);
      if (t == od::json_type::null) continue;
      if (t != od::json_type::object) return WrongType(e, "stream_options", "an object", t);
      od::object so;
      std::string_view raw;
      if (auto err = v.get_object().get(so)) return Malformed(e, err);
      if (auto err = so.raw_json().get(raw)) return Malformed(e, err);
      // raw_json() runs to the next token, so it may include whitespace after the '}'.
      while (!raw.empty() && raw.back() != '}') raw.remove_suffix(1);
      out.has_stream_options = true;
      out.stream_options_offset = static_cast<size_t>(raw.data() - body);
      out.stream_options_length = raw.size();
      // Look inside the object with a second parser; the bytes after it are part of the
      // padded body, so it can be parsed where it lies.
      od::document nested;
      auto nested_view = simdjson::padded_string_view(raw.data(), raw.size(),
                                                      size + padding - out.stream_options_offset);
      if (auto err = impl_->nested_parser.iterate(nested_view).get(nested)) {
        return Malformed(e, err);
      }
      od::object nested_obj;
      if (auto err = nested.get_object().get(nested_obj)) return Malformed(e, err);
      for (auto nf : nested_obj) {
        std::string_view nk;
        if (auto err = nf.unescaped_key().get(nk)) return Malformed(e, err);
        if (nk == "include_usage") {
          od::value iv;
          if (auto err = nf.value().get(iv)) return Malformed(e, err);
          od::json_type it;
          if (auto err = iv.type().get(it)) return Malformed(e, err);
          if (it == od::json_type::null) continue;
          if (it != od::json_type::boolean) {
            return WrongType(e, "stream_options.include_usage", "a boolean", it);
          }
          if (auto err = iv.get_bool().get(out.include_usage)) return Malformed(e, err);
        }
      }
    } else if (key == "max_tokens") {
      if (!GetOptionalInt(v, "max_tokens", max_tokens, e)) return false;
    } else if (key == "max_completion_tokens") {
      if (!GetOptionalInt(v, "max_completion_tokens", max_completion_tokens, e)) return false;
    } else if (key == "user") {
      od::json_type t;
      if (auto err = v.type().get(t)) return Malformed(e, err);
      if (t == od::json_type::null) continue;
      if (t != od::json_type::string) return WrongType(e, "user", "a string", t);
      std::string_view s;
      if (auto err = v.get_string().get(s)) return Malformed(e, err);
      out.user.assign(s);
    } else if (key == "messages" && op == Operation::kChatCompletions) {
      if (!InspectMessages(v, out, e)) return false;
      has_prompt = true;
    } else if (key == "prompt" && op == Operation::kCompletions) {
      if (!InspectPromptField(v, "prompt", out, e)) return false;
      has_prompt = true;
    } else if (key == "input" && op == Operation::kEmbeddings) {
      if (!InspectPromptField(v, "input", out, e)) return false;
      has_prompt = true;
    }
  }
  const char* trailing = nullptr;
  if (doc.current_location().get(trailing) == simdjson::SUCCESS) {
    return Fail(e, "request body has trailing content after the JSON object", "", "invalid_json");
  }
  if (!has_model) return Fail(e, "'model' is required", "model", "missing_required_field");
  if (!has_prompt) {
    std::string_view field = op == Operation::kChatCompletions ? "messages"
                             : op == Operation::kCompletions   ? "prompt"
                                                               : "input";
    return Fail(e, std::string("'").append(field).append("' is required"), field,
                "missing_required_field");
  }
  out.max_tokens = max_completion_tokens >= 0 ? max_completion_tokens : max_tokens;
  if (op == Operation::kEmbeddings) out.stream = false;
  return true;
}

BodyInsertion UsageInsertion(std::string_view body, const InspectedRequest& req) {
  if (req.has_stream_options) {
    // Before the closing brace of "stream_options": the client's keys stay, ours comes last.
    std::string_view so = body.substr(req.stream_options_offset, req.stream_options_length);
    size_t close = so.rfind('}');
    std::string_view inner = so.substr(1, close - 1);
    bool empty = inner.find_first_not_of(" \t\r\n") == std::string_view::npos;
    return {req.stream_options_offset + close, empty ? std::string_view("\"include_usage\":true")
                                                     : std::string_view(",\"include_usage\":true")};
  }
  // Right after the body's opening brace; an object without members ("{}") takes the new member
  // without a separating comma.
  size_t open = body.find('{');
  size_t next = body.find_first_not_of(" \t\r\n", open + 1);
  bool no_members = next == std::string_view::npos || body[next] == '}';
  return {open + 1, no_members ? std::string_view("\"stream_options\":{\"include_usage\":true}")
                               : std::string_view("\"stream_options\":{\"include_usage\":true},")};
}

void RewriteForUsage(std::string_view body, const InspectedRequest& req, std::string& out) {
  BodyInsertion ins = UsageInsertion(body, req);
  out.clear();
  out.reserve(body.size() + ins.text.size());
  out.append(body.substr(0, ins.at)).append(ins.text).append(body.substr(ins.at));
}

void ReplaceModel(std::string_view body, const InspectedRequest& req, std::string_view model,
                  std::string& out) {
  out.clear();
  out.reserve(body.size() + model.size() + 2);
  out.append(body.substr(0, req.model_offset));
  AppendJsonString(out, model);
  out.append(body.substr(req.model_offset + req.model_length));
}

}  // namespace tokenway
