// Writing JSON text directly into a string, on paths where building a DOM would cost more than
// the output itself: error bodies, access-log lines, spans, and the documents the control thread
// renders (/admin/config, /admin/endpoints, GET /v1/models).
//
// The Append* functions write one value; JsonWriter composes objects and arrays from them and
// places the commas and colons, so no caller splices JSON punctuation by hand.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace tokenway {

// Appends `s` as a JSON string literal (with quotes), escaping as RFC 8259 requires. Bytes that
// are not valid UTF-8 are replaced with U+FFFD so the output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

inline void AppendJsonInt(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(end - buf));
}

// Appends a number with up to 3 decimals, without locale effects; null when not finite.
void AppendJsonDouble(std::string& out, double v);

// Appends the shortest number text that reads back as exactly `v` (1, 0.45, 2500, 1e+20);
// null when not finite. For configured values, which must render as they were given.
void AppendJsonNumber(std::string& out, double v);
// The same for a float, shortest as a float (0.25f: 0.25, not 0.25000000372529).
void AppendJsonNumber(std::string& out, float v);

// Appends JSON values to `out`, a document or a fragment of one (a value after a key someone else
// wrote). Every value call writes the comma it needs; Key() is followed by exactly one value.
// Objects and arrays nest up to 63 levels. Not thread-safe: one writer per string, any thread.
//
//   JsonWriter w(out);
//   w.BeginObject().Key("name").String(name).Key("weights").BeginArray();
//   for (double x : weights) w.Number(x);
//   w.EndArray().EndObject();
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  // An object member's name; the next call writes its value.
  JsonWriter& Key(std::string_view key);

  JsonWriter& String(std::string_view v) {
    Separate();
    AppendJsonString(out_, v);
    return *this;
  }
  JsonWriter& Int(int64_t v) {
    Separate();
    AppendJsonInt(out_, v);
    return *this;
  }
  JsonWriter& Uint(uint64_t v);
  JsonWriter& Bool(bool v) { return Raw(v ? "true" : "false"); }
  JsonWriter& Null() { return Raw("null"); }
  // AppendJsonDouble: up to 3 decimals (measurements: rates, ratios, utilisations).
  JsonWriter& Double(double v) {
    Separate();
    AppendJsonDouble(out_, v);
    return *this;
  }
  // AppendJsonNumber: exact (configured values).
  JsonWriter& Number(double v) {
    Separate();
    AppendJsonNumber(out_, v);
    return *this;
  }
  JsonWriter& Number(float v) {
    Separate();
    AppendJsonNumber(out_, v);
    return *this;
  }
  // A value that is already JSON text (a pre-rendered document, a literal).
  JsonWriter& Raw(std::string_view json) {
    Separate();
    out_.append(json);
    return *this;
  }

 private:
  JsonWriter& Open(char bracket);
  JsonWriter& Close(char bracket);
  // Writes the comma before a value or key, unless it follows a key or opens its container.
  void Separate();

  std::string& out_;
  uint64_t has_items_ = 0;  // bit d: the container at depth d has an item already
  uint32_t depth_ = 0;
  bool after_key_ = false;
};

}  // namespace tokenway
