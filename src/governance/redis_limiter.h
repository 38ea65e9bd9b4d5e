// RedisLimiter: the limiter backend that several gateway replicas share, so that they enforce
// one limit together. Counters live in Redis as one key per scope, limit and window (with a TTL
// past the window's end); a reservation is one atomic Lua script (EVALSHA) over every counter of
// the request, all or nothing, and a settlement another.
//
// hiredis is synchronous; one dedicated connection thread owns the connection and sends every
// command queued since its last turn in one pipelined write. A worker never blocks on Redis and
// never takes a lock to reach it: each thread that calls the limiter owns a producer slot (found
// through a thread_local index) holding a bounded single-producer/single-consumer queue of
// fixed-size POD jobs (scope ids, amounts, limits, windows, TTLs; the key strings are built on
// the connection thread) and a pool of pre-allocated reservation completions. The worker pushes
// its job and writes the connection thread's eventfd only when that thread is asleep; the
// connection thread writes the answer into the completion and posts it back to the worker's
// event loop with the handler's memory inside the completion (no allocation). The worker waits
// on a timer of its own event loop for at most governance.redis.timeout. When Redis is
// unreachable or slow, or the worker's queue is full, the request fails open (allowed, charged
// to Redis after the fact if it is back) or closed (refused), per configuration, and the thread
// reconnects with exponential back-off (50 ms to 2 s).
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "governance/limiter.h"

namespace tokenway {

class RedisLimiter final : public Limiter {
 public:
  // Threads that may call Reserve/Settle/Release over the process's life at once (each takes a
  // producer index until it exits); a thread beyond them fails open or closed, counted.
  static constexpr int kMaxProducers = 128;
  // Jobs (reservations and settlements) one thread may have queued for the connection thread,
  // and reservations one thread may have waiting for an answer.
  static constexpr uint32_t kQueueJobs = 256;
  static constexpr uint32_t kCompletions = 256;
  // A scope id longer than this is stored in Redis keys as "#" and its 64-bit xxh3 hash in hex.
  static constexpr size_t kMaxScopeIdBytes = 190;

  RedisLimiter(const RedisLimiterConfig& config, int64_t window_ms);
  ~RedisLimiter() override;

  boost::asio::awaitable<Decision> Reserve(Reservation& r) override;
  void Settle(Reservation& r, int64_t input, int64_t output) override;
  void Release(Reservation& r) override;
  std::string_view name() const override { return "redis"; }

  bool Matches(const RedisLimiterConfig& c, int64_t window_ms) const;
  // Stops the connection thread; queued commands are dropped (never answered) and later calls
  // fail open or closed at once. Called before the workers stop, so that no answer is ever
  // posted to a worker's destroyed event loop.
  void Stop();

  // Counted for /metrics (any thread).
  std::atomic<uint64_t> backend_errors{0};  // commands that failed, timed out or found no room
  std::atomic<uint64_t> failed_open{0};     // requests allowed because Redis was unavailable
  std::atomic<uint64_t> failed_closed{0};   // requests refused because Redis was unavailable
  std::atomic<uint64_t> queue_full{0};      // jobs refused because the thread's queue was full
  std::atomic<bool> connected{false};

  struct Job;
  struct Completion;
  struct ProducerSlot;

 private:
  // Worker: this thread's slot (created on first use); null when every index is taken.
  ProducerSlot* Slot();
  // Worker: queues `job` (already filled in the slot's next queue entry) and wakes the thread.
  void Publish(ProducerSlot& slot);
  void Wake();
  // Worker: a decision for a reservation the backend could not answer.
  Decision Unavailable(Reservation& r);
  void SendSettle(const Reservation& r, int64_t input, int64_t output, bool counted);

  // Connection thread.
  void Loop();
  size_t Collect();
  void Process();
  void FailFrom(size_t first);
  void Answer(const Job& job, const redisReply* reply);
  bool Connect();
  void Disconnect();
  void AppendCommand(const Job& job);

  const RedisLimiterConfig config_;
  const int64_t window_ms_;
  std::string host_;
  int port_ = 0;
  std::string reserve_sha_;
  std::string settle_sha_;
  redisContext* ctx_ = nullptr;  // connection thread only
  int64_t backoff_ms_ = 50;
  int64_t next_connect_ms_ = 0;

  // Indexed by producer index; each slot is created by its thread on first use and freed with
  // the limiter.
  std::unique_ptr<std::atomic<ProducerSlot*>[]> slots_;
  std::atomic<int> slot_count_{0};  // highest producer index in use + 1 (never shrinks)
  int wake_fd_ = -1;                // eventfd: a worker's or Stop()'s wake-up call
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_{false};
  // Connection thread only: the jobs of one turn, and undo settlements of answers nobody waits
  // for any more (a reservation that succeeded after its request gave up waiting).
  std::vector<Job> batch_;
  std::vector<Job> undo_;
  std::string scratch_;
  std::vector<const char*> argv_;
  std::vector<size_t> lens_;
  std::thread thread_;
};

}  // namespace tokenway
