#include "gateway/client_session.h"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <cerrno>
#include <charconv>

#include "common/duration.h"
#include "common/openai_error.h"
#include "common/scope_exit.h"
#include "gateway/phases/phases.h"
#include "gateway/request_path.h"
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
      abort_(std::make_shared<ClientAbortWatch>()),
      ctx_(worker) {
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
    // The snapshot this request runs on, pinned in the worker without touching the shared
    // pointer's reference count.
    RuntimePin pin(worker_);
    runtime_ = pin.get();
    const auto& limits = runtime_->config.limits;
    RequestParser parser(limits.max_header_bytes, limits.max_body_bytes);
    // Lend the parser this connection's header list so it keeps its capacity across requests.
    header_scratch_.clear();
    parser.forward_headers.swap(header_scratch_);
    ScopeExit give_back([&] { parser.forward_headers.swap(header_scratch_); });
    size_t head_size = 0;
    size_t body_size = 0;
    head_request_ = false;
    ReadOutcome outcome = co_await ReadRequest(parser, head_size, body_size);
    if (outcome == ReadOutcome::kClosed) break;
    if (outcome == ReadOutcome::kResponded) {
      if (!keep_alive_) break;
      continue;
    }
    runtime_ = pin.Refresh();  // the limits that read it stay the old snapshot's
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
    runtime_ = nullptr;
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
        head_request_ = parser.method == http::verb::head;
        co_return co_await RejectUnparsable(ec, parser.reject_reason);
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
  head_request_ = parser.method == http::verb::head;
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
        // Chunk data is taken as it arrives, so what stays unparsed is a chunk-size line; one
        // longer than the extension bound is refused before it is complete.
        if (ec == http::error::need_more &&
            buffer_.size() - consumed > RequestParser::kMaxChunkExtension + 64) {
          parser.reject_reason = "chunk extension longer than 4 KiB";
          ec = http::error::bad_chunk_extension;
        }
        if (ec && ec != http::error::need_more) {
          co_return co_await RejectUnparsable(ec, parser.reject_reason);
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
    co_return co_await RejectUnparsable(http::error::body_limit, nullptr);
  }
  if (buffer_.size() < head_size + body_size) {
    if (parser.expect_continue) {
      if (!co_await Write("HTTP/1.1 100 Continue\r\n\r\n")) co_return ReadOutcome::kClosed;
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
    boost::beast::error_code ec, const char* reason) {
  WorkerMetrics& m = worker_.metrics();
  keep_alive_ = false;  // the rest of the stream cannot be trusted to start a new request
  ctx_.Reset(runtime_, nullptr, nullptr, {}, 0, Operation::kChatCompletions);
  AssignRequestId(ctx_);
  if (ec == http::error::header_limit) {
    m.Count(ClientError::kHeaderTooLarge);
    co_await WriteLocalError(431, "request headers are too large",
                             "request_header_fields_too_large");
  } else if (ec == http::error::body_limit) {
    m.Count(ClientError::kBodyTooLarge);
    co_await WriteLocalError(413, "request body is too large", "request_too_large");
  } else {
    m.Count(ClientError::kMalformedRequest);
    std::string message = "malformed HTTP request: ";
    if (reason) {
      message.append(reason);
    } else {
      message.append(ec.message());
    }
    co_await WriteLocalError(400, message, "malformed_request");
  }
  co_return ReadOutcome::kResponded;
}

asio::awaitable<void> ClientSession::Dispatch(RequestParser& parser, std::string_view body,
                                              size_t padding) {
  std::string_view target = parser.target.in(buffer_.data());
  std::string_view path = PathOf(target);
  const http::verb method = parser.method;
  const bool head = method == http::verb::head;
  WorkerMetrics& m = worker_.metrics();
  std::optional<Operation> op;
  if (path == "/v1/chat/completions") {
    op = Operation::kChatCompletions;
  } else if (path == "/v1/completions") {
    op = Operation::kCompletions;
  } else if (path == "/v1/embeddings") {
    op = Operation::kEmbeddings;
  }
  ctx_.Reset(runtime_, &parser, buffer_.data(), body, padding,
             op.value_or(Operation::kChatCompletions));
  AssignRequestId(ctx_);
  if (op) {
    if (method != http::verb::post) {
      m.Count(ClientError::kMethodNotAllowed);
      co_await WriteLocalError(405, "method not allowed; use POST", "method_not_allowed", {},
                               "Allow: POST\r\n");
      co_return;
    }
    co_await ServeInferenceRequest(ctx_, *this);
    co_return;
  }
  if (path == "/v1/models" || path.substr(0, 11) == "/v1/models/") {
    if (method != http::verb::get && !head) {
      m.Count(ClientError::kMethodNotAllowed);
      co_await WriteLocalError(405, "method not allowed; use GET", "method_not_allowed", {},
                               "Allow: GET, HEAD\r\n");
      co_return;
    }
    if (path == "/v1/models") {
      co_await WriteLocal(200, runtime_->models_json);
      co_return;
    }
    std::string_view id = path.substr(11);
    auto it = runtime_->model_json.find(id);
    if (it == runtime_->model_json.end()) {
      m.Count(ClientError::kUnknownModel);
      co_await WriteLocalError(404, "The model '" + std::string(id) + "' does not exist",
                               "model_not_found", "model");
      co_return;
    }
    co_await WriteLocal(200, it->second);
    co_return;
  }
  m.Count(ClientError::kUnknownPath);
  co_await WriteLocalError(404, "unknown path " + std::string(path), "not_found");
}

asio::awaitable<bool> ClientSession::Write(std::span<const asio::const_buffer> buffers) {
  deadline_.Arm(MonotonicNanos() + runtime_->config.limits.write_timeout.count());
  auto [ec, n] = co_await asio::async_write(socket_, buffers, kNoThrow);
  deadline_.Disarm();
  if (ec) {
    keep_alive_ = false;
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> ClientSession::WriteLocal(int status, std::string_view body,
                                                std::string_view extra_headers,
                                                std::string_view content_type) {
  out_.clear();
  AppendStatusLine(out_, status);
  out_.append("Content-Type: ").append(content_type).append("\r\nContent-Length: ");
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, body.size());
  out_.append(digits, end).append("\r\n");
  out_.append(extra_headers);
  out_.append("X-Request-Id: ").append(ctx_.record.request_id).append("\r\n");
  if (!keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n");
  // A HEAD answer is the head a GET would get, without the body (RFC 9110 section 9.3.2).
  const std::string_view payload = head_request_ ? std::string_view() : body;
  co_return co_await Write(out_, payload);
}

asio::awaitable<bool> ClientSession::WriteLocalError(int status, std::string_view message,
                                                     std::string_view code, std::string_view param,
                                                     std::string_view extra_headers) {
  error_body_.clear();
  AppendOpenAiError(error_body_, message, ErrorTypeForStatus(status), param, code);
  co_return co_await WriteLocal(status, error_body_, extra_headers);
}

asio::awaitable<bool> ClientSession::Respond(const LocalReply& reply, std::string_view request_id) {
  co_return co_await WriteLocal(reply.status, reply.body, reply.headers, reply.content_type);
}

void ClientSession::WatchClient(tcp::socket* upstream, asio::steady_timer* queue_timer) {
  ClientAbortWatch& w = *abort_;
  w.fired = false;
  w.upstream = upstream;
  w.queue_timer = queue_timer;
  // The wait on the client socket is armed by the worker's periodic tick (ArmClientWatch), not
  // here: arming costs an epoll_ctl, which a request answered within one tick never needs.
}

void ClientSession::ArmClientWatch() {
  ClientAbortWatch& w = *abort_;
  if (w.armed || (!w.upstream && !w.queue_timer)) return;
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

void ClientSession::StopWatching() {
  abort_->upstream = nullptr;
  abort_->queue_timer = nullptr;
}

}  // namespace tokenway
