// EnvoyExchange: one request as Envoy's ext_proc filter and ORIGINAL_DST cluster carry it
// through an endpoint picker (the Gateway API Inference Extension's Endpoint Picker Protocol).
//
// The sequence is GIE's end-to-end Envoy configuration (request/response headers SEND, bodies
// FULL_DUPLEX_STREAMED or BUFFERED, trailers SEND): request_headers (lower-cased keys, values as
// raw_value, protocol_config in the first message, the subset hint in metadata_context), the body
// in chunks with end_of_stream on the last; then the pick — the x-gateway-destination-endpoint
// header mutation and dynamic_metadata envoy.lb, which must agree — and the (possibly rewritten)
// body the picker streams back; then the request goes over HTTP/1.1 to the first endpoint of the
// pick, and the upstream's response goes back through the picker: response_headers, response
// body chunks as they arrive (metadata_context envoy.lb x-gateway-destination-endpoint-served),
// end_of_stream on the last. What the picker answers for the response body is what the caller
// receives (`relay`). An ImmediateResponse ends the exchange with its status and body.
//
// Used by the EPP load generator and the scripted test client, on one Asio loop thread each;
// `UpstreamPool` keeps keep-alive connections per endpoint for one loop.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/ext_proc_call.h"

namespace tokenway::bench {

enum class BodyMode { kFullDuplexStreamed, kBuffered };

struct EnvoyRequest {
  std::string method = "POST";
  std::string path = "/v1/chat/completions";
  std::string authority = "gateway.example";
  std::string scheme = "http";
  // Further request headers (lower-cased by the exchange), e.g. content-type, authorization,
  // x-request-id. content-length is added from the body.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct EnvoyOptions {
  BodyMode request_body_mode = BodyMode::kFullDuplexStreamed;
  BodyMode response_body_mode = BodyMode::kFullDuplexStreamed;
  size_t chunk_size = 16 * 1024;  // request body bytes per request_body message
  // The Gateway's subset hint (envoy.lb.subset_hint / x-gateway-destination-endpoint-subset);
  // nullopt: no hint at all, an empty list: an empty hint.
  std::optional<std::vector<std::string>> subset_hint;
  // No upstream: the response is fabricated here (an SSE stream of `fabricated_events` token
  // chunks plus a usage chunk and [DONE], one event per response_body message; or one JSON
  // completion), to measure the picker's response-side cost without an engine.
  bool no_upstream = false;
  bool fabricated_stream = true;  // false: one JSON completion (application/json) instead
  int fabricated_events = 100;
  std::chrono::milliseconds timeout{300000};
  // Called with the exchange's stream once it is open (e.g. to cancel it from outside).
  std::function<void(const std::shared_ptr<ExtProcCall>&)> on_stream;
};

struct EnvoyResult {
  // kCompleted: picked, forwarded, response relayed to the end. kImmediate: the picker answered
  // with an ImmediateResponse. kFailed: anything else (`error` says what).
  enum class Outcome { kCompleted, kImmediate, kFailed };
  Outcome outcome = Outcome::kFailed;
  std::string error;  // kFailed: the first thing that went wrong

  std::string destination_header;    // x-gateway-destination-endpoint as mutated
  std::string destination_metadata;  // dynamic_metadata envoy.lb x-gateway-destination-endpoint
  std::vector<std::string> destinations;  // the header split on ','
  std::string served;                     // the endpoint the request went to
  std::vector<std::pair<std::string, std::string>> request_header_mutations;  // set_headers
  std::string forwarded_body;  // the request body as the picker let it through

  int immediate_status = 0;  // kImmediate
  std::string immediate_body;
  std::vector<std::pair<std::string, std::string>> immediate_headers;

  int upstream_status = 0;
  std::string upstream_content_type;
  std::string relayed_body;          // the response body after the picker (what the client gets)
  int64_t response_chunks_sent = 0;  // response_body messages sent to the picker
  int64_t response_chunks_received = 0;  // response_body answers received

  int grpc_code = -1;  // the stream's final status (-1: not finished)
  std::string grpc_message;

  // Nanoseconds on the caller's clock (`now` of Run): request_headers written, pick received.
  int64_t headers_sent_ns = -1, pick_ns = -1;
  int64_t first_relay_ns = -1, end_ns = -1;
};

// Keep-alive HTTP/1.1 connections to upstream endpoints ("ip:port"), for one loop.
class UpstreamPool {
 public:
  explicit UpstreamPool(boost::asio::io_context& io) : io_(io) {}
  boost::asio::io_context& io() { return io_; }
  std::unique_ptr<boost::asio::ip::tcp::socket> Acquire(const std::string& endpoint);
  void Release(const std::string& endpoint, std::unique_ptr<boost::asio::ip::tcp::socket> s);
  void CloseAll();

 private:
  boost::asio::io_context& io_;
  std::map<std::string, std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>>> idle_;
};

// Runs one exchange on `pool`'s loop. `relay(bytes, now_ns)` receives each body piece the
// picker answers for the response as it arrives (may be empty: the body is then only collected
// into the result). `now` is the caller's clock in nanoseconds.
boost::asio::awaitable<EnvoyResult> RunEnvoyExchange(
    grpc::GenericStub& stub, UpstreamPool& pool, EnvoyRequest request, EnvoyOptions options,
    std::function<void(std::string_view, int64_t)> relay, std::function<int64_t()> now);

// Header names the exchange compares (the Endpoint Picker Protocol's keys).
inline constexpr std::string_view kDestinationHeader = "x-gateway-destination-endpoint";
inline constexpr std::string_view kServedKey = "x-gateway-destination-endpoint-served";
inline constexpr std::string_view kSubsetNamespace = "envoy.lb.subset_hint";
inline constexpr std::string_view kSubsetKey = "x-gateway-destination-endpoint-subset";
inline constexpr std::string_view kLbNamespace = "envoy.lb";

// The value of a HeaderValue (raw_value when set, else value).
std::string HeaderValueText(const envoy::config::core::v3::HeaderValue& h);

}  // namespace tokenway::bench
