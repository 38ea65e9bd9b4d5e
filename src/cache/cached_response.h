// CachedResponse: one answer as the response cache keeps it — the text, why it ended, the model
// that wrote it, its token counts and how long it took to generate — independent of how it was
// delivered, so that an answer stored from a stream serves a whole-body request and the other
// way round.
//
//   ResponseAssembly    collects the answer while a miss is relayed: from the whole JSON body,
//                       or chunk by chunk from a stream (per request, in the request context)
//   ResponseReader      parses bodies and chunks into an assembly (per worker: owns a parser)
//   RenderCached*       writes a hit in the request's own mode: a chat.completion (or
//                       text_completion) JSON body, or a well-formed SSE stream with a role
//                       chunk, content chunks, a finish chunk, the usage chunk when the client
//                       asked for usage (prompt_tokens_details.cached_tokens = prompt tokens),
//                       and [DONE]
//   Encode/Decode       the entry's bytes in Redis
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/request_inspector.h"

namespace tokenway {

struct CachedResponse {
  Operation operation = Operation::kChatCompletions;
  std::string model;  // as the model server named it
  std::string content;
  std::string finish_reason = "stop";
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t generation_ns = 0;  // from the request's arrival to the end of the answer
  // What the entry costs the in-process store's byte bound.
  size_t bytes() const { return sizeof(CachedResponse) + model.size() + content.size() + 64; }
};

// The answer of one relayed miss, collected on the way to the client.
struct ResponseAssembly {
  std::string model;
  std::string content;
  std::string finish_reason;
  bool unusable = false;  // more than one choice, tool calls, refusal, or a chunk not understood
  bool done = false;      // a whole body was read, or a stream's [DONE] arrived
  void Reset() {
    model.clear();
    content.clear();
    finish_reason.clear();
    unusable = false;
    done = false;
  }
  // A complete answer that may be stored: one choice that ended with finish_reason "stop"
  // (not length, content_filter or tool_calls).
  bool storable() const { return done && !unusable && finish_reason == "stop"; }
};

class ResponseReader {
 public:
  // A whole chat.completion / text_completion body.
  void ReadBody(std::string_view json, ResponseAssembly& a);
  // The data of one stream event ("[DONE]" ends the stream).
  void ReadStreamEvent(std::string_view data, ResponseAssembly& a);

 private:
  bool Parse(std::string_view json, simdjson::dom::element& root);
  void ReadChoice(simdjson::dom::element choice, bool stream, ResponseAssembly& a);
  simdjson::dom::parser parser_;
  std::string padded_;
};

// `id` and `created` are the response's id and Unix time.
void RenderCachedJson(const CachedResponse& r, std::string_view id, int64_t created,
                      std::string& out);
void RenderCachedStream(const CachedResponse& r, std::string_view id, int64_t created,
                        bool include_usage, std::string& out);

// The entry as stored in Redis (JSON), and back; false when `text` is not such an entry.
std::string EncodeCachedResponse(const CachedResponse& r);
bool DecodeCachedResponse(std::string_view text, CachedResponse& r);

}  // namespace tokenway
