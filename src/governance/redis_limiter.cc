#include "governance/redis_limiter.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace tokenway {

namespace asio = boost::asio;

namespace {

// KEYS: counters; ARGV: amount, limit, ttl_ms per counter. All or nothing: either every counter
// has room and all are incremented ({1, use...}), or nothing changes ({0, index, use}). An amount
// of 0 (post-hoc charging) asks only whether the counter is already at its limit.
constexpr const char* kReserveScript = R"lua(
for i = 1, #KEYS do
  local amount = tonumber(ARGV[3*i-2])
  local limit = tonumber(ARGV[3*i-1])
  if limit > 0 then
    local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
    if (amount > 0 and cur + amount > limit) or (amount == 0 and cur >= limit) then
      return {0, i, cur}
    end
  end
end
local out = {1}
for i = 1, #KEYS do
  out[i+1] = redis.call('INCRBY', KEYS[i], ARGV[3*i-2])
  redis.call('PEXPIRE', KEYS[i], ARGV[3*i])
end
return out
)lua";

// KEYS: counters; ARGV: delta, ttl_ms per counter. Never leaves a counter below zero.
constexpr const char* kSettleScript = R"lua(
for i = 1, #KEYS do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2*i-1])
  if v < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIRE', KEYS[i], ARGV[2*i])
end
return 1
)lua";

constexpr const char* kKindTag[kLimitKinds] = {"rpm", "itpm",  "otpm", "tpm",
                                               "day", "month", "conc"};
constexpr int64_t kConcurrentTtlMs = 600'000;  // a crashed replica's holds expire

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A reservation's wait on its worker's event loop for the connection thread's answer.
struct PendingReserve {
  explicit PendingReserve(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  bool done = false;       // worker thread only
  bool abandoned = false;  // the wait timed out; a late success must be given back
  RedisLimiter::Reply reply;
};

}  // namespace

RedisLimiter::RedisLimiter(const RedisLimiterConfig& config, int64_t window_ms)
    : config_(config), window_ms_(window_ms) {
  size_t colon = config_.address.rfind(':');
  host_ = config_.address.substr(0, colon);
  port_ = std::atoi(config_.address.c_str() + colon + 1);
  thread_ = std::thread([this] { Loop(); });
}

RedisLimiter::~RedisLimiter() {
  Stop();
  Disconnect();
}

void RedisLimiter::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool RedisLimiter::Matches(const RedisLimiterConfig& c, int64_t window_ms) const {
  return c.address == config_.address && c.timeout == config_.timeout &&
         c.fail_open == config_.fail_open && c.key_prefix == config_.key_prefix &&
         window_ms == window_ms_;
}

void RedisLimiter::Enqueue(Job job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void RedisLimiter::Disconnect() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
  connected.store(false, std::memory_order_relaxed);
}

bool RedisLimiter::Connect() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(config_.timeout).count();
  timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
  ctx_ = redisConnectWithTimeout(host_.c_str(), port_, tv);
  if (!ctx_ || ctx_->err) {
    Disconnect();
    return false;
  }
  redisSetTimeout(ctx_, tv);
  for (auto [script, sha] :
       {std::pair{kReserveScript, &reserve_sha_}, std::pair{kSettleScript, &settle_sha_}}) {
    auto* reply = static_cast<redisReply*>(redisCommand(ctx_, "SCRIPT LOAD %s", script));
    bool ok = reply && reply->type == REDIS_REPLY_STRING;
    if (ok) sha->assign(reply->str, reply->len);
    if (reply) freeReplyObject(reply);
    if (!ok) {
      Disconnect();
      return false;
    }
  }
  connected.store(true, std::memory_order_relaxed);
  return true;
}

