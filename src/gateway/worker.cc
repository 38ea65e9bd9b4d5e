#include "gateway/worker.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "common/duration.h"
#include "common/log.h"
#include "gateway/client_session.h"

namespace tokenway {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
constexpr auto kTickInterval = std::chrono::milliseconds(50);
}

Worker::Worker(uint32_t id, GatewayShared& shared, WorkerMetrics& metrics)
    : id_(id),
      shared_(shared),
      metrics_(metrics),
      ioc_(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO)),
      rng_(std::random_device{}() ^ (static_cast<uint64_t>(id) << 32)) {
  acceptor_.emplace(*ioc_);
  json_client_.emplace(*ioc_);
  tick_timer_.emplace(*ioc_);
  route_embeddings_ = std::make_unique<RouteEmbeddings>(*json_client_);
}

Worker::~Worker() {
  Stop();
  acceptor_.reset();
  tick_timer_.reset();
  upstreams_.CloseAll();
  json_client_->CloseAll();
  ioc_.reset();  // destroys suspended sessions while the members they use still exist
}

tcp::endpoint Worker::Listen(const tcp::endpoint& at) {
  acceptor_->open(at.protocol());
  acceptor_->set_option(asio::socket_base::reuse_address(true));
  int one = 1;
  ::setsockopt(acceptor_->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  acceptor_->bind(at);
  acceptor_->listen(asio::socket_base::max_listen_connections);
  return acceptor_->local_endpoint();
}

void Worker::Start(std::shared_ptr<const Runtime> runtime) {
  runtime_ = std::move(runtime);
  if (acceptor_->is_open()) AcceptLoop();  // no listener: the endpoint-picker front door only
  Tick();
  thread_ = std::thread([this] { ioc_->run(); });
}

void Worker::Publish(std::shared_ptr<const Runtime> runtime) {
  asio::post(*ioc_, [this, runtime = std::move(runtime)]() mutable {
    if (current_pins_ > 0) retired_.push_back({std::move(runtime_), current_pins_});
    current_pins_ = 0;
    runtime_ = std::move(runtime);
  });
}

const Runtime* Worker::PinRuntime() {
  ++current_pins_;
  return runtime_.get();
}

void Worker::UnpinRuntime(const Runtime* runtime) {
  if (runtime == runtime_.get()) {
    --current_pins_;
    return;
  }
  for (size_t i = 0; i < retired_.size(); ++i) {
    if (retired_[i].runtime.get() != runtime) continue;
    if (--retired_[i].requests == 0) {
      retired_[i] = std::move(retired_.back());
      retired_.pop_back();
    }
    return;
  }
}

void Worker::BeginDrain() {
  asio::post(*ioc_, [this] {
    draining_ = true;
    boost::system::error_code ec;
    acceptor_->close(ec);
    // Copy: closing a session may remove it from the list.
    auto sessions = sessions_;
    for (auto* s : sessions) s->CloseIfIdle();
  });
}

void Worker::Stop() {
  if (!thread_.joinable()) return;
  ioc_->stop();
  thread_.join();
  access_log_.Flush(shared_.access_log.get());
}

void Worker::AddSession(ClientSession* s) {
  sessions_.push_back(s);
}

void Worker::RemoveSession(ClientSession* s) {
  auto it = std::find(sessions_.begin(), sessions_.end(), s);
  if (it != sessions_.end()) {
    *it = sessions_.back();
    sessions_.pop_back();
  }
}

void Worker::AcceptLoop() {
  acceptor_->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open() || draining_) return;
      // Out of descriptors or a transient failure: try again shortly rather than spin.
      LogWarn("accept failed: " + ec.message());
      auto retry = std::make_shared<asio::steady_timer>(*ioc_, std::chrono::milliseconds(50));
      retry->async_wait([this, retry](boost::system::error_code) { AcceptLoop(); });
      return;
    }
    const auto& limits = runtime_->config.limits;
    int64_t total = shared_.connections.fetch_add(1, std::memory_order_relaxed) + 1;
    if (total > static_cast<int64_t>(limits.max_connections) || draining_) {
      shared_.connections.fetch_sub(1, std::memory_order_relaxed);
      metrics_.Count(ClientError::kConnectionLimit);
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      auto session = std::make_unique<ClientSession>(*this, std::move(socket));
      asio::co_spawn(
          *ioc_,
          [](std::unique_ptr<ClientSession> s) -> asio::awaitable<void> {
            co_await s->Run();
          }(std::move(session)),
          asio::detached);
    }
    AcceptLoop();
  });
}

void Worker::Tick() {
  int64_t now = MonotonicNanos();
  sweep_.Sweep(now);
  for (ClientSession* s : sessions_) s->ArmClientWatch();
  if (runtime_) {
    upstreams_.CloseIdleBefore(now - runtime_->config.upstream.idle_connection_timeout.count());
    json_client_->CloseIdleBefore(now - runtime_->config.upstream.idle_connection_timeout.count());
  }
  access_log_.Flush(shared_.access_log.get());
  tick_timer_->expires_after(kTickInterval);
  tick_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) Tick();
  });
}

}  // namespace tokenway
