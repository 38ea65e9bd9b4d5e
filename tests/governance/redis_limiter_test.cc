// RedisLimiter against a real redis-server started by the test on a free loopback port (skipped
// when redis-server is not installed): all-or-nothing reservations from several worker threads
// with zero overshoot, settlement, fail open / closed, queue-full accounting, and a reservation
// Redis grants after its request stopped waiting being given back.
#include "governance/redis_limiter.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_env.h"

namespace tokenway {
namespace {

namespace asio = boost::asio;
constexpr int64_t kWindow = 60'000;

int FreePort() {
  return testing::UnusedLoopbackPort();
}

bool HaveRedis() {
  return ::access("/usr/bin/redis-server", X_OK) == 0 ||
         ::access("/usr/local/bin/redis-server", X_OK) == 0;
}

// A redis-server without persistence, and a plain connection to inspect its counters.
class RedisServer {
 public:
  RedisServer() : port_(FreePort()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--loglevel", "warning",
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !ctx_; ++i) {
      redisContext* c = redisConnect("127.0.0.1", port_);
      if (c && !c->err) {
        ctx_ = c;
      } else {
        if (c) redisFree(c);
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    }
  }
  ~RedisServer() {
    if (ctx_) redisFree(ctx_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool ok() const { return ctx_ != nullptr; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int64_t Get(const std::string& key) {
    auto* r = static_cast<redisReply*>(redisCommand(ctx_, "GET %s", key.c_str()));
    int64_t v = r && r->type == REDIS_REPLY_STRING ? std::stoll(std::string(r->str, r->len)) : 0;
    if (r) freeReplyObject(r);
    return v;
  }
  int64_t CountKeys(const std::string& pattern) {
    auto* r = static_cast<redisReply*>(redisCommand(ctx_, "KEYS %s", pattern.c_str()));
    int64_t n = r && r->type == REDIS_REPLY_ARRAY ? static_cast<int64_t>(r->elements) : -1;
    if (r) freeReplyObject(r);
    return n;
  }
  void Command(const std::string& text) {
    auto* r = static_cast<redisReply*>(redisCommand(ctx_, text.c_str()));
    if (r) freeReplyObject(r);
  }

 private:
  int port_;
  pid_t pid_ = -1;
  redisContext* ctx_ = nullptr;
};

RedisLimiterConfig Config(const std::string& address, std::chrono::milliseconds timeout,
                          bool fail_open = true) {
  RedisLimiterConfig c;
  c.address = address;
  c.timeout = timeout;
  c.fail_open = fail_open;
  c.key_prefix = "test:";
  return c;
}

// Runs Reserve on a fresh event loop of this thread.
Decision ReserveNow(RedisLimiter& limiter, Reservation& r) {
  asio::io_context io;
  Decision out;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { out = co_await limiter.Reserve(r); }, asio::detached);
  io.run();
  return out;
}

std::string Key(const std::string& id, const char* tag, int64_t window = -1) {
  std::string k = "test:" + id + ":" + tag;
  if (window >= 0) k += ":" + std::to_string(window);
  return k;
}

class RedisLimiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRedis()) GTEST_SKIP() << "redis-server is not installed";
    redis_ = std::make_unique<RedisServer>();
    ASSERT_TRUE(redis_->ok()) << "redis-server did not start";
  }
  LimitScope Scope(const std::string& id, LimitSpec spec) {
    LimitScope s;
    s.id = id;
    s.limits = spec;
    return s;
  }
  std::unique_ptr<RedisServer> redis_;
};

TEST_F(RedisLimiterTest, ReservesAllOrNothingAndSettlesToRealUsage) {
  LimitSpec spec;
  spec.tokens_per_minute = 1000;
  spec.concurrent_requests = 5;
  LimitScope tenant = Scope("t:acme", spec);
  LimitSpec model_spec;
  model_spec.requests_per_minute = 2;
  LimitScope model = Scope("m:acme:llama", model_spec);
  RedisLimiter limiter(Config(redis_->address(), std::chrono::seconds(2)), kWindow);

  Reservation r1;
  r1.scopes[r1.n_scopes++] = &tenant;
  r1.scopes[r1.n_scopes++] = &model;
  r1.input = 100;
  r1.output = 300;
  Decision d = ReserveNow(limiter, r1);
  ASSERT_EQ(d.result, Decision::Result::kAllowed);
  EXPECT_FALSE(d.failed_open);
  EXPECT_TRUE(r1.held);
  EXPECT_TRUE(r1.counted);
  EXPECT_EQ(d.limit_tokens, 1000);
  EXPECT_EQ(d.remaining_tokens, 600);
  EXPECT_EQ(d.limit_requests, 2);
  EXPECT_EQ(d.remaining_requests, 1);
  const int64_t w = r1.windows.index[static_cast<int>(LimitKind::kTokens)];
  EXPECT_EQ(redis_->Get(Key("t:acme", "tpm", w)), 400);
  EXPECT_EQ(redis_->Get(Key("t:acme", "conc")), 1);

  // 700 tokens do not fit next to 400: nothing is counted, not even the model's request.
  Reservation r2 = r1;
  r2.held = false;
  r2.input = 200;
  r2.output = 500;
  d = ReserveNow(limiter, r2);
  EXPECT_EQ(d.result, Decision::Result::kLimited);
  EXPECT_EQ(d.limit, LimitKind::kTokens);
  EXPECT_GT(d.retry_after_ms, 0);
  EXPECT_FALSE(r2.held);
  EXPECT_EQ(redis_->Get(Key("m:acme:llama", "rpm", w)), 1);

  limiter.Settle(r1, 90, 20);
  EXPECT_FALSE(r1.held);
  // Settlements are asynchronous: wait for the connection thread to send it.
  for (int i = 0; i < 200 && redis_->Get(Key("t:acme", "tpm", w)) != 110; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(redis_->Get(Key("t:acme", "tpm", w)), 110);
  EXPECT_EQ(redis_->Get(Key("t:acme", "conc")), 0);
}

TEST_F(RedisLimiterTest, WorkersReservingAtOnceNeverOvershoot) {
  LimitSpec spec;
  spec.tokens_per_minute = 10'000;
  LimitScope tenant = Scope("t:race", spec);
  RedisLimiter limiter(Config(redis_->address(), std::chrono::seconds(5)), kWindow);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 120;  // 480 requests of 100 tokens against room for 100
  std::atomic<int> allowed{0};
  std::atomic<int> limited{0};
  std::atomic<int> other{0};
  std::vector<std::vector<Reservation>> held(kThreads, std::vector<Reservation>(kPerThread));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      asio::io_context io;
      std::vector<Reservation>& rs = held[t];
      for (auto& r : rs) {
        r.scopes[r.n_scopes++] = &tenant;
        r.input = 40;
        r.output = 60;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
              Decision d = co_await limiter.Reserve(r);
              if (d.result == Decision::Result::kAllowed && !d.failed_open) {
                allowed.fetch_add(1);
              } else if (d.result == Decision::Result::kLimited) {
                limited.fetch_add(1);
              } else {
                other.fetch_add(1);
              }
            },
            asio::detached);
      }
      io.run();
    });
  }
  for (auto& t : threads) t.join();
  // Given back only now: a release while others still reserve would make room for them.
  for (auto& rs : held) {
    for (auto& r : rs) limiter.Release(r);
  }
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(allowed.load(), 100);
  EXPECT_EQ(limited.load(), kThreads * kPerThread - 100);
  EXPECT_EQ(limiter.queue_full.load(), 0u);
  EXPECT_EQ(limiter.backend_errors.load(), 0u);
}

