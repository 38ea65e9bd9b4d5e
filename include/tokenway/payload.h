// Payload processors: the extension point of phase 3 (request processors) and phase 7 (response
// processors) of the request path.
//
// A request processor sees the inspected request once, after governance and before routing, and
// may let it pass, reject it with an OpenAI-shaped error, or replace its body. A response
// processor sees every SSE event's data of a stream (and a whole response body once) and may pass
// it, replace it or drop it; a stream's processor may keep per-stream state (a sliding window
// over the text deltas) that the relay owns in the request context. Processors are built from
// their typed configuration at load time, owned by the Runtime snapshot (PayloadChain), and
// called on worker threads concurrently: they keep no per-request state of their own and never
// block. A request processor that asks a service (payload/external_processor.h: webhook,
// ext_proc) says so through external(); the payload phase then awaits its asynchronous form on
// the worker's event loop instead of calling Process(). Built-in processors stay synchronous.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

struct InspectedRequest;
class ExternalRequestProcessor;

// What a request processor sees of a request.
struct PayloadRequest {
  std::string_view body;              // the client's body, as received
  const InspectedRequest* inspected;  // model, stream, prompt text, ...
  std::string_view tenant;            // empty without governance
  int64_t prompt_tokens = 0;          // the token estimator's count of the prompt
};

// A request processor's answer. kReplace: `body` is the new request body (sent instead of the
// client's, and inspected again so routing sees what goes upstream).
struct RequestVerdict {
  enum class Kind { kPass, kReject, kReplace };
  Kind kind = Kind::kPass;
  int status = 400;     // kReject: the HTTP status
  std::string code;     // kReject: tokenway's error code
  std::string message;  // kReject: the error message
  std::string body;     // kReplace: the new body
  // kReject: when not empty, the JSON error body to send as is instead of the OpenAI-shaped one
  // built from `message` and `code` (an external processor's own error body).
  std::string reply_body;
  // Any kind: names of what a processor flagged (comma-separated), for the access log's
  // `payload` field and the response header x-tokenway-flagged. Accumulates along the chain.
  std::string flagged;
};

class RequestProcessor {
 public:
  virtual ~RequestProcessor() = default;
  virtual std::string_view name() const = 0;
  // Whether the processor runs for a request of `model` from `tenant` (its `match`).
  virtual bool Applies(std::string_view model, std::string_view tenant) const { return true; }
  // Worker threads, concurrently. `verdict` starts as kPass.
  virtual void Process(const PayloadRequest& request, RequestVerdict& verdict) const = 0;
  // Non-null for a processor that waits for a service: the payload phase calls its awaitable
  // form (payload/external_processor.h) instead of Process().
  virtual const ExternalRequestProcessor* external() const { return nullptr; }
};

// A response processor's answer for one event or body. kEnd (streams only): the stream ends
// here; the output holds its last events (e.g. a finish_reason "content_filter" chunk and an
// error event) and nothing more from upstream reaches the client.
enum class ResponseVerdict { kPass, kReplace, kDrop, kEnd };

// What a response processor remembers between the events of one stream. Created by Begin(),
// owned by the request context, used by one worker thread.
class ResponseStreamState {
 public:
  virtual ~ResponseStreamState() = default;
};

class ResponseProcessor {
 public:
  virtual ~ResponseProcessor() = default;
  virtual std::string_view name() const = 0;
  // Whether the processor runs for a request of `model` from `tenant` (its `match`).
  virtual bool Applies(std::string_view model, std::string_view tenant) const { return true; }
  // The whole-body form, without stream state: `data` is a whole JSON body, or one SSE event's
  // data judged on its own (the ext_proc front door). Worker threads, concurrently; on kReplace,
  // `replacement` holds the new data.
  virtual ResponseVerdict Process(std::string_view data, std::string& replacement) const = 0;

  // The stream form. Begin() is called once per stream before its first event (relay phase);
  // null means the processor keeps no stream state and the whole-body form runs per event.
  virtual std::unique_ptr<ResponseStreamState> Begin() const { return nullptr; }
  // One event's data, with the state Begin() returned. On kReplace, `events` holds the event
  // payloads to send instead (zero or more, each one event's data); on kEnd, the stream's last
  // events. `events` arrives empty.
  virtual ResponseVerdict Process(ResponseStreamState& state, std::string_view data,
                                  std::vector<std::string>& events) const {
    return ResponseVerdict::kPass;
  }
  // The upstream stream ended ("[DONE]" or end of body): events still held back, to send before
  // the end (kReplace), or the stream's last events (kEnd). `events` arrives empty.
  virtual ResponseVerdict Finish(ResponseStreamState& state,
                                 std::vector<std::string>& events) const {
    return ResponseVerdict::kPass;
  }
};

// The processors of a snapshot, in the order they run.
struct PayloadChain {
  std::vector<std::unique_ptr<RequestProcessor>> request;
  std::vector<std::unique_ptr<ResponseProcessor>> response;
  bool empty() const { return request.empty() && response.empty(); }
};

}  // namespace tokenway
