// RedisStore: the response cache's shared store — entries in Redis under the same key scheme as
// the in-process store, with a TTL, so that every gateway replica serves what one of them
// stored.
//
// hiredis is synchronous, so one connection thread owns the connection. A worker never blocks
// on it and never takes a lock to reach it: it pushes a job onto a bounded lock-free queue,
// wakes the thread through an eventfd, and (for a lookup) waits on a timer of its own event
// loop for at most cache.redis.timeout; the thread answers by posting to that event loop. A
// lookup that times out, finds the queue full or Redis unreachable is a miss; a store that
// finds the queue full is skipped; both are counted. The thread reconnects with back-off
// (50 ms to 2 s). Purges (admin thread) use a connection of their own.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/lockfree/queue.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "cache/cache_config.h"
#include "cache/cache_key.h"
#include "cache/cached_response.h"
#include "tokenway/status.h"

struct redisContext;

namespace tokenway {

class RedisStore {
 public:
  static constexpr size_t kQueueJobs = 4096;

  explicit RedisStore(const CacheRedisConfig& config);
  ~RedisStore();
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Control thread (reload): new address, timeout or prefix; the connection thread reconnects.
  void Configure(const CacheRedisConfig& config);

  // The Redis key of an entry: the prefix, then hashes of the tenant and the model (so a purge
  // can match them), then the request key, all in hex.
  static std::string KeyFor(std::string_view prefix, std::string_view tenant,
                            std::string_view model, const CacheKey& key);

  enum class Result : uint8_t { kHit, kMiss, kError };
  // Worker, inside a coroutine on its event loop: the entry under `redis_key`, waiting at most
  // `timeout_ms`.
  boost::asio::awaitable<Result> Get(std::string redis_key, int64_t timeout_ms,
                                     CachedResponse& out);
  // Worker: queues SET key value PX ttl_ms without waiting; false when the queue is full.
  bool Set(std::string redis_key, std::string value, int64_t ttl_ms);

  // Admin thread: deletes the entries of `tenant` and/or `model` (empty: any); how many.
  StatusOr<size_t> Purge(std::string_view tenant, std::string_view model);

  // Control thread, at shutdown before the workers stop: no answer is posted afterwards.
  void Stop();

  std::atomic<bool> connected{false};

  struct Job;

 private:
  void Loop();
  bool Connect();
  void Disconnect();
  void Wake();
  CacheRedisConfig Current() const;

  mutable std::mutex config_mu_;  // control, admin and connection threads; never a worker
  CacheRedisConfig config_;
  std::atomic<uint64_t> config_generation_{0};
  boost::lockfree::queue<Job*, boost::lockfree::capacity<kQueueJobs>> queue_;
  int wake_fd_ = -1;
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_{false};
  redisContext* ctx_ = nullptr;  // connection thread only
  uint64_t connected_generation_ = 0;
  int64_t backoff_ms_ = 50;
  int64_t next_connect_ms_ = 0;
  std::thread thread_;
};

}  // namespace tokenway
