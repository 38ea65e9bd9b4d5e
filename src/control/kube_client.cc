#include "control/kube_client.h"

#include <openssl/ssl.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace tokenway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;

namespace {

constexpr uint64_t kErrorBodyLimit = 64 * 1024;
constexpr int64_t kTokenMaxAgeNs = 60'000'000'000;

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream buf;
  buf << in.rdbuf();
  out = buf.str();
  return true;
}

std::string Trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// "https://host[:port]" → host, port.
Status ParseServer(const std::string& server, std::string& host, uint16_t& port) {
  std::string_view rest(server);
  if (rest.substr(0, 8) != "https://") {
    return Status::Error("API server '" + server + "' must be an https:// URL");
  }
  rest.remove_prefix(8);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return Status::Error("API server '" + server + "' must not have a path");
  }
  port = 443;
  size_t colon = rest.rfind(':');
  size_t bracket = rest.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    unsigned v = 0;
    std::string_view p = rest.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || ptr != p.data() + p.size() || v == 0 || v > 65535) {
      return Status::Error("API server '" + server + "' has an invalid port");
    }
    port = static_cast<uint16_t>(v);
    rest = rest.substr(0, colon);
  }
  if (rest.size() > 2 && rest.front() == '[' && rest.back() == ']') {
    rest = rest.substr(1, rest.size() - 2);
  }
  if (rest.empty()) return Status::Error("API server '" + server + "' has no host");
  host = std::string(rest);
  return Status::Ok();
}

// A kubeconfig file path, relative to the kubeconfig's directory.
std::string RelativeTo(const std::string& kubeconfig, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  size_t slash = kubeconfig.rfind('/');
  return slash == std::string::npos ? path : kubeconfig.substr(0, slash + 1) + path;
}

// Finds the entry called `name` in a kubeconfig list (clusters, users, contexts) and returns its
// `field` (cluster, user, context) mapping.
YAML::Node Named(const YAML::Node& list, const std::string& name, const char* field) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& entry : list) {
    if (entry["name"] && entry["name"].IsScalar() && entry["name"].Scalar() == name) {
      return entry[field];
    }
  }
  return YAML::Node();
}

std::string Scalar(const YAML::Node& node, const char* key) {
  if (!node || !node.IsMap()) return {};
  YAML::Node v = node[key];
  return v && v.IsScalar() ? v.Scalar() : std::string();
}

}  // namespace

bool DecodeBase64(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      ++padding;
      continue;
    } else if (c == '\n' || c == '\r' || c == ' ' || c == '\t') {
      continue;
    } else {
      return false;
    }
    if (padding) return false;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return padding <= 2 && bits < 6;
}

KubeClient::~KubeClient() = default;