TEST_F(RedisLimiterTest, UnreachableRedisFailsOpenOrClosedPerConfiguration) {
  LimitSpec spec;
  spec.requests_per_minute = 10;
  LimitScope tenant = Scope("t:down", spec);
  const std::string nowhere = "127.0.0.1:" + std::to_string(FreePort());
  {
    RedisLimiter open(Config(nowhere, std::chrono::milliseconds(200), true), kWindow);
    Reservation r;
    r.scopes[r.n_scopes++] = &tenant;
    Decision d = ReserveNow(open, r);
    EXPECT_EQ(d.result, Decision::Result::kAllowed);
    EXPECT_TRUE(d.failed_open);
    EXPECT_TRUE(r.held);
    EXPECT_FALSE(r.counted);
    EXPECT_EQ(open.failed_open.load(), 1u);
    EXPECT_GE(open.backend_errors.load(), 1u);
    EXPECT_FALSE(open.connected.load());
    open.Settle(r, 10, 10);  // charged after the fact; Redis is still away: nothing breaks
  }
  {
    RedisLimiter closed(Config(nowhere, std::chrono::milliseconds(200), false), kWindow);
    Reservation r;
    r.scopes[r.n_scopes++] = &tenant;
    Decision d = ReserveNow(closed, r);
    EXPECT_EQ(d.result, Decision::Result::kBackendDown);
    EXPECT_FALSE(r.held);
    EXPECT_EQ(closed.failed_closed.load(), 1u);
  }
}

