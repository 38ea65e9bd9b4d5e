#include "gateway/client_session.h"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <cerrno>
#include <chrono>

#include "common/duration.h"
#include "common/json_writer.h"
#include "common/openai_error.h"
#include "common/scope_exit.h"
#include "gateway/worker.h"
#include "http/http_text.h"

namespace tokenway {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kBufferKeep = 64 * 1024;  // shrink after larger requests

std::string_view PathOf(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}
}  // namespace

ClientSession::ClientSession(Worker& worker, tcp::socket socket)
    : worker_(worker),
      socket_(std::move(socket)),
      buffer_(kReadChunk),
      abort_(std::make_shared<ClientAbortWatch>()) {
  abort_->client = &socket_;
  deadline_.Attach(&worker_.sweep(), &socket_);
  worker_.AddSession(this);
  worker_.metrics().connections.fetch_add(1, std::memory_order_relaxed);
  worker_.metrics().connections_total.fetch_add(1, std::memory_order_relaxed);
}

ClientSession::~ClientSession() {
  abort_->client = nullptr;
  abort_->upstream = nullptr;
  abort_->queue_timer = nullptr;
  deadline_.Detach();
  worker_.RemoveSession(this);
  worker_.metrics().connections.fetch_sub(1, std::memory_order_relaxed);
  worker_.shared().connections.fetch_sub(1, std::memory_order_relaxed);
}

void ClientSession::CloseIfIdle() {
  if (idle_ && buffer_.empty()) {
    boost::system::error_code ec;
    socket_.cancel(ec);
    socket_.close(ec);
  }
}

asio::awaitable<void> ClientSession::Run() {
  for (;;) {
    runtime_ = worker_.runtime();
    const auto& limits = runtime_->config.limits;
    RequestParser parser(limits.max_header_bytes, limits.max_body_bytes);
    // Lend the parser this connection's header list so it keeps its capacity across requests.
    header_scratch_.clear();
    parser.forward_headers.swap(header_scratch_);
    ScopeExit give_back([&] { parser.forward_headers.swap(header_scratch_); });
    size_t head_size = 0;
    size_t body_size = 0;
    ReadOutcome outcome = co_await ReadRequest(parser, head_size, body_size);
    if (outcome == ReadOutcome::kClosed) break;
    if (outcome == ReadOutcome::kResponded) {
      if (!keep_alive_) break;
      continue;
    }
    keep_alive_ = parser.keep_alive() && !worker_.shared().draining.load(std::memory_order_relaxed);
    http10_ = parser.version < 11;
    std::string_view body;
    size_t padding;
    if (parser.chunked()) {
      parser.chunked_body.append(IoBuffer::kPadding, '\0');
      body = std::string_view(parser.chunked_body.data(),
                              parser.chunked_body.size() - IoBuffer::kPadding);
      padding = IoBuffer::kPadding;
    } else {
      body = std::string_view(buffer_.data() + head_size, body_size);
      padding = buffer_.size() - head_size - body_size + IoBuffer::kPadding;
    }
    co_await Dispatch(parser, body, padding);
    buffer_.consume(head_size + (parser.chunked() ? 0 : body_size));
    runtime_.reset();
    if (!keep_alive_ || worker_.shared().draining.load(std::memory_order_relaxed)) break;
    if (buffer_.empty() && buffer_.capacity() > kBufferKeep) buffer_.ShrinkTo(kReadChunk);
  }
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  socket_.close(ec);
}

