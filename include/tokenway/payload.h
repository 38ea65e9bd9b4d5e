// Payload processors: the extension point of phase 3 (request processors) and phase 6 (response
// processors) of the request path.
//
// A request processor sees the inspected request once, after governance and before routing, and
// may let it pass, reject it with an OpenAI-shaped error, or replace its body. A response
// processor sees every SSE event's data of a stream (and a whole response body once) and may pass
// it, replace it or drop it. Processors are built from their typed configuration at load time,
// owned by the Runtime snapshot (PayloadChain), and called on worker threads concurrently: they
// keep no per-request state of their own and never block.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

struct InspectedRequest;

// What a request processor sees of a request.
struct PayloadRequest {
  std::string_view body;              // the client's body, as received
  const InspectedRequest* inspected;  // model, stream, prompt text, ...
  std::string_view tenant;            // empty without governance
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
};

class RequestProcessor {
 public:
  virtual ~RequestProcessor() = default;
  virtual std::string_view name() const = 0;
  // Worker threads, concurrently. `verdict` starts as kPass.
  virtual void Process(const PayloadRequest& request, RequestVerdict& verdict) const = 0;
};

// A response processor's answer for one event or body.
enum class ResponseVerdict { kPass, kReplace, kDrop };

class ResponseProcessor {
 public:
  virtual ~ResponseProcessor() = default;
  virtual std::string_view name() const = 0;
  // Worker threads, concurrently. `data` is one SSE event's data (a JSON chunk) or a whole JSON
  // body; on kReplace, `replacement` holds the new data.
  virtual ResponseVerdict Process(std::string_view data, std::string& replacement) const = 0;
};

// The processors of a snapshot, in the order they run.
struct PayloadChain {
  std::vector<std::unique_ptr<RequestProcessor>> request;
  std::vector<std::unique_ptr<ResponseProcessor>> response;
  bool empty() const { return request.empty() && response.empty(); }
};

}  // namespace tokenway