TEST_F(RedisLimiterTest, FullQueueFailsTheRequestAndCountsIt) {
  LimitSpec spec;
  spec.requests_per_minute = 100'000;
  LimitScope tenant = Scope("t:full", spec);
  RedisLimiter limiter(Config(redis_->address(), std::chrono::seconds(3), false), kWindow);
  // Redis stops answering (its clients are paused) while one worker sends more reservations
  // than it may have waiting.
  redis_->Command("CLIENT PAUSE 1500 ALL");
  constexpr uint32_t kRequests = RedisLimiter::kCompletions + 40;
  asio::io_context io;
  std::vector<Reservation> rs(kRequests);
  int allowed = 0, down = 0;
  for (auto& r : rs) {
    r.scopes[r.n_scopes++] = &tenant;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          Decision d = co_await limiter.Reserve(r);
          (d.result == Decision::Result::kAllowed ? allowed : down)++;
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(limiter.queue_full.load(), 40u);
  EXPECT_EQ(limiter.failed_closed.load(), 40u);
  EXPECT_EQ(down, 40);
  EXPECT_EQ(allowed, static_cast<int>(RedisLimiter::kCompletions));
  for (auto& r : rs) limiter.Release(r);
}

TEST_F(RedisLimiterTest, ReservationGrantedAfterTheRequestStoppedWaitingIsGivenBack) {
  LimitSpec spec;
  spec.concurrent_requests = 10;
  LimitScope tenant = Scope("t:late", spec);
  RedisLimiter limiter(Config(redis_->address(), std::chrono::seconds(3)), kWindow);
  // Connect first, so that the pause below holds the reservation itself.
  {
    Reservation warm;
    warm.scopes[warm.n_scopes++] = &tenant;
    ASSERT_EQ(ReserveNow(limiter, warm).result, Decision::Result::kAllowed);
    limiter.Release(warm);
  }
  for (int i = 0; i < 200 && redis_->Get(Key("t:late", "conc")) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  redis_->Command("CLIENT PAUSE 400 ALL");
  asio::io_context io;
  Reservation r;
  r.scopes[r.n_scopes++] = &tenant;
  bool reserve_won = true;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer give_up(io, std::chrono::milliseconds(50));
        auto result = co_await (limiter.Reserve(r) || give_up.async_wait(asio::use_awaitable));
        reserve_won = result.index() == 0;
      },
      asio::detached);
  io.run();
  EXPECT_FALSE(reserve_won);
  // Redis runs the reservation once the pause ends; nobody waits for it, so it is undone.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  int64_t conc = -1;
  for (int i = 0; i < 300 && (conc = redis_->Get(Key("t:late", "conc"))) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(conc, 0);
  EXPECT_EQ(limiter.failed_open.load(), 1u);  // the request itself went on without a limit
}

TEST_F(RedisLimiterTest, LongScopeIdsAreHashedIntoTheKey) {
  LimitSpec spec;
  spec.concurrent_requests = 3;
  const std::string long_id = "m:acme:" + std::string(300, 'x');
  LimitScope model = Scope(long_id, spec);
  RedisLimiter limiter(Config(redis_->address(), std::chrono::seconds(2)), kWindow);
  Reservation r;
  r.scopes[r.n_scopes++] = &model;
  Decision d = ReserveNow(limiter, r);
  ASSERT_EQ(d.result, Decision::Result::kAllowed);
  EXPECT_FALSE(d.failed_open);
  EXPECT_EQ(redis_->CountKeys("test:" + long_id + "*"), 0);
  EXPECT_EQ(redis_->CountKeys("test:#????????????????:conc"), 1);
  limiter.Release(r);
}

}  // namespace
}  // namespace tokenway
