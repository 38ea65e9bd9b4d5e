// RedisLimiter: the limiter backend that several gateway replicas share, so that they enforce
// one limit together. Counters live in Redis as one key per scope, limit and window (with a TTL
// past the window's end); a reservation is one atomic Lua script (EVALSHA) over every counter of
// the request, all or nothing, and a settlement another.
//
// hiredis is synchronous; one dedicated connection thread owns the connection and sends every
// command queued since its last turn in one pipelined write. A worker never blocks on Redis: it
// queues its reservation and waits on a timer of its own event loop for at most
// governance.redis.timeout. When Redis is unreachable or slow the request fails open (allowed,
// charged to Redis after the fact if it is back) or closed (refused), per configuration, and the
// thread reconnects with exponential back-off (50 ms to 2 s).
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "governance/limiter.h"

namespace tokenway {

class RedisLimiter final : public Limiter, public std::enable_shared_from_this<RedisLimiter> {
 public:
  RedisLimiter(const RedisLimiterConfig& config, int64_t window_ms);
  ~RedisLimiter() override;

  boost::asio::awaitable<Decision> Reserve(Reservation& r) override;
  void Settle(Reservation& r, int64_t input, int64_t output) override;
  void Release(Reservation& r) override;
  std::string_view name() const override { return "redis"; }

  bool Matches(const RedisLimiterConfig& c, int64_t window_ms) const;
  // Stops the connection thread; queued commands are dropped (never answered). Called before the
  // workers stop, so that no answer is ever posted to a worker's destroyed event loop.
  void Stop();

  // Counted for /metrics (any thread).
  std::atomic<uint64_t> backend_errors{0};  // commands that failed or timed out
  std::atomic<uint64_t> failed_open{0};     // requests allowed because Redis was unavailable
  std::atomic<uint64_t> failed_closed{0};   // requests refused because Redis was unavailable
  std::atomic<bool> connected{false};

  struct Reply {
    bool ok = false;
    std::vector<int64_t> values;
  };
  using Callback = std::function<void(Reply)>;

 private:
  struct Job {
    std::vector<std::string> argv;
    Callback done;  // null: fire and forget
  };
  void Enqueue(Job job);
  void Loop();
  bool Connect();
  void Disconnect();
  // The counters a reservation touches: key, amount, limit (scope, kind) in order.
  struct Counter {
    int scope;
    int kind;
    std::string key;
    int64_t amount;
    int64_t limit;
    int64_t ttl_ms;
  };
  void CountersOf(const Reservation& r, const Windows& w, int64_t now_ms,
                  std::vector<Counter>& out) const;
  void SendSettle(const Reservation& r, int64_t input, int64_t output, bool counted);

  const RedisLimiterConfig config_;
  const int64_t window_ms_;
  std::string host_;
  int port_ = 0;
  std::string reserve_sha_;
  std::string settle_sha_;
  redisContext* ctx_ = nullptr;  // connection thread only
  int64_t backoff_ms_ = 50;
  int64_t next_connect_ms_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Job> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tokenway