asio::awaitable<ClientSession::ReadOutcome> ClientSession::ReadRequest(RequestParser& parser,
                                                                       size_t& head_size,
                                                                       size_t& body_size) {
  const auto& limits = runtime_->config.limits;
  WorkerMetrics& m = worker_.metrics();
  idle_ = buffer_.empty();
  deadline_.Arm(MonotonicNanos() + (idle_ ? limits.idle_timeout : limits.header_timeout).count());
  // 1. The head. Beast may consume the request line before the rest of the head has arrived;
  // `parsed` counts what it took, and the head stays in the buffer (the slices point into it).
  size_t parsed = 0;
  for (;;) {
    if (buffer_.size() > parsed) {
      parser.set_base(buffer_.data(), buffer_.size());
      boost::beast::error_code ec;
      size_t n = parser.put(asio::buffer(buffer_.data() + parsed, buffer_.size() - parsed), ec);
      parsed += n;
      if (!ec && parser.is_header_done()) {
        head_size = parsed;
        break;
      }
      if (ec == http::error::need_more) {
        if (buffer_.size() > limits.max_header_bytes) ec = http::error::header_limit;
      }
      if (ec && ec != http::error::need_more) {
        co_return co_await RejectUnparsable(ec, "malformed HTTP request: ");
      }
    }
    char* p = buffer_.write_ptr(kReadChunk);
    auto [ec, n] =
        co_await socket_.async_read_some(asio::buffer(p, buffer_.write_space()), kNoThrow);
    if (ec || n == 0) {
      if (deadline_.expired() && !buffer_.empty()) m.Count(ClientError::kHeaderTimeout);
      co_return ReadOutcome::kClosed;
    }
    if (idle_) {
      idle_ = false;
      deadline_.Arm(MonotonicNanos() + limits.header_timeout.count());
    }
    buffer_.commit(n);
  }
  idle_ = false;
  // 2. The body.
  if (parser.chunked()) {
    parser.eager(true);
    size_t consumed = head_size;
    while (!parser.is_done()) {
      if (consumed < buffer_.size()) {
        boost::beast::error_code ec;
        size_t n =
            parser.put(asio::buffer(buffer_.data() + consumed, buffer_.size() - consumed), ec);
        consumed += n;
        if (ec && ec != http::error::need_more) {
          co_return co_await RejectUnparsable(ec, "malformed chunked body: ");
        }
        if (parser.is_done()) break;
        if (!ec && n > 0) continue;
      }
      // The head stays in the buffer (the request's slices point into it); read more after it.
      char* p = buffer_.write_ptr(kReadChunk);
      auto [ec, n] =
          co_await socket_.async_read_some(asio::buffer(p, buffer_.write_space()), kNoThrow);
      if (ec || n == 0) {
        if (deadline_.expired()) m.Count(ClientError::kHeaderTimeout);
        co_return ReadOutcome::kClosed;
      }
      buffer_.commit(n);
    }
    head_size = consumed;  // what Run() consumes after the request
    body_size = 0;
    deadline_.Disarm();
    co_return ReadOutcome::kRequest;
  }
  auto length = parser.content_length();
  body_size = length ? static_cast<size_t>(*length) : 0;
  if (body_size > limits.max_body_bytes) {  // the parser checks too; belt and braces
    co_return co_await RejectUnparsable(http::error::body_limit, "");
  }
  if (buffer_.size() < head_size + body_size) {
    if (parser.expect_continue) {
      if (!co_await WriteAll("HTTP/1.1 100 Continue\r\n\r\n")) co_return ReadOutcome::kClosed;
    }
    buffer_.EnsureCapacityFor(head_size + body_size + kReadChunk);
    deadline_.Arm(MonotonicNanos() + limits.header_timeout.count());
    while (buffer_.size() < head_size + body_size) {
      char* p = buffer_.write_ptr(1);
      auto [ec, n] =
          co_await socket_.async_read_some(asio::buffer(p, buffer_.write_space()), kNoThrow);
      if (ec || n == 0) {
        if (deadline_.expired()) m.Count(ClientError::kHeaderTimeout);
        co_return ReadOutcome::kClosed;
      }
      buffer_.commit(n);
    }
  }
  deadline_.Disarm();
  co_return ReadOutcome::kRequest;
}

asio::awaitable<ClientSession::ReadOutcome> ClientSession::RejectUnparsable(
    boost::beast::error_code ec, std::string_view context) {
  WorkerMetrics& m = worker_.metrics();
  keep_alive_ = false;  // the rest of the stream cannot be trusted to start a new request
  if (ec == http::error::header_limit) {
    m.Count(ClientError::kHeaderTooLarge);
    co_await WriteError(431, "request headers are too large", "request_header_fields_too_large");
  } else if (ec == http::error::body_limit) {
    m.Count(ClientError::kBodyTooLarge);
    co_await WriteError(413, "request body is too large", "request_too_large");
  } else {
    m.Count(ClientError::kMalformedRequest);
    co_await WriteError(400, std::string(context) + ec.message(), "malformed_request");
  }
  co_return ReadOutcome::kResponded;
}

asio::awaitable<void> ClientSession::Dispatch(RequestParser& parser, std::string_view body,
                                              size_t padding) {
  std::string_view target = parser.target.in(buffer_.data());
  std::string_view path = PathOf(target);
  http::verb method = parser.method;
  auto post_only = [&](Operation op) -> std::optional<Operation> {
    return method == http::verb::post ? std::optional<Operation>(op) : std::nullopt;
  };
  std::optional<Operation> op;
  bool known = true;
  if (path == "/v1/chat/completions") {
    op = post_only(Operation::kChatCompletions);
  } else if (path == "/v1/completions") {
    op = post_only(Operation::kCompletions);
  } else if (path == "/v1/embeddings") {
    op = post_only(Operation::kEmbeddings);
  } else if (path == "/v1/models" || path.substr(0, 11) == "/v1/models/") {
    if (method != http::verb::get) {
      co_await WriteError(405, "method not allowed; use GET", "method_not_allowed");
      co_return;
    }
    if (path == "/v1/models") {
      co_await WriteJson(200, runtime_->models_json);
      co_return;
    }
    std::string_view id = path.substr(11);
    auto it = runtime_->model_json.find(id);
    if (it == runtime_->model_json.end()) {
      worker_.metrics().Count(ClientError::kUnknownModel);
      co_await WriteError(404, "The model '" + std::string(id) + "' does not exist",
                          "model_not_found", "model");
      co_return;
    }
    co_await WriteJson(200, it->second);
    co_return;
  } else {
    known = false;
  }
  if (!known) {
    worker_.metrics().Count(ClientError::kUnknownPath);
    record_.Reset();
    co_await WriteError(404, "unknown path " + std::string(path), "not_found");
    co_return;
  }
  if (!op) {
    co_await WriteError(405, "method not allowed; use POST", "method_not_allowed");
    co_return;
  }
  co_await Proxy(parser, *op, body, padding);
}