StatusOr<std::shared_ptr<KubeClient>> KubeClient::Create(const KubernetesConfig& config) {
  std::shared_ptr<KubeClient> c(new KubeClient());
  c->request_timeout_ = config.request_timeout;
  c->tls_ = std::make_unique<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  std::string ca_pem, cert_pem, key_pem;
  if (config.kubeconfig.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port) {
      return Status::Error(
          "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are "
          "not set (set kubernetes.kubeconfig to run outside one)");
    }
    std::string h = host;
    if (h.find(':') != std::string::npos) h = "[" + h + "]";
    c->server_ = "https://" + h + ":" + port;
    const std::string& dir = config.service_account_dir;
    c->token_file_ = dir + "/token";
    if (!ReadFile(dir + "/ca.crt", ca_pem)) {
      return Status::Error("cannot read the service account CA " + dir + "/ca.crt");
    }
    std::string ns;
    if (ReadFile(dir + "/namespace", ns) && !Trim(ns).empty()) c->namespace_ = Trim(ns);
  } else {
    const std::string& path = config.kubeconfig;
    YAML::Node root;
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
      return Status::Error("kubeconfig " + path + ": " + e.what());
    }
    std::string context_name = config.context;
    if (context_name.empty()) context_name = Scalar(root, "current-context");
    if (context_name.empty()) {
      return Status::Error("kubeconfig " + path + ": no current-context (set kubernetes.context)");
    }
    YAML::Node context = Named(root["contexts"], context_name, "context");
    if (!context)
      return Status::Error("kubeconfig " + path + ": no context '" + context_name + "'");
    YAML::Node cluster = Named(root["clusters"], Scalar(context, "cluster"), "cluster");
    if (!cluster) {
      return Status::Error("kubeconfig " + path + ": context '" + context_name +
                           "' names no known cluster");
    }
    YAML::Node user = Named(root["users"], Scalar(context, "user"), "user");
    if (!Scalar(context, "namespace").empty()) c->namespace_ = Scalar(context, "namespace");
    c->server_ = Scalar(cluster, "server");
    c->verify_ = Scalar(cluster, "insecure-skip-tls-verify") != "true";
    auto data_or_file = [&](const YAML::Node& n, const char* data_key, const char* file_key,
                            std::string& out) -> Status {
      std::string data = Scalar(n, data_key);
      if (!data.empty()) {
        if (!DecodeBase64(data, out)) {
          return Status::Error("kubeconfig " + path + ": " + data_key + " is not base64");
        }
        return Status::Ok();
      }
      std::string file = Scalar(n, file_key);
      if (!file.empty() && !ReadFile(RelativeTo(path, file), out)) {
        return Status::Error("kubeconfig " + path + ": cannot read " + file_key + " " + file);
      }
      return Status::Ok();
    };
    if (auto s =
            data_or_file(cluster, "certificate-authority-data", "certificate-authority", ca_pem);
        !s.ok()) {
      return s;
    }
    if (user) {
      if (auto s = data_or_file(user, "client-certificate-data", "client-certificate", cert_pem);
          !s.ok()) {
        return s;
      }
      if (auto s = data_or_file(user, "client-key-data", "client-key", key_pem); !s.ok()) return s;
      c->token_ = Scalar(user, "token");
      if (c->token_.empty() && !Scalar(user, "tokenFile").empty()) {
        c->token_file_ = RelativeTo(path, Scalar(user, "tokenFile"));
      }
      if (user["exec"] || user["auth-provider"]) {
        if (c->token_.empty() && c->token_file_.empty() && cert_pem.empty()) {
          return Status::Error("kubeconfig " + path + ": user '" + Scalar(context, "user") +
                               "' uses exec or auth-provider credentials, which tokenway does "
                               "not run; use a token, tokenFile or client certificate");
        }
      }
    }
  }
  if (auto s = ParseServer(c->server_, c->host_, c->port_); !s.ok()) return s;
  if (c->verify_) {
    c->tls_->set_verify_mode(ssl::verify_peer, ec);
    if (ca_pem.empty()) {
      c->tls_->set_default_verify_paths(ec);
    } else {
      c->tls_->add_certificate_authority(asio::buffer(ca_pem), ec);
      if (ec) return Status::Error("the API server CA is not a PEM certificate: " + ec.message());
    }
  } else {
    c->tls_->set_verify_mode(ssl::verify_none, ec);
  }
  if (!cert_pem.empty() || !key_pem.empty()) {
    c->tls_->use_certificate_chain(asio::buffer(cert_pem), ec);
    if (ec) return Status::Error("the client certificate is not PEM: " + ec.message());
    c->tls_->use_private_key(asio::buffer(key_pem), ssl::context::pem, ec);
    if (ec) return Status::Error("the client key is not PEM or does not match: " + ec.message());
  }
  if (!c->token_file_.empty()) {
    c->Token(true);
    if (c->token_.empty()) return Status::Error("cannot read the token file " + c->token_file_);
  }
  return c;
}

std::string KubeClient::Token(bool force) {
  if (token_file_.empty()) return token_;
  struct stat st {};
  bool stat_ok = ::stat(token_file_.c_str(), &st) == 0;
  bool changed = stat_ok && (st.st_mtim.tv_sec != token_mtime_.tv_sec ||
                             st.st_mtim.tv_nsec != token_mtime_.tv_nsec ||
                             static_cast<uint64_t>(st.st_ino) != token_inode_ ||
                             static_cast<int64_t>(st.st_size) != token_size_);
  int64_t now = MonotonicNanos();
  if (force || changed || now - token_read_ns_ > kTokenMaxAgeNs) {
    std::string text;
    if (ReadFile(token_file_, text) && !Trim(text).empty()) {
      token_ = Trim(text);
      token_read_ns_ = now;
      if (stat_ok) {
        token_mtime_ = st.st_mtim;
        token_inode_ = static_cast<uint64_t>(st.st_ino);
        token_size_ = static_cast<int64_t>(st.st_size);
      }
    }
  }
  return token_;
}

asio::awaitable<KubeClient::Response> KubeClient::Get(std::string target, uint64_t body_limit) {
  Response r = co_await Exchange(target, false, body_limit, request_timeout_, nullptr, nullptr);
  if (r.status == 401 && !token_file_.empty()) {
    Token(true);
    r = co_await Exchange(target, false, body_limit, request_timeout_, nullptr, nullptr);
  }
  co_return r;
}

