// Phase 5a of the request path: admission under flow control (routing/flow_controller.h), for
// pools that have it.
//
// A request learns its priority (its tenant's when governance sets one, else the model's, or a
// lower one from the priority header) and its flow (fairness key), then asks the pool's
// FlowController. On an unsaturated pool with nothing waiting the answer is immediate, lock-free
// and allocation-free. Otherwise the request is shed (429), refused because its band is full
// (503), or waits on a timer that the controller's release, its TTL (503) or the client's
// departure (499) ends.
#include <xxhash.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>

#include "common/duration.h"
#include "common/scope_exit.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
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

asio::awaitable<PhaseResult> Admit(RequestContext& ctx, ClientLink& client) {
  const Pool& pool = *ctx.pool;
  const FlowControlConfig& fc = pool.flow_config;
  RequestRecord& rec = ctx.record;
  const RequestParser& parser = *ctx.parser;

  const Tenant* tenant = ctx.governance.tenant();
  int32_t priority = tenant && tenant->has_priority ? tenant->priority : ctx.route->priority;
  if (!fc.priority_header.empty()) {
    std::string_view given = parser.FindHeader(ctx.base, fc.priority_header);
    if (!given.empty()) {
      int32_t p = 0;
      auto [ptr, ec] = std::from_chars(given.data(), given.data() + given.size(), p);
      if (ec != std::errc() || ptr != given.data() + given.size()) {
        ctx.worker.metrics().Count(ClientError::kInvalidHeader);
        co_return ctx.Fail(400, "header " + fc.priority_header + " must be an integer",
                           "invalid_priority", fc.priority_header);
      }
      priority = std::min(p, fc.max_header_priority);
    }
  }
  rec.priority = priority;
  uint64_t flow = 0;
  if (fc.fairness_key == "user") {
    const std::string& user = ctx.inspected.user;
    if (!user.empty()) flow = XXH3_64bits(user.data(), user.size());
  } else if (fc.fairness_key == "tenant") {
    if (tenant) flow = XXH3_64bits(tenant->name.data(), tenant->name.size());
  } else if (fc.fairness_key.size() > 7 && fc.fairness_key.rfind("header:", 0) == 0) {
    std::string_view key = parser.FindHeader(ctx.base, std::string_view(fc.fairness_key).substr(7));
    if (!key.empty()) flow = XXH3_64bits(key.data(), key.size());
  }

  FlowController& controller = *pool.flow;
  const FlowView view = pool.flow_view();
  int64_t now = MonotonicNanos();
  std::shared_ptr<QueuedRequest> waiter;
  asio::io_context& io = ctx.worker.io();
  auto make_waiter = [&]() -> std::shared_ptr<FlowWaiter> {
    waiter = std::make_shared<QueuedRequest>(io);
    return waiter;
  };
  switch (controller.Admit(view, priority, flow, make_waiter, now)) {
    case FlowController::Admission::kDispatch:
      co_return PhaseResult::kContinue;
    case FlowController::Admission::kShed:
      co_return ctx.Fail(429,
                         "pool '" + pool.name +
                             "' is saturated and this request's priority is sheddable; retry later",
                         "pool_saturated");
    case FlowController::Admission::kQueueFull:
      co_return ctx.Fail(503,
                         "the queue of pool '" + pool.name + "' for priority " +
                             std::to_string(priority) + " is full; retry later",
                         "queue_full");
    case FlowController::Admission::kQueued:
      break;
  }

  // Wait for the release, the TTL, or the client leaving (the client watch cancels the timer).
  waiter->timer.expires_at(asio::steady_timer::clock_type::now() + fc.queue_ttl);
  client.WatchClient(nullptr, &waiter->timer);
  {
    ScopeExit stop_watch([&client] { client.StopWatching(); });
    co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  now = MonotonicNanos();
  rec.queue_ns = now - rec.start_ns;
  const bool released = controller.Settle(*waiter, now) == FlowController::Settlement::kReleased;
  if (released) ctx.flow_release = &pool;  // owes DispatchDone(), also if the client left
  if (client.deadline_passed()) {
    ctx.FinishFlowRelease();
    ctx.worker.metrics().Count(EppError::kDecisionTimeout);
    co_return ctx.Fail(503,
                       "request waited " + std::to_string(rec.queue_ns / 1'000'000) +
                           " ms in the queue of saturated pool '" + pool.name +
                           "', the endpoint picker's message_timeout",
                       "decision_timeout", {}, "Retry-After: 1\r\n");
  }
  if (client.client_gone()) {
    ctx.FinishFlowRelease();
    ctx.worker.metrics().Count(ClientError::kDisconnected);
    rec.status = 499;
    rec.error_code = "client_disconnected";
    client.CloseAfterResponse();
    co_return PhaseResult::kDone;
  }
  if (released) co_return PhaseResult::kContinue;
  co_return ctx.Fail(503,
                     "request waited " + std::to_string(rec.queue_ns / 1'000'000) +
                         " ms in the queue of saturated pool '" + pool.name + "'",
                     "queue_timeout");
}

}  // namespace tokenway
