// Phase 5a of the request path: admission under flow control (routing/flow_controller.h).
//
// A request to a flow-controlled pool learns its priority (its tenant's when governance sets one,
// else the model's, or a lower one from the priority header) and its flow (fairness key), then asks
// the pool's FlowController. On an unsaturated pool with nothing waiting the answer is immediate
// and lock-free. Otherwise the request is shed (429), refused because its band is full (503), or
// waits on a timer that the controller's release, its TTL (503) or the client's departure (499)
// ends.
#include <xxhash.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>

#include "common/duration.h"
#include "common/scope_exit.h"
#include "gateway/client_session.h"
#include "gateway/worker.h"

namespace tokenway {

namespace asio = boost::asio;

namespace {

// A request waiting in a flow-control queue. Wake() runs on whichever thread releases it and
// only posts to the request's own worker, where the timer lives.
class QueuedRequest final : public FlowWaiter, public std::enable_shared_from_this<QueuedRequest> {
 public:
  explicit QueuedRequest(asio::io_context& io) : timer(io) {}
  void Wake() override {
    asio::post(timer.get_executor(), [self = shared_from_this()] {
      self->released = true;
      self->timer.cancel();
    });
  }
  asio::steady_timer timer;
  bool released = false;  // worker thread only
};

}  // namespace

asio::awaitable<bool> ClientSession::Admit(const RequestParser& parser, const Pool& pool,
                                           const ModelRoute& route) {
  const FlowControlConfig& fc = pool.flow_config;
  RequestRecord& rec = record_;
  const char* base = buffer_.data();

  const Tenant* tenant = governance_.tenant();
  int32_t priority = tenant && tenant->has_priority ? tenant->priority : route.priority;
  if (!fc.priority_header.empty()) {
    std::string_view given = parser.FindHeader(base, fc.priority_header);
    if (!given.empty()) {
      int32_t p = 0;
      auto [ptr, ec] = std::from_chars(given.data(), given.data() + given.size(), p);
      if (ec != std::errc() || ptr != given.data() + given.size()) {
        worker_.metrics().Count(ClientError::kInvalidHeader);
        rec.status = 400;
        rec.error_code = "invalid_priority";
        co_await WriteError(400, "header " + fc.priority_header + " must be an integer",
                            "invalid_priority", fc.priority_header);
        co_return false;
      }
      priority = std::min(p, fc.max_header_priority);
    }
  }
  rec.priority = priority;
  uint64_t flow = 0;
  if (fc.fairness_key == "user") {
    if (!inspected_.user.empty())
      flow = XXH3_64bits(inspected_.user.data(), inspected_.user.size());
  } else if (fc.fairness_key == "tenant") {
    if (tenant) flow = XXH3_64bits(tenant->name.data(), tenant->name.size());
  } else if (fc.fairness_key.size() > 7 && fc.fairness_key.rfind("header:", 0) == 0) {
    std::string_view key = parser.FindHeader(base, std::string_view(fc.fairness_key).substr(7));
    if (!key.empty()) flow = XXH3_64bits(key.data(), key.size());
  }

  FlowController& controller = *pool.flow;
  const FlowView view = pool.flow_view();
  int64_t now = MonotonicNanos();
  auto waiter = std::make_shared<QueuedRequest>(worker_.io());
  switch (controller.Admit(view, priority, flow, waiter, now)) {
    case FlowController::Admission::kDispatch:
      co_return true;
    case FlowController::Admission::kShed:
      rec.status = 429;
      rec.error_code = "pool_saturated";
      co_await WriteError(
          429,
          "pool '" + pool.name +
              "' is saturated and this request's priority is sheddable; retry later",
          "pool_saturated");
      co_return false;
    case FlowController::Admission::kQueueFull:
      rec.status = 503;
      rec.error_code = "queue_full";
      co_await WriteError(503,
                          "the queue of pool '" + pool.name + "' for priority " +
                              std::to_string(priority) + " is full; retry later",
                          "queue_full");
      co_return false;
    case FlowController::Admission::kQueued:
      break;
  }

  // Wait for the release, the TTL, or the client leaving (the abort watch cancels the timer).
  waiter->timer.expires_at(asio::steady_timer::clock_type::now() + fc.queue_ttl);
  StartAbortWatch(nullptr, &waiter->timer);
  {
    ScopeExit stop_watch([this] { StopAbortWatch(); });
    co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  now = MonotonicNanos();
  rec.queue_ns = now - rec.start_ns;
  const bool released = controller.Settle(*waiter, now) == FlowController::Settlement::kReleased;
  if (released) flow_release_ = &pool;  // owes DispatchDone(), also if the client left
  if (abort_->fired) {
    FinishFlowRelease();
    worker_.metrics().Count(ClientError::kDisconnected);
    rec.status = 499;
    rec.error_code = "client_disconnected";
    keep_alive_ = false;
    co_return false;
  }
  if (released) co_return true;
  rec.status = 503;
  rec.error_code = "queue_timeout";
  co_await WriteError(503,
                      "request waited " + std::to_string(rec.queue_ns / 1'000'000) +
                          " ms in the queue of saturated pool '" + pool.name + "'",
                      "queue_timeout");
  co_return false;
}

}  // namespace tokenway
