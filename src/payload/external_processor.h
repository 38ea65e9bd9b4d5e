// ExternalRequestProcessor: a request processor that asks a service of the user's — an HTTP
// webhook (payload/webhook_processor.h) or an Envoy ext_proc server
// (payload/ext_proc_processor.h) — whether a request may pass, and the policy every such
// processor shares: the `max_concurrency` gate, the call's timeout, the failure mode (open: the
// request continues, flagged and counted; closed: 503 payload_processor_unavailable), the
// verdict and failure metrics (tokenway_payload_external_*), and the flag a fail-open request
// carries.
//
// Built by BuildPayloadChain on the control thread and owned by the Runtime snapshot. The payload
// phase awaits Call() on the worker thread that runs the request, handing it the worker's loop
// and JSON client (ExternalCallSite); the exchange itself (a subclass's Exchange()) does its I/O
// on that loop, so nothing blocks and nothing is locked. Concurrent calls from every worker share
// only the atomics of ExternalCallCounters.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "payload/payload_metrics.h"
#include "payload/processor_match.h"
#include "tokenway/payload.h"

namespace tokenway {

class JsonClient;

// What a call needs from the worker that runs the request.
struct ExternalCallSite {
  boost::asio::io_context* io = nullptr;
  JsonClient* http = nullptr;   // the worker's keep-alive JSON client (webhooks)
  std::string_view request_id;  // x-request-id of the request
  std::string_view authority;   // the client's Host (":authority" for ext_proc)
  std::string_view path;        // the request's path, e.g. /v1/chat/completions
};

enum class FailureMode { kOpen, kClosed };

// The settings every external processor has (processors[] in docs/configuration.md).
struct ExternalProcessorConfig {
  std::string url;  // webhook: http://host[:port]/path; ext_proc: host:port (gRPC, plaintext)
  std::chrono::milliseconds timeout{200};  // the whole call, retries included
  FailureMode failure_mode = FailureMode::kClosed;
  uint32_t max_concurrency = 256;  // calls in flight over all workers; beyond: failure mode
  uint32_t retries = 0;            // extra attempts when the service certainly got nothing
  uint32_t deny_status = 400;      // the status of a deny that names none
  size_t max_answer_bytes = 8 * 1024 * 1024;
  std::string headers;  // webhook: extra request header lines, each "Name: value\r\n"
};

// How one exchange with the service ended, before the failure mode applies.
struct ExternalAnswer {
  enum class Kind { kAllow, kDeny, kMutate, kFailed };
  Kind kind = Kind::kFailed;
  ExternalCallCounters::Failure failure = ExternalCallCounters::kBadAnswer;  // kFailed: why
  std::string message;  // kDeny: the reason; kFailed: what went wrong (for the log and 503)
  int status = 0;       // kDeny: the status (0: the processor's deny_status)
  std::string code;     // kDeny: the error code (empty: content_filter)
  std::string body;     // kMutate: the new request body; kDeny: a JSON error body to send as is
};

class ExternalRequestProcessor : public MatchedProcessor<RequestProcessor> {
 public:
  ExternalRequestProcessor(std::string name, ProcessorMatch match, ExternalProcessorConfig config);

  const ExternalRequestProcessor* external() const override { return this; }

  // A caller without an event loop cannot wait for the service: the failure mode applies and
  // the call counts as an error.
  void Process(const PayloadRequest& request, RequestVerdict& verdict) const override;

  // The payload phase's form (worker thread): asks the service and fills `verdict` (kPass,
  // kReject or kReplace), the failure mode deciding when the call fails. `verdict` must outlive
  // the call (the request context owns it); the rest is copied.
  boost::asio::awaitable<void> Call(PayloadRequest request, ExternalCallSite site,
                                    RequestVerdict& verdict) const;

  const ExternalProcessorConfig& config() const { return config_; }

 protected:
  // One exchange with the service, on `site.io`'s thread, bounded by `deadline`. Fills `answer`;
  // never throws.
  virtual boost::asio::awaitable<void> Exchange(const PayloadRequest& request,
                                                const ExternalCallSite& site,
                                                std::chrono::steady_clock::time_point deadline,
                                                ExternalAnswer& answer) const = 0;

 private:
  void Settle(const ExternalAnswer& answer, RequestVerdict& verdict) const;
  void ApplyFailure(ExternalCallCounters::Failure failure, std::string_view why,
                    RequestVerdict& verdict) const;

  const ExternalProcessorConfig config_;
  ExternalCallCounters* const counters_;
};

}  // namespace tokenway
