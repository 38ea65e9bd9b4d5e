// ClientSession: one client connection on one worker, from accept to close.
//
// Reads requests in place from its own buffer (keep-alive and pipelining), answers the requests
// the gateway serves itself (model list, errors) and runs the request path for the inference
// endpoints (proxy.cc): inspect, route, forward, settle, observe. Owned by the coroutine that
// runs it; registered with its worker for draining.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>

#include "common/io_buffer.h"
#include "common/request_inspector.h"
#include "common/sse.h"
#include "common/usage.h"
#include "governance/governance.h"
#include "http/deadline_sweep.h"
#include "http/request_parser.h"
#include "telemetry/trace_context.h"
#include "tokenway/picker.h"

namespace tokenway {

class Worker;
struct Runtime;
struct Pool;
struct PoolEndpoint;
struct ModelRoute;
struct UpstreamConnection;

// Cancels the upstream exchange when the client goes away while it waits. One wait on the
// client socket stays armed across requests (arming and cancelling one per request cost a
// scheduler round trip each); it acts only while a request is being forwarded. Shared with the
// wait's completion handler, hence held by shared_ptr.
struct ClientAbortWatch {
  boost::asio::ip::tcp::socket* client = nullptr;    // null once the session is gone
  boost::asio::ip::tcp::socket* upstream = nullptr;  // set while a request is forwarded
  boost::asio::steady_timer* queue_timer = nullptr;  // set while a request waits for admission
  bool armed = false;                                // a wait is pending on the client socket
  bool fired = false;
};

// Everything recorded about one request for settlement, metrics and the access log.
struct RequestRecord {
  int64_t start_ns = 0;
  int64_t first_byte_ns = 0;  // first response byte written to the client
  int status = 0;
  uint16_t model_slot = 0;
  uint16_t pool_slot = 0;      // 0 until routed
  uint16_t endpoint_slot = 0;  // 0 until forwarded
  std::string request_id;
  std::string_view tenant;  // empty: no tenant
  std::string_view pool;
  std::string_view endpoint;
  std::string_view picker;      // the pool's picker, for the access log's route
  uint32_t prefix_blocks = 0;   // prompt blocks looked up in the prefix index
  uint32_t prefix_matched = 0;  // of those, held by the chosen endpoint (estimate)
  std::string error_code;       // tokenway's own code when it produced or cut the response
  TokenUsage usage;
  uint32_t retries = 0;
  int32_t priority = 0;  // flow-control priority (0 when the pool has none)
  int64_t queue_ns = 0;  // time spent waiting for admission
  uint32_t stream_events = 0;
  bool stream = false;
  bool usage_injected = false;
  uint64_t prompt_hash = 0;
  size_t request_bytes = 0;
  size_t response_bytes = 0;
  // Tracing (gateway/tracing.cc): the trace context, and for a sampled request what its span
  // reports beyond the above.
  TraceContext trace;
  bool drop_tracestate = false;  // the client's tracestate is not forwarded
  std::string_view trace_state;  // the client's tracestate, when it is propagated
  std::string_view engine;       // the chosen endpoint's engine (gen_ai.provider.name)
  std::string response_model;    // sampled requests only
  PickScores scores;             // the chosen endpoint's scores, sampled requests only

  // Back to a fresh record, keeping the strings' capacity for the next request.
  void Reset() {
    std::string id = std::move(request_id);
    std::string code = std::move(error_code);
    std::string model = std::move(response_model);
    *this = RequestRecord{};
    request_id = std::move(id);
    request_id.clear();
    error_code = std::move(code);
    error_code.clear();
    response_model = std::move(model);
    response_model.clear();
  }
};

class ClientSession {
 public:
  ClientSession(Worker& worker, boost::asio::ip::tcp::socket socket);
  ~ClientSession();

  boost::asio::awaitable<void> Run();
  // Closes the connection if it is between requests (drain).
  void CloseIfIdle();

 private:
  enum class ReadOutcome { kRequest, kClosed, kResponded };
  enum class AttemptOutcome { kDone, kRetry, kFailed };

