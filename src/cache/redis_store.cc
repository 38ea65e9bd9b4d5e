#include "cache/redis_store.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <vector>

namespace tokenway {

namespace asio = boost::asio;

struct RedisStore::Job {
  enum class Kind : uint8_t { kGet, kSet } kind = Kind::kGet;
  std::string key;
  std::string value;  // kSet: the entry; kGet: the answer
  int64_t ttl_ms = 0;
  // kGet: the waiting worker's event loop and timer (touched on that thread only), and the
  // outcome the connection thread publishes before it posts the wake-up.
  std::optional<asio::steady_timer> timer;
  std::atomic<int> state{0};  // 0 pending, 1 hit, 2 miss, 3 error
  // The job's owner while it is queued (the queue holds plain pointers).
  std::shared_ptr<Job> self;
};

namespace {

constexpr size_t kMaxBatch = 256;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void AppendHex64(std::string& out, uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xF]);
}

std::string HashHex(std::string_view s) {
  std::string out;
  AppendHex64(out, XXH3_64bits(s.data(), s.size()));
  return out;
}

bool SplitAddress(const std::string& address, std::string& host, int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  host = address.substr(0, colon);
  port = std::atoi(address.c_str() + colon + 1);
  return port > 0 && port < 65536;
}

redisContext* ConnectTo(const CacheRedisConfig& c, int64_t timeout_ms) {
  std::string host;
  int port = 0;
  if (!SplitAddress(c.address, host, port)) return nullptr;
  timeval tv{static_cast<time_t>(timeout_ms / 1000),
             static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  redisContext* ctx = redisConnectWithTimeout(host.c_str(), port, tv);
  if (!ctx || ctx->err) {
    if (ctx) redisFree(ctx);
    return nullptr;
  }
  redisSetTimeout(ctx, tv);
  return ctx;
}

}  // namespace

RedisStore::RedisStore(const CacheRedisConfig& config) : config_(config) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  thread_ = std::thread([this] { Loop(); });
}

RedisStore::~RedisStore() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void RedisStore::Configure(const CacheRedisConfig& config) {
  std::lock_guard lock(config_mu_);
  if (config.address == config_.address && config.timeout == config_.timeout &&
      config.key_prefix == config_.key_prefix) {
    return;
  }
  config_ = config;
  config_generation_.fetch_add(1, std::memory_order_release);
}

CacheRedisConfig RedisStore::Current() const {
  std::lock_guard lock(config_mu_);
  return config_;
}

std::string RedisStore::KeyFor(std::string_view prefix, std::string_view tenant,
                               std::string_view model, const CacheKey& key) {
  std::string out;
  out.reserve(prefix.size() + 16 * 4 + 3);
  out.append(prefix);
  AppendHex64(out, XXH3_64bits(tenant.data(), tenant.size()));
  out.push_back(':');
  AppendHex64(out, XXH3_64bits(model.data(), model.size()));
  out.push_back(':');
  AppendHex64(out, key.high);
  AppendHex64(out, key.low);
  return out;
}

void RedisStore::Wake() {
  if (!sleeping_.load(std::memory_order_acquire)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

asio::awaitable<RedisStore::Result> RedisStore::Get(std::string redis_key, int64_t timeout_ms,
                                                    CachedResponse& out) {
  if (stop_.load(std::memory_order_acquire)) co_return Result::kError;
  auto job = std::make_shared<Job>();
  job->kind = Job::Kind::kGet;
  job->key = std::move(redis_key);
  job->timer.emplace(co_await asio::this_coro::executor, std::chrono::milliseconds(timeout_ms));
  job->self = job;
  if (!queue_.push(job.get())) {
    job->self.reset();
    co_return Result::kError;
  }
  Wake();
  co_await job->timer->async_wait(asio::as_tuple(asio::use_awaitable));
  switch (job->state.load(std::memory_order_acquire)) {
    case 1:
      co_return DecodeCachedResponse(job->value, out) ? Result::kHit : Result::kError;
    case 2:
      co_return Result::kMiss;
    default:
      co_return Result::kError;  // timed out, or Redis failed
  }
}

bool RedisStore::Set(std::string redis_key, std::string value, int64_t ttl_ms) {
  if (stop_.load(std::memory_order_acquire)) return false;
  auto job = std::make_shared<Job>();
  job->kind = Job::Kind::kSet;
  job->key = std::move(redis_key);
  job->value = std::move(value);
  job->ttl_ms = ttl_ms;
  job->self = job;
  if (!queue_.push(job.get())) {
    job->self.reset();
    return false;
  }
  Wake();
  return true;
}

bool RedisStore::Connect() {
  if (ctx_) return true;
  const int64_t now = NowMs();
  if (now < next_connect_ms_) return false;
  connected_generation_ = config_generation_.load(std::memory_order_acquire);
  const CacheRedisConfig c = Current();
  ctx_ = ConnectTo(
      c, std::max<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(c.timeout).count(),
                           50));
  if (!ctx_) {
    next_connect_ms_ = now + backoff_ms_;
    backoff_ms_ = std::min<int64_t>(backoff_ms_ * 2, 2000);
    connected.store(false);
    return false;
  }
  backoff_ms_ = 50;
  connected.store(true);
  return true;
}

void RedisStore::Disconnect() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
  connected.store(false);
}

