// JsonText: finds the text a payload processor scans inside OpenAI-shaped JSON — a request's
// prompt (messages[].content as a string or as text parts, prompt, input), a response's or a
// stream chunk's generated text (choices[].message.content / delta.content, tool-call arguments,
// completions' choices[].text) — as spans of the raw JSON with their unescaped text, so a
// processor can rewrite exactly those string tokens and leave every other byte as it came; and a
// request's message structure (each message's span and role, each content part's span and kind:
// text or image, linked or data: URL), for the processors that insert, drop or rebuild messages
// and parts. An image part's fields are never returned as text to scan.
//
// Parses with simdjson on-demand from a per-thread padded copy; used on worker threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

// One JSON string token holding text: [offset, offset + length) of the document, quotes
// included, and its unescaped value.
struct JsonTextField {
  size_t offset = 0;
  size_t length = 0;
  std::string text;
  int choice = 0;  // response: choices[].index (request: 0)
  int tool = -1;   // response: tool_calls[].index for arguments; -1 for content
};

struct JsonTexts {
  std::vector<JsonTextField> fields;
  std::vector<std::string> top_level_keys;  // request only
  // Response chunk: choices with a non-null finish_reason, and where each one's token is.
  struct Finish {
    int choice = 0;
    size_t offset = 0;  // of the finish_reason value token
    size_t length = 0;
  };
  std::vector<Finish> finishes;
  std::string id, model;  // raw JSON tokens (for events a processor adds); empty when absent
  std::string created;
  bool completion = false;  // choices[].text (completions) rather than chat messages
  void Clear();
};

// The message structure of a request, for processors that edit it rather than its text (the
// system prompt, image parts): spans of the raw JSON, [offset, offset + length), values whole.
struct ContentPart {
  size_t offset = 0;
  size_t length = 0;
  bool image = false;     // type image_url or input_image (or an image_url field)
  bool data_url = false;  // an image whose URL is a data: URL (inline bytes)
};
struct RequestMessage {
  size_t offset = 0;
  size_t length = 0;
  std::string role;           // unescaped; empty when absent
  size_t content_offset = 0;  // the content value (length 0 when absent)
  size_t content_length = 0;
  bool content_is_parts = false;  // content is an array of parts
  std::vector<ContentPart> parts;
};
struct RequestStructure {
  bool has_messages = false;  // "messages" is an array
  size_t messages_offset = 0;
  size_t messages_length = 0;
  std::vector<RequestMessage> messages;
  // "prompt" (completions): its value's span; strings: the string tokens in it (the value itself,
  // or each element of an array of strings); prompt_text: false when some element is not a string
  // (token ids).
  bool has_prompt = false;
  size_t prompt_offset = 0;
  size_t prompt_length = 0;
  bool prompt_text = true;
  std::vector<JsonTextField> prompt_strings;
  void Clear();
};
// Fills `out` from a request body. False when it is not a JSON object.
bool FindRequestStructure(std::string_view body, RequestStructure& out);

// A request body. False when it is not a JSON object.
bool FindRequestTexts(std::string_view body, JsonTexts& out);
// A whole response body or one stream chunk. False when it is not a JSON object.
bool FindResponseTexts(std::string_view json, JsonTexts& out);

// Appends `text` as a JSON string literal (quotes included).
void AppendJsonText(std::string& out, std::string_view text);

// Rebuilds `json` with each (offset, length) span replaced by its text, spans sorted by offset
// and non-overlapping.
struct JsonEdit {
  size_t offset = 0;
  size_t length = 0;
  std::string replacement;
};
void ApplyJsonEdits(std::string_view json, std::vector<JsonEdit>& edits, std::string& out);

}  // namespace tokenway
