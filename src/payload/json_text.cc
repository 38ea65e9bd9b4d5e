#include "payload/json_text.h"

#include <simdjson.h>

#include <algorithm>

#include "common/json_writer.h"

namespace tokenway {

namespace od = simdjson::ondemand;

namespace {

struct ParseScratch {
  od::parser parser;
  std::string padded;
};

ParseScratch& Scratch() {
  thread_local ParseScratch scratch;
  return scratch;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool Hex4(std::string_view s, size_t at, uint32_t& v) {
  if (at + 4 > s.size()) return false;
  v = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v |= static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      v |= static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
  }
  return true;
}

// `raw` is a string token with its quotes (and maybe trailing whitespace).
bool Unescape(std::string_view raw, std::string& out) {
  const size_t close = raw.find_last_of('"');
  if (raw.empty() || raw[0] != '"' || close == 0 || close == std::string_view::npos) return false;
  const std::string_view s = raw.substr(1, close - 1);
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    // Runs without escapes are copied whole.
    const size_t escape = s.find('\\', i);
    const size_t run_end = escape == std::string_view::npos ? s.size() : escape;
    if (run_end > i) {
      out.append(s.data() + i, run_end - i);
      i = run_end;
      if (i == s.size()) break;
    }
    if (++i >= s.size()) return false;
    switch (s[i]) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t cp = 0;
        if (!Hex4(s, i + 1, cp)) return false;
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < s.size() && s[i + 1] == '\\' &&
            s[i + 2] == 'u') {
          uint32_t lo = 0;
          if (Hex4(s, i + 3, lo) && lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
        AppendUtf8(out, cp);
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

// Records `v` as a text field when it is a string.
void AddString(od::value v, const char* base, int choice, int tool, JsonTexts& out) {
  if (v.type() != od::json_type::string) return;
  std::string_view raw = v.raw_json_token();
  JsonTextField f;
  f.offset = static_cast<size_t>(raw.data() - base);
  f.length = raw.find_last_of('"') + 1;
  f.choice = choice;
  f.tool = tool;
  if (!Unescape(raw, f.text)) return;
  out.fields.push_back(std::move(f));
}

bool IsImageType(std::string_view type) {
  return type == "image_url" || type == "input_image";
}

bool IsDataUrl(std::string_view url) {
  if (url.size() < 5) return false;
  for (size_t i = 0; i < 5; ++i) {
    const char c = static_cast<char>(url[i] | 0x20);
    if (c != "data:"[i]) return false;
  }
  return true;
}

// The end of the string token that starts at `at` (its closing quote + 1), or npos.
size_t StringEnd(std::string_view json, size_t at) {
  for (size_t i = at + 1; i < json.size(); ++i) {
    if (json[i] == '\\') {
      ++i;
    } else if (json[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// The end of the JSON value that starts at `at`, or npos when it does not end inside `json`.
size_t ValueEnd(std::string_view json, size_t at) {
  if (at >= json.size()) return std::string_view::npos;
  const char c = json[at];
  if (c == '"') return StringEnd(json, at);
  if (c == '{' || c == '[') {
    int depth = 0;
    for (size_t i = at; i < json.size(); ++i) {
      const char d = json[i];
      if (d == '"') {
        const size_t end = StringEnd(json, i);
        if (end == std::string_view::npos) return end;
        i = end - 1;
      } else if (d == '{' || d == '[') {
        ++depth;
      } else if ((d == '}' || d == ']') && --depth == 0) {
        return i + 1;
      }
    }
    return std::string_view::npos;
  }
  size_t i = at;
  while (i < json.size() && json[i] != ',' && json[i] != '}' && json[i] != ']' && json[i] != ' ' &&
         json[i] != '\t' && json[i] != '\r' && json[i] != '\n') {
    ++i;
  }
  return i;
}

// Thrown out of a structure walk when a value does not end inside the document.
struct Truncated {};

// The span of value `v` in the document that starts at `base`.
void Span(od::value& v, const char* base, std::string_view json, size_t& offset, size_t& length) {
  offset = static_cast<size_t>(v.raw_json_token().data() - base);
  const size_t end = ValueEnd(json, offset);
  if (end == std::string_view::npos) throw Truncated{};
  length = end - offset;
}

// A string, or an array of strings / of parts with "text".
void AddTextOrParts(od::value v, const char* base, JsonTexts& out) {
  const od::json_type t = v.type();
  if (t == od::json_type::string) {
    AddString(v, base, 0, -1, out);
    return;
  }
  if (t != od::json_type::array) return;
  for (od::value item : v.get_array()) {
    const od::json_type it = item.type();
    if (it == od::json_type::string) {
      AddString(item, base, 0, -1, out);
    } else if (it == od::json_type::object) {
      // An image part's fields (its URL, inline data: bytes) are never text to scan, even when
      // a client puts a "text" field beside them.
      const size_t before = out.fields.size();
      bool image = false;
      for (auto field : item.get_object()) {
        const std::string_view key = field.unescaped_key();
        if (key == "text") {
          AddString(field.value(), base, 0, -1, out);
        } else if (key == "type") {
          std::string_view type;
          if (field.value().get_string().get(type) == simdjson::SUCCESS) image = IsImageType(type);
        } else if (key == "image_url") {
          image = true;
        }
      }
      if (image) out.fields.resize(before);
    }
  }
}

// Assigns in place: the scratch strings keep their capacity from one stream event to the next.
void RawToken(od::value v, std::string& out) {
  std::string_view raw = v.raw_json_token();
  while (!raw.empty() &&
         (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == '\t')) {
    raw.remove_suffix(1);
  }
  out.assign(raw);
}

// Tool calls: [{"index": k, "function": {"arguments": "..."}}].
void AddToolCalls(od::value v, const char* base, int choice, JsonTexts& out) {
  if (v.type() != od::json_type::array) return;
  int position = 0;
  for (od::value call : v.get_array()) {
    if (call.type() != od::json_type::object) continue;
    int tool = position++;
    const size_t before = out.fields.size();
    for (auto field : call.get_object()) {
      const std::string_view key = field.unescaped_key();
      if (key == "index") {
        int64_t n = 0;
        if (field.value().get_int64().get(n) == simdjson::SUCCESS) tool = static_cast<int>(n);
      } else if (key == "function") {
        od::value fn = field.value();
        if (fn.type() != od::json_type::object) continue;
        for (auto f : fn.get_object()) {
          if (f.unescaped_key() == std::string_view("arguments")) {
            AddString(f.value(), base, choice, 0, out);
          }
        }
      }
    }
    for (size_t i = before; i < out.fields.size(); ++i) out.fields[i].tool = tool;
  }
}

void AddMessage(od::value v, const char* base, int choice, JsonTexts& out) {
  if (v.type() != od::json_type::object) return;
  for (auto field : v.get_object()) {
    const std::string_view key = field.unescaped_key();
    if (key == "content") {
      AddString(field.value(), base, choice, -1, out);
    } else if (key == "tool_calls") {
      AddToolCalls(field.value(), base, choice, out);
    }
  }
}

void AddChoice(od::value v, const char* base, JsonTexts& out) {
  if (v.type() != od::json_type::object) return;
  int choice = 0;
  const size_t before = out.fields.size();
  bool finished = false;
  JsonTexts::Finish finish;
  for (auto field : v.get_object()) {
    const std::string_view key = field.unescaped_key();
    if (key == "index") {
      int64_t n = 0;
      if (field.value().get_int64().get(n) == simdjson::SUCCESS) choice = static_cast<int>(n);
    } else if (key == "delta" || key == "message") {
      AddMessage(field.value(), base, choice, out);
    } else if (key == "text") {
      out.completion = true;
      AddString(field.value(), base, choice, -1, out);
    } else if (key == "finish_reason") {
      od::value fr = field.value();
      if (fr.type() != od::json_type::null) {
        std::string_view raw = fr.raw_json_token();
        finish.offset = static_cast<size_t>(raw.data() - base);
        finish.length = raw.find_last_of('"') + 1;
        finished = finish.length > 0;
      }
    }
  }
  for (size_t i = before; i < out.fields.size(); ++i) out.fields[i].choice = choice;
  if (finished) {
    finish.choice = choice;
    out.finishes.push_back(finish);
  }
}

template <typename Out, typename Walk>
bool Parse(std::string_view json, Out& out, Walk walk) {
  out.Clear();
  ParseScratch& s = Scratch();
  s.padded.assign(json);
  s.padded.append(simdjson::SIMDJSON_PADDING, ' ');
  try {
    od::document doc = s.parser.iterate(s.padded.data(), json.size(), s.padded.size());
    od::object root = doc.get_object();
    walk(root, s.padded.data());
    return true;
  } catch (const simdjson::simdjson_error&) {
    out.Clear();
    return false;
  } catch (const Truncated&) {
    out.Clear();
    return false;
  }
}

void AddMessageStructure(od::value m, const char* base, std::string_view json,
                         RequestStructure& out) {
  if (m.type() != od::json_type::object) return;
  RequestMessage msg;
  Span(m, base, json, msg.offset, msg.length);
  for (auto field : m.get_object()) {
    const std::string_view key = field.unescaped_key();
    if (key == "role") {
      std::string_view role;
      if (field.value().get_string().get(role) == simdjson::SUCCESS) msg.role = role;
    } else if (key == "content") {
      od::value content = field.value();
      Span(content, base, json, msg.content_offset, msg.content_length);
      if (content.type() != od::json_type::array) continue;
      msg.content_is_parts = true;
      for (od::value item : content.get_array()) {
        ContentPart part;
        Span(item, base, json, part.offset, part.length);
        if (item.type() == od::json_type::object) {
          for (auto pf : item.get_object()) {
            const std::string_view pkey = pf.unescaped_key();
            if (pkey == "type") {
              std::string_view type;
              if (pf.value().get_string().get(type) == simdjson::SUCCESS && IsImageType(type)) {
                part.image = true;
              }
            } else if (pkey == "image_url") {
              part.image = true;
              od::value url = pf.value();
              std::string_view text;
              if (url.type() == od::json_type::string) {
                if (url.get_string().get(text) == simdjson::SUCCESS)
                  part.data_url = IsDataUrl(text);
              } else if (url.type() == od::json_type::object) {
                for (auto uf : url.get_object()) {
                  if (uf.unescaped_key() == std::string_view("url") &&
                      uf.value().get_string().get(text) == simdjson::SUCCESS) {
                    part.data_url = IsDataUrl(text);
                  }
                }
              }
            }
          }
        }
        msg.parts.push_back(part);
      }
    }
  }
  out.messages.push_back(std::move(msg));
}

}  // namespace

void JsonTexts::Clear() {
  fields.clear();
  top_level_keys.clear();
  finishes.clear();
  id.clear();
  model.clear();
  created.clear();
  completion = false;
}

bool FindRequestTexts(std::string_view body, JsonTexts& out) {
  return Parse(body, out, [&out](od::object& root, const char* base) {
    for (auto field : root) {
      const std::string_view key = field.unescaped_key();
      out.top_level_keys.emplace_back(key);
      if (key == "messages") {
        od::value messages = field.value();
        if (messages.type() != od::json_type::array) continue;
        for (od::value m : messages.get_array()) {
          if (m.type() != od::json_type::object) continue;
          for (auto mf : m.get_object()) {
            if (mf.unescaped_key() == std::string_view("content")) {
              AddTextOrParts(mf.value(), base, out);
            }
          }
        }
      } else if (key == "prompt" || key == "input") {
        AddTextOrParts(field.value(), base, out);
      }
    }
  });
}

void RequestStructure::Clear() {
  has_messages = false;
  messages_offset = messages_length = 0;
  messages.clear();
  has_prompt = false;
  prompt_offset = prompt_length = 0;
  prompt_text = true;
  prompt_strings.clear();
}

bool FindRequestStructure(std::string_view body, RequestStructure& out) {
  return Parse(body, out, [&out, body](od::object& root, const char* base) {
    for (auto field : root) {
      const std::string_view key = field.unescaped_key();
      if (key == "messages") {
        od::value messages = field.value();
        if (messages.type() != od::json_type::array) continue;
        out.has_messages = true;
        Span(messages, base, body, out.messages_offset, out.messages_length);
        for (od::value m : messages.get_array()) AddMessageStructure(m, base, body, out);
      } else if (key == "prompt") {
        od::value prompt = field.value();
        out.has_prompt = true;
        Span(prompt, base, body, out.prompt_offset, out.prompt_length);
        JsonTexts texts;
        const od::json_type t = prompt.type();
        if (t == od::json_type::string) {
          AddString(prompt, base, 0, -1, texts);
          out.prompt_text = !texts.fields.empty();
        } else if (t == od::json_type::array) {
          for (od::value item : prompt.get_array()) {
            if (item.type() != od::json_type::string) {
              out.prompt_text = false;
              continue;
            }
            AddString(item, base, 0, -1, texts);
          }
        } else {
          out.prompt_text = false;
        }
        out.prompt_strings = std::move(texts.fields);
      }
    }
  });
}

bool FindResponseTexts(std::string_view json, JsonTexts& out) {
  return Parse(json, out, [&out](od::object& root, const char* base) {
    for (auto field : root) {
      const std::string_view key = field.unescaped_key();
      if (key == "choices") {
        od::value choices = field.value();
        if (choices.type() != od::json_type::array) continue;
        for (od::value c : choices.get_array()) AddChoice(c, base, out);
      } else if (key == "id") {
        RawToken(field.value(), out.id);
      } else if (key == "model") {
        RawToken(field.value(), out.model);
      } else if (key == "created") {
        RawToken(field.value(), out.created);
      }
    }
  });
}

void AppendJsonText(std::string& out, std::string_view text) {
  AppendJsonString(out, text);
}

void ApplyJsonEdits(std::string_view json, std::vector<JsonEdit>& edits, std::string& out) {
  std::sort(edits.begin(), edits.end(),
            [](const JsonEdit& a, const JsonEdit& b) { return a.offset < b.offset; });
  out.clear();
  out.reserve(json.size() + 64);
  size_t at = 0;
  for (const JsonEdit& e : edits) {
    out.append(json.substr(at, e.offset - at));
    out.append(e.replacement);
    at = e.offset + e.length;
  }
  out.append(json.substr(at));
}

}  // namespace tokenway