void RedisStore::Loop() {
  std::vector<Job*> batch;
  batch.reserve(kMaxBatch);
  auto answer = [](Job* job, int state) {
    std::shared_ptr<Job> owner = std::move(job->self);
    if (job->kind != Job::Kind::kGet) return;
    job->state.store(state, std::memory_order_release);
    // The posted handler takes the last reference here: the timer is destroyed on its own
    // thread.
    auto& timer = *job->timer;
    asio::post(timer.get_executor(), [owner = std::move(owner)] { owner->timer->cancel(); });
  };
  while (!stop_.load(std::memory_order_acquire)) {
    batch.clear();
    Job* job = nullptr;
    while (batch.size() < kMaxBatch && queue_.pop(job)) batch.push_back(job);
    if (batch.empty()) {
      sleeping_.store(true, std::memory_order_release);
      if (queue_.empty() && !stop_.load(std::memory_order_acquire)) {
        pollfd p{wake_fd_, POLLIN, 0};
        ::poll(&p, 1, 100);
        uint64_t drained;
        [[maybe_unused]] ssize_t n = ::read(wake_fd_, &drained, sizeof drained);
      }
      sleeping_.store(false, std::memory_order_release);
      continue;
    }
    if (ctx_ && connected_generation_ != config_generation_.load(std::memory_order_acquire)) {
      Disconnect();
      next_connect_ms_ = 0;
    }
    if (!Connect()) {
      for (Job* j : batch) answer(j, 3);
      continue;
    }
    // One pipelined write for the batch, then the replies in order.
    std::string ttl;
    for (Job* j : batch) {
      if (j->kind == Job::Kind::kGet) {
        redisAppendCommand(ctx_, "GET %b", j->key.data(), j->key.size());
      } else {
        ttl = std::to_string(std::max<int64_t>(j->ttl_ms, 1));
        redisAppendCommand(ctx_, "SET %b %b PX %s", j->key.data(), j->key.size(), j->value.data(),
                           j->value.size(), ttl.c_str());
      }
    }
    size_t i = 0;
    for (; i < batch.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) break;
      auto* reply = static_cast<redisReply*>(raw);
      Job* j = batch[i];
      int state = 3;
      if (reply->type == REDIS_REPLY_STRING) {
        j->value.assign(reply->str, reply->len);
        state = 1;
      } else if (reply->type == REDIS_REPLY_NIL) {
        state = 2;
      } else if (reply->type == REDIS_REPLY_STATUS) {
        state = 2;
      }
      freeReplyObject(reply);
      answer(j, state);
    }
    if (i < batch.size()) {
      Disconnect();
      for (; i < batch.size(); ++i) answer(batch[i], 3);
    }
  }
  // Stopped (the workers' loops still run): queued lookups are answered as errors.
  Job* job = nullptr;
  while (queue_.pop(job)) answer(job, 3);
  Disconnect();
}

void RedisStore::Stop() {
  if (stop_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

StatusOr<size_t> RedisStore::Purge(std::string_view tenant, std::string_view model) {
  const CacheRedisConfig c = Current();
  redisContext* ctx = ConnectTo(c, 1000);
  if (!ctx) return Status::Error("cannot reach the cache's Redis at " + c.address);
  std::string pattern = c.key_prefix;
  // Redis glob specials in the prefix are escaped; the hashes are plain hex.
  std::string escaped;
  for (char ch : pattern) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') escaped.push_back('\\');
    escaped.push_back(ch);
  }
  escaped.append(tenant.empty() ? "*" : HashHex(tenant));
  escaped.push_back(':');
  escaped.append(model.empty() ? "*" : HashHex(model));
  escaped.append(":*");
  size_t removed = 0;
  std::string cursor = "0";
  do {
    auto* reply = static_cast<redisReply*>(redisCommand(
        ctx, "SCAN %s MATCH %b COUNT 1000", cursor.c_str(), escaped.data(), escaped.size()));
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
      if (reply) freeReplyObject(reply);
      redisFree(ctx);
      return Status::Error("Redis SCAN failed during the cache purge");
    }
    cursor.assign(reply->element[0]->str, reply->element[0]->len);
    const redisReply* keys = reply->element[1];
    for (size_t k = 0; k < keys->elements; ++k) {
      auto* del = static_cast<redisReply*>(
          redisCommand(ctx, "UNLINK %b", keys->element[k]->str, keys->element[k]->len));
      if (del && del->type == REDIS_REPLY_INTEGER) removed += static_cast<size_t>(del->integer);
      if (del) freeReplyObject(del);
    }
    freeReplyObject(reply);
  } while (cursor != "0");
  redisFree(ctx);
  return removed;
}

}  // namespace tokenway