asio::awaitable<bool> ClientSession::WriteAll(std::string_view a, std::string_view b,
                                              std::string_view c, std::string_view d) {
  std::array<asio::const_buffer, 4> bufs = {
      asio::buffer(a.data(), a.size()), asio::buffer(b.data(), b.size()),
      asio::buffer(c.data(), c.size()), asio::buffer(d.data(), d.size())};
  deadline_.Arm(MonotonicNanos() + runtime_->config.limits.write_timeout.count());
  auto [ec, n] = co_await asio::async_write(socket_, bufs, kNoThrow);
  deadline_.Disarm();
  if (ec) {
    keep_alive_ = false;
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> ClientSession::WriteJson(int status, std::string_view body,
                                               std::string_view extra_headers) {
  out_.clear();
  AppendStatusLine(out_, status);
  out_.append("Content-Type: application/json\r\nContent-Length: ");
  out_.append(std::to_string(body.size()));
  out_.append("\r\n");
  out_.append(extra_headers);
  if (!record_.request_id.empty()) {
    out_.append("X-Request-Id: ").append(record_.request_id).append("\r\n");
  }
  if (!keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n");
  co_return co_await WriteAll(out_, body);
}

asio::awaitable<bool> ClientSession::WriteError(int status, std::string_view message,
                                                std::string_view code, std::string_view param) {
  std::string body;
  AppendOpenAiError(body, message, ErrorTypeForStatus(status), param, code);
  std::string_view extra;
  if (status == 405) extra = "Allow: GET, POST\r\n";
  co_return co_await WriteJson(status, body, extra);
}

void ClientSession::StartAbortWatch(tcp::socket* upstream, asio::steady_timer* queue_timer) {
  ClientAbortWatch& w = *abort_;
  w.fired = false;
  w.upstream = upstream;
  w.queue_timer = queue_timer;
  if (w.armed) return;
  w.armed = true;
  socket_.async_wait(tcp::socket::wait_read, [watch = abort_](boost::system::error_code ec) {
    watch->armed = false;
    if (ec || !watch->client || (!watch->upstream && !watch->queue_timer)) return;
    char c;
    ssize_t n = ::recv(watch->client->native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      watch->fired = true;
      boost::system::error_code ignored;
      if (watch->upstream) {
        watch->upstream->cancel(ignored);
        watch->upstream->close(ignored);
      }
      if (watch->queue_timer) watch->queue_timer->cancel();
    }
    // Readable with data: the client pipelined its next request; it is read after this one.
  });
}

void ClientSession::StopAbortWatch() {
  abort_->upstream = nullptr;
  abort_->queue_timer = nullptr;
}

void ClientSession::FinishFlowRelease() {
  if (!flow_release_) return;
  const Pool* pool = std::exchange(flow_release_, nullptr);
  pool->flow->DispatchDone(pool->flow_view(), MonotonicNanos());
}

void ClientSession::ChooseRequestId(const RequestParser& parser) {
  std::string_view given = parser.request_id.in(buffer_.data());
  bool usable = !given.empty() && given.size() <= 128;
  for (char c : given) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == ':')) {
      usable = false;
      break;
    }
  }
  if (usable) {
    record_.request_id.assign(given);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t r = worker_.NextRandom();
  record_.request_id.resize(16);
  for (int i = 0; i < 16; ++i) {
    record_.request_id[i] = kHex[r & 0xF];
    r >>= 4;
  }
}

void ClientSession::Observe(RequestRecord& rec) {
  int64_t end = MonotonicNanos();
  double seconds = static_cast<double>(end - rec.start_ns) / 1e9;
  RequestSample sample;
  sample.model_slot = rec.model_slot;
  sample.pool_slot = rec.pool_slot;
  sample.endpoint_slot = rec.endpoint_slot;
  sample.operation = static_cast<uint8_t>(inspected_.operation);
  sample.status = rec.status;
  sample.stream = rec.stream;
  sample.seconds = seconds;
  if (rec.first_byte_ns)
    sample.first_byte = static_cast<double>(rec.first_byte_ns - rec.start_ns) / 1e9;
  sample.prompt_tokens = rec.usage.prompt_tokens;
  sample.completion_tokens = rec.usage.completion_tokens;
  sample.cached_tokens = rec.usage.cached_tokens;
  worker_.metrics().CountRequest(sample);
  WriteAccessLog(rec, seconds);
}

}  // namespace tokenway