  boost::asio::awaitable<ReadOutcome> ReadRequest(RequestParser& parser, size_t& head_size,
                                                  size_t& body_size);
  // Answers a request the parser rejected (431, 413 or 400, counted) and closes afterwards.
  boost::asio::awaitable<ReadOutcome> RejectUnparsable(boost::beast::error_code ec,
                                                       std::string_view context);
  boost::asio::awaitable<void> Dispatch(RequestParser& parser, std::string_view body,
                                        size_t padding);
  boost::asio::awaitable<void> Proxy(RequestParser& parser, Operation op, std::string_view body,
                                     size_t padding);
  // Identity and governance (governance_phase.cc): authenticate, authorise the model, reserve
  // tokens. True to go on; false when it has answered the request (401, 403, 400, 429, 503).
  boost::asio::awaitable<bool> Govern(const RequestParser& parser, const ModelRoute& route);
  // Flow control (admission.cc): true to dispatch now; false when it has answered the request.
  boost::asio::awaitable<bool> Admit(const RequestParser& parser, const Pool& pool,
                                     const ModelRoute& route);
  boost::asio::awaitable<AttemptOutcome> ForwardOnce(const RequestParser& parser,
                                                     const PoolEndpoint& endpoint,
                                                     std::string_view body, bool last_attempt);
  boost::asio::awaitable<AttemptOutcome> RelayStream(UpstreamConnection& conn,
                                                     const PoolEndpoint& endpoint,
                                                     class ResponseParser& response,
                                                     bool& reusable);

  // Local responses (errors, model list). They set keep_alive_ = false when the connection must
  // close afterwards.
  boost::asio::awaitable<bool> WriteJson(int status, std::string_view body,
                                         std::string_view extra_headers = {});
  boost::asio::awaitable<bool> WriteError(int status, std::string_view message,
                                          std::string_view code, std::string_view param = {});
  boost::asio::awaitable<bool> WriteAll(std::string_view a, std::string_view b = {},
                                        std::string_view c = {}, std::string_view d = {});

  // Watches the client while a request is forwarded to `upstream` or waits on `queue_timer`;
  // if the client goes away, cancels them and sets abort_->fired.
  void StartAbortWatch(boost::asio::ip::tcp::socket* upstream,
                       boost::asio::steady_timer* queue_timer = nullptr);
  void StopAbortWatch();
  void Observe(RequestRecord& rec);
  // Appends the request's access-log line (request_log.cc), if the configuration wants it.
  void WriteAccessLog(const RequestRecord& rec, double seconds);
  void ChooseRequestId(const RequestParser& parser);
  // Tracing hooks (tracing.cc): the request's trace context from its traceparent; the
  // traceparent sent upstream; the span handed to the exporter at the end of a sampled request.
  void BeginTrace(const RequestParser& parser);
  void AppendTraceParent(std::string& head, const RequestParser& parser) const;
  void ExportSpan(const RequestRecord& rec, int64_t end_ns);

  Worker& worker_;
  boost::asio::ip::tcp::socket socket_;
  IoBuffer buffer_;
  Deadline deadline_;
  bool keep_alive_ = true;
  bool idle_ = true;  // between requests
  bool http10_ = false;
  std::shared_ptr<ClientAbortWatch> abort_;
  std::shared_ptr<const Runtime> runtime_;  // snapshot of the current request
  // A request released from a flow-control queue owes its controller DispatchDone() once it has
  // taken its endpoint's counters (ForwardOnce) or given up (Proxy's exit).
  const Pool* flow_release_ = nullptr;
  void FinishFlowRelease();
  // Load the current attempt puts on its endpoint; RelayStream ends its prefill part.
  class EndpointLoad* load_ = nullptr;

  // Per-request scratch, reused across requests so it keeps its capacity.
  RequestGovernance governance_;  // tenant and reservation; settled in Proxy's exit
  InspectedRequest inspected_;
  InspectError inspect_error_;
  RequestRecord record_;
  std::string out_;            // response heads and local bodies
  std::string upstream_head_;  // request head for the upstream
  std::string rewritten_body_;
  std::string response_body_;  // non-streaming upstream body
  std::string relay_;          // streaming events kept after filtering
  std::string chunk_head_;
  std::string scratch_;
  SseEventSplitter events_;
  std::vector<PickCandidate> candidates_;
  std::vector<HeaderSlice> header_scratch_;
};

}  // namespace tokenway
