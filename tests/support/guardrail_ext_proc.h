// GuardrailExtProc: a small Envoy ext_proc service (ExternalProcessor/Process over gRPC) that
// plays a user's guardrail for the `ext_proc` payload processor's tests: it reads the request
// headers and the buffered request body and answers as its Behavior says — allow, refuse with an
// immediate_response, replace the body, or misbehave (an answer out of order, bytes that are not a
// ProcessingResponse, an error status, an early end, a hang until the client gives up).
//
// Messages travel as raw bytes (a hand-registered sync method on grpc::ByteBuffer), so the
// service can send garbage. gRPC's sync server runs each stream on one of its threads; the
// counters are atomics and the behaviour is fixed before Start().
//
// Also the engine of the `ext_proc_guardrail` binary (tests/support/ext_proc_guardrail.cc) that
// the integration tests run behind the real gateway.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace tokenway::testing {

struct GuardrailDecision {
  enum class Kind {
    kAllow,            // CONTINUE to the headers and to the body
    kDeny,             // immediate_response after the body
    kDenyOnHeaders,    // immediate_response right after the headers
    kMutate,           // body_mutation in the body answer
    kMutateOnHeaders,  // CONTINUE_AND_REPLACE with a body_mutation in the headers answer
    kWrongOrder,       // a response_headers answer where a request_headers one is due
    kGarbage,          // bytes that do not parse as a ProcessingResponse
    kError,            // ends the stream with gRPC status `grpc_code`
    kEndEarly,         // ends the stream (OK) without answering
    kHang,             // answers nothing until the client cancels
  };
  Kind kind = Kind::kAllow;
  int status = 403;    // kDeny*: the immediate_response's HTTP status
  std::string body;    // kDeny*: its body; kMutate*: the new request body
  int grpc_code = 12;  // kError: UNIMPLEMENTED
};

class GuardrailExtProc {
 public:
  // `decide` sees the request body (after the headers when the decision is on the headers: then
  // the body is empty) and says what to do. Called on gRPC's threads.
  using Decide = std::function<GuardrailDecision(const std::string& body)>;
  explicit GuardrailExtProc(Decide decide);
  ~GuardrailExtProc();

  // Listens on 127.0.0.1:`port` (0: any free one) and returns the port, or 0 on failure.
  int Start(int port = 0);
  void Stop();
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

  std::atomic<int> streams{0};
  std::atomic<int> bodies{0};        // request_body messages received
  std::atomic<int> headers_seen{0};  // request_headers messages received
  // The headers of the last request_headers message, "key: value\n" each (for tests).
  std::string last_headers() const;

  class Service;

 private:
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace tokenway::testing
