// JsonClient: a worker's HTTP/1.1 client for POSTing JSON to a side service (a payload
// processor's webhook, an embeddings backend) and reading its answer whole.
//
// One JsonClient per worker, used only on that worker's thread (no locks): its keep-alive
// connections are kept per target (host:port) and reused most recently used first; the worker's
// tick closes the ones idle for too long. Every call has one deadline covering resolve, connect,
// write and the whole answer; the answer's body is bounded. A call fails with a kind that says
// whether the request may have reached the service: only kConnect failures (nothing was
// written) are retried, as many times as the caller allows. A reused connection that the server
// had already closed (no answer byte) is replaced once without counting as a retry, like the
// forward phase does.
//
// Plain http:// only: TLS to a side service is left to a sidecar or a loopback proxy.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenway/status.h"

namespace tokenway {

// Where a call goes: parsed once (at configuration load) from an http:// URL.
struct HttpTarget {
  std::string host;        // name or IP literal (IPv6 without brackets)
  uint16_t port = 80;      //
  std::string path = "/";  // path and query, sent as is
  std::string authority;   // the Host header: host[:port] as written in the URL
  std::string key;         // host:port, the connection pool's key
};

// "http://host[:port][/path]" → target. https:// and other schemes are refused with a message.
StatusOr<HttpTarget> ParseHttpUrl(std::string_view url);

struct JsonPostOptions {
  std::chrono::milliseconds timeout{1000};  // the whole call, retries included
  size_t max_response_bytes = 1024 * 1024;  // the answer's body
  uint32_t retries = 0;                     // extra attempts after a kConnect failure
  // Extra request header lines, each "Name: value\r\n" (e.g. an authorization header).
  std::string_view extra_headers;
};

enum class JsonCallError {
  kNone,      // an HTTP answer arrived (any status)
  kConnect,   // resolve or connect failed, or the connection broke before the request was sent
  kTimeout,   // the deadline passed (the service may have received the request)
  kClosed,    // the connection closed or broke after the request was sent, before a whole answer
  kProtocol,  // the answer is not valid HTTP/1.1
  kTooLarge,  // the answer's body exceeds max_response_bytes
};
const char* JsonCallErrorName(JsonCallError e);  // connect, timeout, closed, protocol, too_large

struct JsonResponse {
  JsonCallError error = JsonCallError::kNone;
  int status = 0;       // the HTTP status when error == kNone
  std::string body;     // the answer's body (de-chunked)
  std::string message;  // why, when error != kNone
  uint32_t attempts = 0;
  bool ok() const { return error == JsonCallError::kNone; }
};

class JsonClient {
 public:
  // `max_idle_per_target`: idle connections kept per target beyond which returned ones close.
  explicit JsonClient(boost::asio::io_context& io, uint32_t max_idle_per_target = 32);
  ~JsonClient();
  JsonClient(const JsonClient&) = delete;
  JsonClient& operator=(const JsonClient&) = delete;

  // POSTs `body` (Content-Type: application/json) to `target` and returns the answer. The
  // target and body must stay alive until the call returns. The loop's thread only; calls may
  // overlap (each holds its own connection).
  boost::asio::awaitable<JsonResponse> Post(const HttpTarget& target, std::string_view body,
                                            JsonPostOptions options);

  // Closes connections idle since before `cutoff_ns` (MonotonicNanos), and all of them.
  void CloseIdleBefore(int64_t cutoff_ns);
  void CloseAll();
  size_t idle_count() const;
  // Connections opened so far (tests check that keep-alive reuses them).
  uint64_t connects() const { return connects_; }

  struct Connection;

 private:
  std::shared_ptr<Connection> TakeIdle(const std::string& key);
  void Return(std::shared_ptr<Connection> conn);

  boost::asio::io_context& io_;
  const uint32_t max_idle_per_target_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Connection>>> idle_;
  uint64_t connects_ = 0;
};

}  // namespace tokenway
