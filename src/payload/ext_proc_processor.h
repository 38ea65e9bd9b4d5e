// ExtProcProcessor: the `ext_proc` request processor — tokenway as the client of an Envoy
// external processor (envoy.service.ext_proc.v3.ExternalProcessor/Process), so a guardrail
// service written for Envoy plugs in unchanged.
//
// One stream per request, in Envoy's order with the request body in BUFFERED mode: a
// request_headers message (:method POST, :path, :authority, content-type, content-length,
// x-request-id, and x-tokenway-tenant when the request has a tenant), its answer, then
// request_body with the whole body and end_of_stream, and its answer. The answers it honours:
//   - CONTINUE (headers or body): the request passes; a header mutation alone changes nothing
//     (tokenway forwards the client's own headers);
//   - a body_mutation (body, or clear_body which empties it): the body is replaced (and inspected
//     again by the payload phase); on the headers answer with CONTINUE_AND_REPLACE it ends the
//     exchange without sending the body;
//   - immediate_response: the request is refused with its status (4xx/5xx; other values become
//     the processor's deny_status); a JSON body is sent as is, anything else becomes the message
//     of an OpenAI-shaped error with code content_filter.
// Anything else (a message out of order, bytes that are not a ProcessingResponse, a stream that
// ends with a gRPC error or before the answer) is a failed call and the failure mode applies.
//
// The stream runs on gRPC's callback API (http/ext_proc_call.h); completions are posted to the
// worker's loop that awaits them. The channel (plaintext HTTP/2, kept connected by gRPC) is
// created at build time and shared by every worker; gRPC's deadline is the processor's timeout.
// Retries apply only when the channel could not connect (UNAVAILABLE before any answer).
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>

#include "payload/external_processor.h"

namespace tokenway {

class ExtProcProcessor final : public ExternalRequestProcessor {
 public:
  ExtProcProcessor(std::string name, ProcessorMatch match, ExternalProcessorConfig config);

 protected:
  boost::asio::awaitable<void> Exchange(const PayloadRequest& request, const ExternalCallSite& site,
                                        std::chrono::steady_clock::time_point deadline,
                                        ExternalAnswer& answer) const override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

}  // namespace tokenway