void RedisLimiter::Loop() {
  std::vector<Job> batch;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      batch.swap(queue_);
    }
    auto fail_all = [&](size_t from) {
      for (size_t i = from; i < batch.size(); ++i) {
        if (batch[i].done) batch[i].done(Reply{});
      }
      backend_errors.fetch_add(batch.size() - from, std::memory_order_relaxed);
    };
    if (!ctx_) {
      int64_t now = NowMs();
      if (now < next_connect_ms_ || !Connect()) {
        if (now >= next_connect_ms_) {
          next_connect_ms_ = now + backoff_ms_;
          backoff_ms_ = std::min<int64_t>(backoff_ms_ * 2, 2000);
        }
        fail_all(0);
        batch.clear();
        continue;
      }
      backoff_ms_ = 50;
    }
    for (Job& job : batch) {
      // The script's SHA is known only once connected: the first argument is a placeholder.
      job.argv[1] = job.argv[0] == "R" ? reserve_sha_ : settle_sha_;
      argv.clear();
      lens.clear();
      argv.push_back("EVALSHA");
      lens.push_back(7);
      for (size_t i = 1; i < job.argv.size(); ++i) {
        argv.push_back(job.argv[i].data());
        lens.push_back(job.argv[i].size());
      }
      redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) {
        Disconnect();
        next_connect_ms_ = NowMs() + backoff_ms_;
        fail_all(i);
        break;
      }
      auto* reply = static_cast<redisReply*>(raw);
      Reply out;
      if (reply->type == REDIS_REPLY_ARRAY) {
        out.ok = true;
        for (size_t k = 0; k < reply->elements; ++k) {
          out.values.push_back(reply->element[k]->integer);
        }
      } else if (reply->type == REDIS_REPLY_INTEGER) {
        out.ok = true;
        out.values.push_back(reply->integer);
      } else {
        backend_errors.fetch_add(1, std::memory_order_relaxed);
        if (reply->type == REDIS_REPLY_ERROR &&
            std::string_view(reply->str).rfind("NOSCRIPT", 0) == 0) {
          // The server lost its scripts (restart, SCRIPT FLUSH): load them on a new connection.
          freeReplyObject(reply);
          for (size_t k = i + 1; k < batch.size(); ++k) {
            void* rest = nullptr;
            if (redisGetReply(ctx_, &rest) == REDIS_OK && rest) freeReplyObject(rest);
          }
          Disconnect();
          if (batch[i].done) batch[i].done(Reply{});
          fail_all(i + 1);
          break;
        }
      }
      freeReplyObject(reply);
      if (batch[i].done) batch[i].done(std::move(out));
    }
    batch.clear();
  }
}

void RedisLimiter::CountersOf(const Reservation& r, const Windows& w, int64_t now_ms,
                              std::vector<Counter>& out) const {
  for (int s = 0; s < r.n_scopes; ++s) {
    const LimitScope& scope = *r.scopes[s];
    for (int k = 0; k < kLimitKinds; ++k) {
      LimitKind kind = static_cast<LimitKind>(k);
      int64_t limit = LimitOf(scope.limits, kind);
      if (limit <= 0) continue;
      Counter c{s,
                k,
                config_.key_prefix + scope.id + ":" + kKindTag[k],
                r.Amount(kind),
                limit,
                kConcurrentTtlMs};
      if (kind != LimitKind::kConcurrent) {
        c.key.append(":").append(std::to_string(w.index[k]));
        c.ttl_ms = w.end_ms[k] - now_ms + window_ms_;
      }
      out.push_back(std::move(c));
    }
  }
}