asio::awaitable<KubeClient::Response> KubeClient::Watch(
    std::string target, Duration idle_timeout, std::function<bool(std::string_view)> on_bytes,
    std::shared_ptr<WatchCancel> cancel) {
  Response r = co_await Exchange(target, true, 0, idle_timeout, &on_bytes, cancel);
  if (r.status == 401 && !token_file_.empty() && !cancel->cancelled()) {
    Token(true);
    r = co_await Exchange(target, true, 0, idle_timeout, &on_bytes, cancel);
  }
  co_return r;
}

asio::awaitable<KubeClient::Response> KubeClient::Exchange(
    std::string target, bool watch, uint64_t body_limit, Duration idle_timeout,
    std::function<bool(std::string_view)>* on_bytes, std::shared_ptr<WatchCancel> cancel) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  auto executor = co_await asio::this_coro::executor;
  Response r;
  auto stream = std::make_shared<beast::ssl_stream<beast::tcp_stream>>(executor, *tls_);
  auto& tcp_layer = beast::get_lowest_layer(*stream);
  if (cancel) {
    if (cancel->cancelled()) co_return r;
    std::weak_ptr<beast::ssl_stream<beast::tcp_stream>> weak = stream;
    cancel->Arm([weak] {
      if (auto s = weak.lock()) beast::get_lowest_layer(*s).close();
    });
  }
  struct Disarm {
    WatchCancel* c;
    ~Disarm() {
      if (c) c->Disarm();
    }
  } disarm{cancel.get()};
  auto fail = [&](const char* what, const boost::system::error_code& ec) {
    r.timed_out = ec == beast::error::timeout;
    r.error = std::string(what) + ": " + (r.timed_out ? "timed out" : ec.message());
  };

  tcp_layer.expires_after(request_timeout_);
  tcp::resolver resolver(executor);
  auto [rec, results] = co_await resolver.async_resolve(host_, std::to_string(port_), kNoThrow);
  if (rec) {
    fail("resolve", rec);
    co_return r;
  }
  auto [cec, ep] = co_await tcp_layer.async_connect(results, kNoThrow);
  if (cec) {
    fail("connect", cec);
    co_return r;
  }
  boost::system::error_code ec;
  asio::ip::make_address(host_, ec);
  if (ec) SSL_set_tlsext_host_name(stream->native_handle(), host_.c_str());  // SNI: names only
  if (verify_) stream->set_verify_callback(ssl::host_name_verification(host_));
  auto [hec] = co_await stream->async_handshake(ssl::stream_base::client, kNoThrow);
  if (hec) {
    fail("TLS handshake", hec);
    co_return r;
  }
  http::request<http::empty_body> req(http::verb::get, target, 11);
  std::string host = host_.find(':') == std::string::npos ? host_ : "[" + host_ + "]";
  req.set(http::field::host, port_ == 443 ? host : host + ":" + std::to_string(port_));
  req.set(http::field::accept, "application/json");
  req.set(http::field::user_agent, "tokenway");
  req.set(http::field::connection, "close");
  std::string token = Token();
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  auto [wec, wn] = co_await http::async_write(*stream, req, kNoThrow);
  if (wec) {
    fail("write", wec);
    co_return r;
  }
  beast::flat_buffer buffer;
  if (!watch) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(body_limit);
    auto [ec2, n] = co_await http::async_read(*stream, buffer, parser, kNoThrow);
    if (ec2) {
      fail(ec2 == http::error::body_limit ? "read (answer too large)" : "read", ec2);
      co_return r;
    }
    r.status = static_cast<int>(parser.get().result_int());
    r.body = std::move(parser.get().body());
    co_return r;
  }
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  auto [hrec, hn] = co_await http::async_read_header(*stream, buffer, parser, kNoThrow);
  if (hrec) {
    fail("read", hrec);
    co_return r;
  }
  r.status = static_cast<int>(parser.get().result_int());
  if (r.status == 200 && !(*on_bytes)(std::string_view())) co_return r;
  char chunk[16 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    tcp_layer.expires_after(r.status == 200 ? idle_timeout : request_timeout_);
    auto [bec, bn] = co_await http::async_read_some(*stream, buffer, parser, kNoThrow);
    if (bec == http::error::need_buffer) bec = {};
    size_t got = sizeof chunk - parser.get().body().size;
    if (got) {
      std::string_view piece(chunk, got);
      if (r.status != 200) {
        if (r.body.size() < kErrorBodyLimit) r.body.append(piece.substr(0, kErrorBodyLimit));
      } else if (!(*on_bytes)(piece)) {
        co_return r;
      }
    }
    if (cancel && cancel->cancelled()) co_return r;
    if (bec) {
      if (r.status == 200) {
        fail("watch stream", bec);
      } else {
        fail("read", bec);
      }
      co_return r;
    }
  }
  co_return r;
}

}  // namespace tokenway
