// FlowController: admission and flow control of one pool — whether a request is dispatched now,
// waits in a queue, or is turned away while the pool is saturated.
//
// A pool is saturated when no eligible endpoint has room: an endpoint has room when its engine
// signals are fresh, its waiting queue (the engine's count plus requests the gateway sent it
// since that scrape) is below `queue_threshold`, its KV-cache utilisation is below
// `kv_threshold` and, when `max_in_flight` is set, the gateway's in-flight count is below it.
// Stale or missing signals count as no room, as in GIE. Without engine signals
// (engine_metrics disabled) only `max_in_flight` decides.
//
// While the pool has room and nothing waits, Admit() says "dispatch" without taking a lock (the
// fast path every request takes on an unloaded pool). Otherwise sheddable requests (priority < 0)
// are refused — they never wait, also not behind others while room is being handed out — and
// the rest wait in per-priority bands of at most `max_queue` requests each. The
// highest band is always served first; within a band, flows (a tenant, a user) take turns, so one
// busy flow cannot starve a quiet one. Waiters are released one at a time: the released request
// picks its endpoint on its own worker (so the pick sees the freshest load), bumps that
// endpoint's counters, and calls DispatchDone(), which releases the next if there is still room.
// Completions and engine-metric scrapes call Kick(). A waiter that is not released within its TTL,
// or whose client leaves, calls Settle() and is removed.
//
// One controller per pool name for the life of the process (PoolStateRegistry), so queued requests
// survive a reload; settings and endpoints come from the caller's Runtime snapshot. All methods
// are thread-safe; the lock is taken only when something waits or the pool is saturated.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace tokenway {

struct EndpointState;

struct FlowSettings {
  uint32_t queue_threshold = 5;  // GIE's default
  double kv_threshold = 0.8;     // GIE's default
  uint32_t max_in_flight = 0;    // per endpoint; 0: no gateway-side limit
  uint32_t max_queue = 1024;     // per priority band
  bool use_engine_signals = true;
  int64_t stale_after_ns = 1'000'000'000;
};

// What the caller's snapshot knows about the pool.
struct FlowView {
  const FlowSettings* settings = nullptr;
  std::span<EndpointState* const> endpoints;
};

// A queued request. The gateway implements Wake(); the controller calls it (under its lock,
// from any thread) when the request is released, and it must only post to the waiter's own
// thread. The fields are the controller's, guarded by its lock.
class FlowWaiter {
 public:
  virtual ~FlowWaiter() = default;
  virtual void Wake() = 0;

 private:
  friend class FlowController;
  enum class State : uint8_t { kIdle, kQueued, kReleased };
  State state_ = State::kIdle;
  int32_t priority_ = 0;
  uint64_t flow_ = 0;
  int64_t enqueued_ns_ = 0;
};

class FlowController {
 public:
  enum class Admission { kDispatch, kQueued, kShed, kQueueFull };
  enum class Settlement { kReleased, kRemoved };

  explicit FlowController(std::string pool) : pool_(std::move(pool)) {}

  // A request arrives (worker thread). kDispatch: pick and forward now (also when no endpoint
  // is eligible at all, so the caller fails fast instead of queueing). kQueued: the controller
  // holds `waiter` until it calls Wake(); the caller then, or on TTL/abort, calls Settle().
  // kShed: sheddable and it cannot go at once (429). kQueueFull: its band is full (503).
  // `make_waiter` is called only when the request must queue, so a request that goes at once
  // allocates nothing.
  Admission Admit(const FlowView& view, int32_t priority, uint64_t flow,
                  const std::function<std::shared_ptr<FlowWaiter>()>& make_waiter, int64_t now_ns);
  Admission Admit(const FlowView& view, int32_t priority, uint64_t flow,
                  const std::shared_ptr<FlowWaiter>& waiter, int64_t now_ns) {
    return Admit(
        view, priority, flow, [&waiter] { return waiter; }, now_ns);
  }

  // Ends a wait (worker thread). kReleased: the waiter was released (maybe just now, racing
  // with its TTL): dispatch it and call DispatchDone(). kRemoved: it was still queued and has
  // been taken out; the caller answers (timeout or client gone). Records the queue time.
  Settlement Settle(FlowWaiter& waiter, int64_t now_ns);

  // The released request has picked its endpoint (or given up): release the next if there is
  // room.
  void DispatchDone(const FlowView& view, int64_t now_ns);

  // Room may have appeared: a request completed, or fresh engine signals arrived.
  void Kick(const FlowView& view, int64_t now_ns);

  // Does any endpoint of the view have room? Lock-free; also used by the admin view.
  static bool HasRoom(const FlowView& view, int64_t now_ns);

  const std::string& pool() const { return pool_; }

  // Drops every waiter without waking it: at shutdown, once the workers have stopped and before
  // their event loops (which the waiters' timers belong to) are destroyed.
  void DropAll();

  // Observability (admin thread).
  struct BandDepth {
    int32_t priority;
    uint32_t waiting;
    uint32_t flows;
  };
  std::vector<BandDepth> Depths() const;
  static constexpr std::array<double, 12> kQueueBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                           0.25,  0.5,   1,    2.5,   5,    10};
  struct Counters {
    std::atomic<uint64_t> dispatched_direct{0};
    std::atomic<uint64_t> queued{0};
    std::atomic<uint64_t> released{0};
    std::atomic<uint64_t> shed{0};
    std::atomic<uint64_t> queue_full{0};
    std::atomic<uint64_t> expired{0};  // removed after the TTL or because the client left
    std::array<std::atomic<uint64_t>, kQueueBuckets.size() + 1> queue_time_buckets{};
    std::atomic<uint64_t> queue_time_count{0};
    std::atomic<uint64_t> queue_time_sum_us{0};
  };
  const Counters& counters() const { return counters_; }
  uint32_t waiting() const { return queued_.load(std::memory_order_relaxed); }

 private:
  struct Flow {
    std::deque<std::shared_ptr<FlowWaiter>> waiters;
  };
  struct Band {
    std::unordered_map<uint64_t, Flow> flows;
    std::deque<uint64_t> turn;  // flows with waiters, in round-robin order
    uint32_t size = 0;
  };

  void ReleaseLocked(const FlowView& view, int64_t now_ns);
  std::shared_ptr<FlowWaiter> PopLocked();
  void ObserveQueueTime(int64_t nanos);

  const std::string pool_;
  mutable std::mutex mu_;
  std::map<int32_t, Band, std::greater<>> bands_;  // highest priority first
  std::atomic<uint32_t> queued_{0};
  std::atomic<bool> releasing_{false};  // a released waiter has not yet picked
  int64_t releasing_since_ns_ = 0;
  Counters counters_;
};

}  // namespace tokenway