asio::awaitable<Decision> RedisLimiter::Reserve(Reservation& r) {
  Decision d;
  const int64_t now_ms = UnixMillis();
  r.windows = WindowsAt(now_ms, window_ms_);
  std::vector<Counter> counters;
  CountersOf(r, r.windows, now_ms, counters);
  if (counters.empty()) {
    r.held = true;
    r.counted = true;
    co_return d;
  }
  Job job;
  job.argv = {"R", "", std::to_string(counters.size())};
  for (const Counter& c : counters) job.argv.push_back(c.key);
  for (const Counter& c : counters) {
    job.argv.push_back(std::to_string(c.amount));
    job.argv.push_back(std::to_string(c.limit));
    job.argv.push_back(std::to_string(c.ttl_ms));
  }
  auto executor = co_await asio::this_coro::executor;
  auto pending = std::make_shared<PendingReserve>(executor);
  // The settlement that gives back a reservation Redis made after the request stopped waiting.
  std::vector<std::string> undo = {"S", "", std::to_string(counters.size())};
  for (const Counter& c : counters) undo.push_back(c.key);
  for (const Counter& c : counters) {
    undo.push_back(std::to_string(-c.amount));
    undo.push_back(std::to_string(c.ttl_ms));
  }
  std::weak_ptr<RedisLimiter> self = weak_from_this();
  job.done = [pending, self, undo = std::move(undo)](Reply reply) mutable {
    asio::post(pending->timer.get_executor(),
               [pending, self, undo = std::move(undo), reply = std::move(reply)]() mutable {
                 if (pending->abandoned) {
                   auto limiter = self.lock();
                   if (limiter && reply.ok && !reply.values.empty() && reply.values[0] == 1) {
                     limiter->Enqueue(Job{std::move(undo), nullptr});
                   }
                   return;
                 }
                 pending->reply = std::move(reply);
                 pending->done = true;
                 pending->timer.cancel();
               });
  };
  pending->timer.expires_after(config_.timeout);
  Enqueue(std::move(job));
  co_await pending->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  const Reply& reply = pending->reply;
  if (!pending->done || !reply.ok || reply.values.empty()) {
    if (!pending->done) {
      pending->abandoned = true;
      backend_errors.fetch_add(1, std::memory_order_relaxed);
    }
    if (config_.fail_open) {
      failed_open.fetch_add(1, std::memory_order_relaxed);
      d.failed_open = true;
      r.held = true;
      r.counted = false;
    } else {
      failed_closed.fetch_add(1, std::memory_order_relaxed);
      d.result = Decision::Result::kBackendDown;
      d.retry_after_ms = 1000;
    }
    co_return d;
  }
  int64_t used[Reservation::kMaxScopes][kLimitKinds];
  for (auto& row : used) std::fill(std::begin(row), std::end(row), -1);
  if (reply.values[0] == 1) {
    for (size_t i = 0; i < counters.size() && i + 1 < reply.values.size(); ++i) {
      used[counters[i].scope][counters[i].kind] = reply.values[i + 1];
    }
    r.held = true;
    r.counted = true;
    FillHeaderFields(r, used, now_ms, d);
    co_return d;
  }
  size_t index = reply.values.size() > 1 ? static_cast<size_t>(reply.values[1] - 1) : 0;
  if (index >= counters.size()) index = 0;
  const Counter& refused = counters[index];
  used[refused.scope][refused.kind] = reply.values.size() > 2 ? reply.values[2] : 0;
  d.result = Decision::Result::kLimited;
  d.limit = static_cast<LimitKind>(refused.kind);
  d.retry_after_ms = d.limit == LimitKind::kConcurrent
                         ? 1000
                         : std::max<int64_t>(1, r.windows.end_ms[refused.kind] - now_ms);
  FillHeaderFields(r, used, now_ms, d);
  co_return d;
}

void RedisLimiter::SendSettle(const Reservation& r, int64_t input, int64_t output, bool counted) {
  const int64_t now_ms = UnixMillis();
  Windows now = WindowsAt(now_ms, window_ms_);
  std::vector<Counter> reserved;
  CountersOf(r, r.windows, now_ms, reserved);
  std::vector<Counter> current;
  CountersOf(r, now, now_ms, current);
  Job job;
  job.argv = {"S", "", ""};
  std::vector<std::string> args;
  size_t n = 0;
  for (size_t i = 0; i < reserved.size(); ++i) {
    LimitKind kind = static_cast<LimitKind>(reserved[i].kind);
    int64_t delta = 0;
    switch (kind) {
      case LimitKind::kRequests:
        delta = counted ? 0 : 1;
        break;
      case LimitKind::kConcurrent:
        delta = counted ? -1 : 0;
        break;
      case LimitKind::kInputTokens:
        delta = input - (counted ? r.input : 0);
        break;
      case LimitKind::kOutputTokens:
        delta = output - (counted ? r.output : 0);
        break;
      default:
        delta = input + output - (counted ? r.input + r.output : 0);
        break;
    }
    if (delta == 0) continue;
    const Counter* target = &reserved[i];
    if (kind != LimitKind::kConcurrent &&
        now.index[reserved[i].kind] != r.windows.index[reserved[i].kind]) {
      if (delta < 0) continue;  // the over-reservation of a passed window is gone with it
      target = &current[i];
    }
    job.argv.push_back(target->key);
    args.push_back(std::to_string(delta));
    args.push_back(std::to_string(target->ttl_ms));
    ++n;
  }
  if (n == 0) return;
  job.argv[2] = std::to_string(n);
  for (auto& a : args) job.argv.push_back(std::move(a));
  Enqueue(std::move(job));
}

void RedisLimiter::Settle(Reservation& r, int64_t input, int64_t output) {
  if (!r.held) return;
  r.held = false;
  SendSettle(r, input, output, r.counted);
}

void RedisLimiter::Release(Reservation& r) {
  Settle(r, 0, 0);
}

}  // namespace tokenway
