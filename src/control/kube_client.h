// KubeClient: HTTPS access to the Kubernetes API server without a client library (Boost.Asio
// SSL over OpenSSL, Beast for HTTP/1.1), for discovery's LIST and WATCH requests.
//
// Credentials come from the service account when running in a pod (token, ca.crt and namespace
// under KubernetesConfig::service_account_dir; the server from KUBERNETES_SERVICE_HOST/PORT) or
// from a kubeconfig file (bearer token, token file or client certificate; CA data or file, or
// insecure-skip-tls-verify). A token file is re-read when it changes on disk (projected tokens
// rotate), at least once a minute, and after any 401. Created and used on the control thread;
// every request opens its own TLS connection (watches hold theirs for minutes; a LIST is rare).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "control/discovery_config.h"
#include "tokenway/status.h"

namespace tokenway {

// Lets the owner of a running Watch end it from the same thread (closes its connection).
class WatchCancel {
 public:
  void Cancel() {
    cancelled_ = true;
    if (close_) close_();
  }
  bool cancelled() const { return cancelled_; }
  void Arm(std::function<void()> close) { close_ = std::move(close); }
  void Disarm() { close_ = nullptr; }

 private:
  bool cancelled_ = false;
  std::function<void()> close_;
};

class KubeClient {
 public:
  // In-cluster when `config.kubeconfig` is empty, else from the kubeconfig. The error says
  // which file or variable is missing or wrong.
  static StatusOr<std::shared_ptr<KubeClient>> Create(const KubernetesConfig& config);
  ~KubeClient();

  const std::string& server() const { return server_; }  // https://host:port, for logs
  // The namespace of the service account, or of the kubeconfig context ("default" if unset).
  const std::string& default_namespace() const { return namespace_; }

  struct Response {
    int status = 0;     // HTTP status; 0 when no answer arrived
    std::string body;   // the body (bounded), also for error statuses
    std::string error;  // transport error when status is 0
    bool timed_out = false;
  };

  // GET `target` (path and query): the whole answer, bounded by `body_limit`, within
  // `request_timeout`. A 401 re-reads the token and tries once more.
  boost::asio::awaitable<Response> Get(std::string target, uint64_t body_limit);

  // WATCH `target`: once the server answers 200, `on_bytes` gets an empty view, then the body as
  // it streams (chunk
  // boundaries are arbitrary) until the server ends it, nothing arrives for `idle_timeout`
  // (timed_out), `on_bytes` returns false, or `cancel` is cancelled. For any other status the
  // Response carries it and its (bounded) body. A 401 re-reads the token and tries once more.
  boost::asio::awaitable<Response> Watch(std::string target, Duration idle_timeout,
                                         std::function<bool(std::string_view)> on_bytes,
                                         std::shared_ptr<WatchCancel> cancel);

  // The bearer token to send (empty with client certificates), re-read from its file when the
  // file changed, when the copy is a minute old, or when `force`.
  std::string Token(bool force = false);

 private:
  KubeClient() = default;
  boost::asio::awaitable<Response> Exchange(std::string target, bool watch, uint64_t body_limit,
                                            Duration idle_timeout,
                                            std::function<bool(std::string_view)>* on_bytes,
                                            std::shared_ptr<WatchCancel> cancel);

  std::string server_;
  std::string host_;
  uint16_t port_ = 443;
  std::string namespace_ = "default";
  Duration request_timeout_{};
  bool verify_ = true;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  std::string token_;       // a fixed token, or the cached content of token_file_
  std::string token_file_;  // empty: the token (if any) does not change
  int64_t token_read_ns_ = 0;
  timespec token_mtime_{};
  uint64_t token_inode_ = 0;
  int64_t token_size_ = -1;
};

// Base64 (RFC 4648, padding optional) for kubeconfig *-data fields; nullopt-like false on bad
// input. Exposed for tests.
bool DecodeBase64(std::string_view in, std::string& out);

}  // namespace tokenway
