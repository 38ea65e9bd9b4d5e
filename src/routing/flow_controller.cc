#include "routing/flow_controller.h"

#include <algorithm>

#include "routing/endpoint_state.h"

namespace tokenway {

namespace {

// A released waiter that has not called DispatchDone() within this long (its worker stalled or
// it vanished) no longer holds up the queue.
constexpr int64_t kReleaseGraceNs = 100'000'000;

}  // namespace

bool FlowController::HasRoom(const FlowView& view, int64_t now_ns) {
  const FlowSettings& s = *view.settings;
  for (const EndpointState* e : view.endpoints) {
    if (!e->Eligible(now_ns)) continue;
    if (s.max_in_flight != 0 &&
        e->in_flight.load(std::memory_order_relaxed) >= static_cast<int32_t>(s.max_in_flight)) {
      continue;
    }
    if (s.use_engine_signals) {
      const EngineSignals& g = e->engine;
      if (!g.Fresh(now_ns, s.stale_after_ns)) continue;
      int64_t waiting = g.waiting.load(std::memory_order_relaxed) +
                        e->sent_since_scrape.load(std::memory_order_relaxed);
      if (waiting >= static_cast<int64_t>(s.queue_threshold)) continue;
      if (g.kv_utilisation.load(std::memory_order_relaxed) >= s.kv_threshold) continue;
    }
    return true;
  }
  return false;
}

FlowController::Admission FlowController::Admit(
    const FlowView& view, int32_t priority, uint64_t flow,
    const std::function<std::shared_ptr<FlowWaiter>()>& make_waiter, int64_t now_ns) {
  if (queued_.load(std::memory_order_acquire) == 0 && !releasing_.load(std::memory_order_acquire) &&
      HasRoom(view, now_ns)) {
    counters_.dispatched_direct.fetch_add(1, std::memory_order_relaxed);
    return Admission::kDispatch;
  }
  // With no eligible endpoint at all, waiting cannot help: the route step answers 503 at once.
  bool any_eligible = false;
  for (const EndpointState* e : view.endpoints) any_eligible = any_eligible || e->Eligible(now_ns);
  if (!any_eligible) return Admission::kDispatch;
  std::lock_guard lock(mu_);
  bool room = HasRoom(view, now_ns);
  if (priority < 0) {
    // Sheddable requests never wait: through if they could go now, else refused.
    if (room && queued_.load(std::memory_order_relaxed) == 0) {
      counters_.dispatched_direct.fetch_add(1, std::memory_order_relaxed);
      return Admission::kDispatch;
    }
    counters_.shed.fetch_add(1, std::memory_order_relaxed);
    return Admission::kShed;
  }
  Band& band = bands_[priority];
  if (band.size >= view.settings->max_queue) {
    if (band.size == 0) bands_.erase(priority);
    counters_.queue_full.fetch_add(1, std::memory_order_relaxed);
    return Admission::kQueueFull;
  }
  std::shared_ptr<FlowWaiter> waiter = make_waiter();
  Flow& f = band.flows[flow];
  if (f.waiters.empty()) band.turn.push_back(flow);
  f.waiters.push_back(waiter);
  ++band.size;
  waiter->state_ = FlowWaiter::State::kQueued;
  waiter->priority_ = priority;
  waiter->flow_ = flow;
  waiter->enqueued_ns_ = now_ns;
  queued_.fetch_add(1, std::memory_order_release);
  counters_.queued.fetch_add(1, std::memory_order_relaxed);
  ReleaseLocked(view, now_ns);
  return Admission::kQueued;
}

FlowController::Settlement FlowController::Settle(FlowWaiter& waiter, int64_t now_ns) {
  std::lock_guard lock(mu_);
  ObserveQueueTime(now_ns - waiter.enqueued_ns_);
  if (waiter.state_ == FlowWaiter::State::kReleased) {
    waiter.state_ = FlowWaiter::State::kIdle;
    return Settlement::kReleased;
  }
  if (waiter.state_ == FlowWaiter::State::kQueued) {
    auto b = bands_.find(waiter.priority_);
    if (b != bands_.end()) {
      Band& band = b->second;
      auto f = band.flows.find(waiter.flow_);
      if (f != band.flows.end()) {
        auto& q = f->second.waiters;
        auto it =
            std::find_if(q.begin(), q.end(), [&](const auto& w) { return w.get() == &waiter; });
        if (it != q.end()) {
          q.erase(it);
          --band.size;
          queued_.fetch_sub(1, std::memory_order_release);
        }
        if (q.empty()) {
          band.flows.erase(f);
          band.turn.erase(std::remove(band.turn.begin(), band.turn.end(), waiter.flow_),
                          band.turn.end());
        }
      }
      if (band.size == 0) bands_.erase(b);
    }
    counters_.expired.fetch_add(1, std::memory_order_relaxed);
  }
  waiter.state_ = FlowWaiter::State::kIdle;
  return Settlement::kRemoved;
}

void FlowController::DispatchDone(const FlowView& view, int64_t now_ns) {
  std::lock_guard lock(mu_);
  releasing_.store(false, std::memory_order_release);
  ReleaseLocked(view, now_ns);
}

void FlowController::Kick(const FlowView& view, int64_t now_ns) {
  if (queued_.load(std::memory_order_acquire) == 0) return;
  std::lock_guard lock(mu_);
  ReleaseLocked(view, now_ns);
}

void FlowController::ReleaseLocked(const FlowView& view, int64_t now_ns) {
  if (queued_.load(std::memory_order_relaxed) == 0) return;
  if (releasing_.load(std::memory_order_relaxed) &&
      now_ns - releasing_since_ns_ < kReleaseGraceNs) {
    return;
  }
  if (!HasRoom(view, now_ns)) return;
  std::shared_ptr<FlowWaiter> w = PopLocked();
  if (!w) return;
  w->state_ = FlowWaiter::State::kReleased;
  releasing_.store(true, std::memory_order_release);
  releasing_since_ns_ = now_ns;
  counters_.released.fetch_add(1, std::memory_order_relaxed);
  w->Wake();
}

std::shared_ptr<FlowWaiter> FlowController::PopLocked() {
  for (auto b = bands_.begin(); b != bands_.end();) {
    Band& band = b->second;
    if (band.size == 0) {
      b = bands_.erase(b);
      continue;
    }
    uint64_t flow = band.turn.front();
    band.turn.pop_front();
    Flow& f = band.flows[flow];
    std::shared_ptr<FlowWaiter> w = std::move(f.waiters.front());
    f.waiters.pop_front();
    if (f.waiters.empty()) {
      band.flows.erase(flow);
    } else {
      band.turn.push_back(flow);  // its next request waits for the other flows' turns
    }
    --band.size;
    queued_.fetch_sub(1, std::memory_order_release);
    if (band.size == 0) bands_.erase(b);
    return w;
  }
  return nullptr;
}

void FlowController::ObserveQueueTime(int64_t nanos) {
  double seconds = static_cast<double>(std::max<int64_t>(nanos, 0)) / 1e9;
  size_t i = 0;
  while (i < kQueueBuckets.size() && seconds > kQueueBuckets[i]) ++i;
  counters_.queue_time_buckets[i].fetch_add(1, std::memory_order_relaxed);
  counters_.queue_time_count.fetch_add(1, std::memory_order_relaxed);
  counters_.queue_time_sum_us.fetch_add(static_cast<uint64_t>(seconds * 1e6),
                                        std::memory_order_relaxed);
}

void FlowController::DropAll() {
  std::lock_guard lock(mu_);
  bands_.clear();
  queued_.store(0, std::memory_order_release);
}

std::vector<FlowController::BandDepth> FlowController::Depths() const {
  std::lock_guard lock(mu_);
  std::vector<BandDepth> out;
  for (const auto& [priority, band] : bands_) {
    out.push_back({priority, band.size, static_cast<uint32_t>(band.flows.size())});
  }
  return out;
}

}  // namespace tokenway
