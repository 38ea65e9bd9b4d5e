#include "governance/redis_limiter.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <type_traits>

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
constexpr int kMaxCounters = Reservation::kMaxScopes * kLimitKinds;
constexpr size_t kMaxBatch = 1024;  // jobs per pipelined turn

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Producer indexes: a thread takes the lowest free one on its first limiter call and gives it
// back when it exits (the only lock, once per thread, never per request). Leaked on purpose:
// thread_local destructors may run after static destruction.
class ProducerIndexes {
 public:
  static ProducerIndexes& Get() {
    static ProducerIndexes* indexes = new ProducerIndexes;
    return *indexes;
  }
  int Acquire() {
    std::lock_guard lock(mu_);
    if (!free_.empty()) {
      int i = free_.back();
      free_.pop_back();
      return i;
    }
    return next_ < RedisLimiter::kMaxProducers ? next_++ : -1;
  }
  void Release(int i) {
    std::lock_guard lock(mu_);
    free_.push_back(i);
  }

 private:
  std::mutex mu_;
  std::vector<int> free_;
  int next_ = 0;
};

struct ThreadProducer {
  int index = -2;  // -2: not asked yet; -1: none left
  ~ThreadProducer() {
    if (index >= 0) ProducerIndexes::Get().Release(index);
  }
};
thread_local ThreadProducer tls_producer;

int ThisThreadProducer() {
  if (tls_producer.index == -2) tls_producer.index = ProducerIndexes::Get().Acquire();
  return tls_producer.index;
}

}  // namespace

// One command for the connection thread, built by a worker; plain data, copied by value.
struct RedisLimiter::Job {
  enum class Type : uint8_t { kReserve, kSettle };
  struct Op {
    int64_t window;  // window index in the key; -1: none (concurrency)
    int64_t value;   // reserve: amount; settle: delta
    int64_t limit;   // reserve only
    int64_t ttl_ms;
    uint8_t scope;
    uint8_t kind;
  };
  Type type = Type::kSettle;
  uint8_t n_ops = 0;
  uint8_t id_len[Reservation::kMaxScopes] = {};
  Completion* completion = nullptr;  // reservations: where the answer goes
  char ids[Reservation::kMaxScopes][kMaxScopeIdBytes];
  Op ops[kMaxCounters];

  void SetScopeId(int s, const std::string& id) {
    if (id.size() <= kMaxScopeIdBytes) {
      std::memcpy(ids[s], id.data(), id.size());
      id_len[s] = static_cast<uint8_t>(id.size());
      return;
    }
    char* out = ids[s];
    *out++ = '#';
    uint64_t h = XXH3_64bits(id.data(), id.size());
    for (int i = 15; i >= 0; --i) out[15 - i] = "0123456789abcdef"[(h >> (4 * i)) & 0xF];
    id_len[s] = 17;
  }
};
static_assert(std::is_trivially_copyable_v<RedisLimiter::Job>);

// A reservation's answer slot, pre-allocated in its thread's ProducerSlot. `state` hands it
// between the worker and the connection thread; the rest is written by one side before the
// hand-over and read by the other after it.
struct RedisLimiter::Completion {
  enum : uint8_t { kFree, kWaiting, kAnswered, kAbandoned };
  static constexpr size_t kHandlerBytes = 128;

  std::atomic<uint8_t> state{kFree};
  // Connection thread writes, then kAnswered.
  bool ok = false;
  uint8_t n_values = 0;
  int64_t values[kMaxCounters + 1] = {};
  // Worker writes before queueing the job.
  asio::any_io_executor executor;
  // Worker thread only.
  asio::steady_timer* timer = nullptr;
  bool waiting = false;    // the reservation's coroutine waits on `timer`
  bool delivered = false;  // the posted answer ran while it waited
  // The posted answer handler's memory (one post at a time per completion).
  alignas(std::max_align_t) unsigned char handler_memory[kHandlerBytes];
  bool handler_memory_used = false;

  // Worker thread: the posted answer.
  void Deliver() {
    if (waiting) {
      delivered = true;
      timer->cancel();
    } else {
      state.store(kFree, std::memory_order_release);  // the coroutine already gave up or used it
    }
  }
  // Worker thread: the coroutine stops waiting (answered, timed out or destroyed). Returns true
  // when the answer is there to read; the completion is freed here or by the answer's handler.
  bool StopWaiting() {
    waiting = false;
    timer = nullptr;
    if (delivered) {
      state.store(kFree, std::memory_order_release);
      return true;
    }
    uint8_t expected = kWaiting;
    if (state.compare_exchange_strong(expected, kAbandoned, std::memory_order_acq_rel)) {
      return false;  // the connection thread frees it (and undoes a late success)
    }
    return true;  // answered, its handler still queued: that handler frees it
  }
};

namespace {

// Gives asio the completion's own memory for the answer's handler, so the post allocates
// nothing.
template <class T>
struct CompletionAllocator {
  using value_type = T;
  RedisLimiter::Completion* c;
  explicit CompletionAllocator(RedisLimiter::Completion* completion) : c(completion) {}
  template <class U>
  CompletionAllocator(const CompletionAllocator<U>& o) noexcept : c(o.c) {}
  T* allocate(size_t n) {
    const size_t bytes = sizeof(T) * n;
    if (!c->handler_memory_used && bytes <= sizeof(c->handler_memory) &&
        alignof(T) <= alignof(std::max_align_t)) {
      c->handler_memory_used = true;
      return reinterpret_cast<T*>(c->handler_memory);
    }
    return static_cast<T*>(::operator new(bytes));
  }
  void deallocate(T* p, size_t) {
    if (reinterpret_cast<unsigned char*>(p) == c->handler_memory) {
      c->handler_memory_used = false;
    } else {
      ::operator delete(p);
    }
  }
  template <class U>
  bool operator==(const CompletionAllocator<U>& o) const {
    return c == o.c;
  }
};

struct DeliverAnswer {
  RedisLimiter::Completion* c;
  void operator()() const { c->Deliver(); }
};

void PostAnswer(RedisLimiter::Completion& c) {
  auto handler = asio::bind_allocator(CompletionAllocator<void>(&c), DeliverAnswer{&c});
  if (auto* io = c.executor.target<asio::io_context::executor_type>()) {
    asio::post(*io, std::move(handler));
  } else {
    asio::post(c.executor, std::move(handler));
  }
}

}  // namespace

// One thread's queue to the connection thread and its reservations' completions.
struct RedisLimiter::ProducerSlot {
  alignas(64) std::atomic<uint32_t> head{0};  // connection thread advances
  alignas(64) std::atomic<uint32_t> tail{0};  // the producer thread advances
  uint32_t next_completion = 0;               // producer thread only
  Job jobs[kQueueJobs];
  Completion completions[kCompletions];

  // Producer: the entry to fill next, or null when the queue is full.
  Job* Back() {
    uint32_t t = tail.load(std::memory_order_relaxed);
    if (t - head.load(std::memory_order_acquire) >= kQueueJobs) return nullptr;
    return &jobs[t % kQueueJobs];
  }
  // Producer: publishes the entry Back() returned. Sequentially consistent so that either the
  // connection thread sees the job before it sleeps or the producer sees it asleep.
  void Push() { tail.store(tail.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst); }
  // Consumer.
  bool Pop(Job& out) {
    uint32_t h = head.load(std::memory_order_relaxed);
    if (h == tail.load(std::memory_order_seq_cst)) return false;
    out = jobs[h % kQueueJobs];
    head.store(h + 1, std::memory_order_release);
    return true;
  }
  // Producer: a free completion, or null when every one waits for an answer.
  Completion* AcquireCompletion() {
    for (uint32_t i = 0; i < kCompletions; ++i) {
      uint32_t at = (next_completion + i) % kCompletions;
      Completion& c = completions[at];
      if (c.state.load(std::memory_order_acquire) == Completion::kFree) {
        next_completion = at + 1;
        return &c;
      }
    }
    return nullptr;
  }
};

RedisLimiter::RedisLimiter(const RedisLimiterConfig& config, int64_t window_ms)
    : config_(config),
      window_ms_(window_ms),
      slots_(new std::atomic<ProducerSlot*>[kMaxProducers]) {
  size_t colon = config_.address.rfind(':');
  host_ = config_.address.substr(0, colon);
  port_ = std::atoi(config_.address.c_str() + colon + 1);
  for (int i = 0; i < kMaxProducers; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
  batch_.reserve(kMaxBatch);
  scratch_.reserve(8192);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { Loop(); });
}

RedisLimiter::~RedisLimiter() {
  Stop();
  Disconnect();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  for (int i = 0; i < kMaxProducers; ++i) delete slots_[i].load(std::memory_order_acquire);
}

void RedisLimiter::Stop() {
  stop_.store(true, std::memory_order_seq_cst);
  if (wake_fd_ >= 0) ::eventfd_write(wake_fd_, 1);
  if (thread_.joinable()) thread_.join();
}

bool RedisLimiter::Matches(const RedisLimiterConfig& c, int64_t window_ms) const {
  return c.address == config_.address && c.timeout == config_.timeout &&
         c.fail_open == config_.fail_open && c.key_prefix == config_.key_prefix &&
         window_ms == window_ms_;
}

RedisLimiter::ProducerSlot* RedisLimiter::Slot() {
  const int index = ThisThreadProducer();
  if (index < 0) return nullptr;
  ProducerSlot* slot = slots_[index].load(std::memory_order_acquire);
  if (slot) return slot;
  // Once per thread and limiter; the connection thread finds it through slot_count_.
  slot = new ProducerSlot;
  slots_[index].store(slot, std::memory_order_release);
  int count = slot_count_.load(std::memory_order_relaxed);
  while (count < index + 1 &&
         !slot_count_.compare_exchange_weak(count, index + 1, std::memory_order_release)) {
  }
  return slot;
}

void RedisLimiter::Publish(ProducerSlot& slot) {
  slot.Push();
  Wake();
}

void RedisLimiter::Wake() {
  // Only the first producer to find the thread asleep pays for the system call.
  if (sleeping_.load(std::memory_order_seq_cst) &&
      sleeping_.exchange(false, std::memory_order_seq_cst)) {
    ::eventfd_write(wake_fd_, 1);
  }
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

size_t RedisLimiter::Collect() {
  for (const Job& job : undo_) batch_.push_back(job);
  undo_.clear();
  const int n = slot_count_.load(std::memory_order_acquire);
  Job job;
  for (int i = 0; i < n && batch_.size() < kMaxBatch; ++i) {
    ProducerSlot* slot = slots_[i].load(std::memory_order_acquire);
    if (!slot) continue;
    while (batch_.size() < kMaxBatch && slot->Pop(job)) batch_.push_back(job);
  }
  return batch_.size();
}

void RedisLimiter::Loop() {
  for (;;) {
    if (stop_.load(std::memory_order_acquire)) return;
    if (Collect() == 0) {
      sleeping_.store(true, std::memory_order_seq_cst);
      if (Collect() == 0 && !stop_.load(std::memory_order_seq_cst)) {
        pollfd p{wake_fd_, POLLIN, 0};
        while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
        }
        eventfd_t ignored;
        ::eventfd_read(wake_fd_, &ignored);
      }
      sleeping_.store(false, std::memory_order_relaxed);
      if (batch_.empty()) continue;
    }
    Process();
  }
}

void RedisLimiter::AppendCommand(const Job& job) {
  const bool reserve = job.type == Job::Type::kReserve;
  // Every argument is appended to one buffer first; pointers are taken once it stops growing.
  scratch_.clear();
  lens_.clear();
  auto arg_begin = [&] { lens_.push_back(scratch_.size()); };
  auto number = [&](int64_t v) {
    arg_begin();
    char digits[24];
    auto res = std::to_chars(digits, digits + sizeof digits, v);
    scratch_.append(digits, res.ptr);
  };
  arg_begin();
  scratch_.append("EVALSHA");
  arg_begin();
  scratch_.append(reserve ? reserve_sha_ : settle_sha_);
  number(job.n_ops);
  for (int i = 0; i < job.n_ops; ++i) {
    const Job::Op& op = job.ops[i];
    arg_begin();
    scratch_.append(config_.key_prefix);
    scratch_.append(job.ids[op.scope], job.id_len[op.scope]);
    scratch_.push_back(':');
    scratch_.append(kKindTag[op.kind]);
    if (op.window >= 0) {
      scratch_.push_back(':');
      char digits[24];
      auto res = std::to_chars(digits, digits + sizeof digits, op.window);
      scratch_.append(digits, res.ptr);
    }
  }
  for (int i = 0; i < job.n_ops; ++i) {
    const Job::Op& op = job.ops[i];
    number(op.value);
    if (reserve) number(op.limit);
    number(op.ttl_ms);
  }
  const size_t n = lens_.size();
  argv_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t begin = lens_[i];
    const size_t end = i + 1 < n ? lens_[i + 1] : scratch_.size();
    argv_[i] = scratch_.data() + begin;
    lens_[i] = end - begin;
  }
  redisAppendCommandArgv(ctx_, static_cast<int>(n), argv_.data(), lens_.data());
}

void RedisLimiter::Answer(const Job& job, const redisReply* reply) {
  if (job.type != Job::Type::kReserve) return;
  Completion& c = *job.completion;
  c.ok = false;
  c.n_values = 0;
  if (reply && reply->type == REDIS_REPLY_ARRAY) {
    c.ok = true;
    for (size_t k = 0; k < reply->elements && k < std::size(c.values); ++k) {
      c.values[c.n_values++] = reply->element[k]->integer;
    }
  } else if (reply && reply->type == REDIS_REPLY_INTEGER) {
    c.ok = true;
    c.values[c.n_values++] = reply->integer;
  }
  uint8_t expected = Completion::kWaiting;
  if (c.state.compare_exchange_strong(expected, Completion::kAnswered, std::memory_order_acq_rel)) {
    PostAnswer(c);
    return;
  }
  // Nobody waits any more: give back a reservation Redis made after the request gave up.
  if (c.ok && c.n_values > 0 && c.values[0] == 1) {
    Job undo = job;
    undo.type = Job::Type::kSettle;
    undo.completion = nullptr;
    uint8_t n = 0;
    for (int i = 0; i < job.n_ops; ++i) {
      if (job.ops[i].value == 0) continue;
      undo.ops[n] = job.ops[i];
      undo.ops[n].value = -job.ops[i].value;
      ++n;
    }
    undo.n_ops = n;
    if (n > 0) undo_.push_back(undo);
  }
  c.state.store(Completion::kFree, std::memory_order_release);
}

void RedisLimiter::FailFrom(size_t first) {
  // Counted before the answers go out, so that a request that sees its failure sees it counted.
  backend_errors.fetch_add(batch_.size() - first, std::memory_order_relaxed);
  for (size_t i = first; i < batch_.size(); ++i) Answer(batch_[i], nullptr);
}

void RedisLimiter::Process() {
  if (!ctx_) {
    int64_t now = NowMs();
    if (now < next_connect_ms_ || !Connect()) {
      if (now >= next_connect_ms_) {
        next_connect_ms_ = now + backoff_ms_;
        backoff_ms_ = std::min<int64_t>(backoff_ms_ * 2, 2000);
      }
      FailFrom(0);
      batch_.clear();
      return;
    }
    backoff_ms_ = 50;
  }
  for (const Job& job : batch_) AppendCommand(job);
  for (size_t i = 0; i < batch_.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) {
      Disconnect();
      next_connect_ms_ = NowMs() + backoff_ms_;
      FailFrom(i);
      break;
    }
    auto* reply = static_cast<redisReply*>(raw);
    if (reply->type != REDIS_REPLY_ARRAY && reply->type != REDIS_REPLY_INTEGER) {
      backend_errors.fetch_add(1, std::memory_order_relaxed);
      if (reply->type == REDIS_REPLY_ERROR &&
          std::string_view(reply->str, reply->len).rfind("NOSCRIPT", 0) == 0) {
        // The server lost its scripts (restart, SCRIPT FLUSH): load them on a new connection.
        freeReplyObject(reply);
        for (size_t k = i + 1; k < batch_.size(); ++k) {
          void* rest = nullptr;
          if (redisGetReply(ctx_, &rest) == REDIS_OK && rest) freeReplyObject(rest);
        }
        Disconnect();
        Answer(batch_[i], nullptr);
        FailFrom(i + 1);
        break;
      }
    }
    Answer(batch_[i], reply);
    freeReplyObject(reply);
  }
  batch_.clear();
}

Decision RedisLimiter::Unavailable(Reservation& r) {
  Decision d;
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
  return d;
}

asio::awaitable<Decision> RedisLimiter::Reserve(Reservation& r) {
  Decision d;
  const int64_t now_ms = UnixMillis();
  r.windows = WindowsAt(now_ms, window_ms_);
  // The counters in the order the script sees them: (scope, kind) for each limit that is set.
  uint8_t counter_scope[kMaxCounters];
  uint8_t counter_kind[kMaxCounters];
  int n = 0;
  for (int s = 0; s < r.n_scopes; ++s) {
    for (int k = 0; k < kLimitKinds; ++k) {
      if (LimitOf(r.scopes[s]->limits, static_cast<LimitKind>(k)) <= 0) continue;
      counter_scope[n] = static_cast<uint8_t>(s);
      counter_kind[n] = static_cast<uint8_t>(k);
      ++n;
    }
  }
  if (n == 0) {
    r.held = true;
    r.counted = true;
    co_return d;
  }
  if (stop_.load(std::memory_order_relaxed)) co_return Unavailable(r);
  ProducerSlot* slot = Slot();
  Completion* c = slot ? slot->AcquireCompletion() : nullptr;
  Job* job = c ? slot->Back() : nullptr;
  if (!job) {
    queue_full.fetch_add(1, std::memory_order_relaxed);
    backend_errors.fetch_add(1, std::memory_order_relaxed);
    co_return Unavailable(r);
  }
  job->type = Job::Type::kReserve;
  job->completion = c;
  job->n_ops = static_cast<uint8_t>(n);
  for (int s = 0; s < r.n_scopes; ++s) job->SetScopeId(s, r.scopes[s]->id);
  for (int i = 0; i < n; ++i) {
    const int k = counter_kind[i];
    const LimitKind kind = static_cast<LimitKind>(k);
    Job::Op& op = job->ops[i];
    op.scope = counter_scope[i];
    op.kind = static_cast<uint8_t>(k);
    op.value = r.Amount(kind);
    op.limit = LimitOf(r.scopes[op.scope]->limits, kind);
    if (kind == LimitKind::kConcurrent) {
      op.window = -1;
      op.ttl_ms = kConcurrentTtlMs;
    } else {
      op.window = r.windows.index[k];
      op.ttl_ms = r.windows.end_ms[k] - now_ms + window_ms_;
    }
  }

  asio::steady_timer timer(co_await asio::this_coro::executor);
  c->executor = timer.get_executor();
  c->timer = &timer;
  c->waiting = true;
  c->delivered = false;
  c->state.store(Completion::kWaiting, std::memory_order_relaxed);  // published by Push
  // Whether the coroutine resumes or its frame is destroyed while it waits, the completion
  // learns that nobody waits any more.
  struct StopGuard {
    Completion* c;
    ~StopGuard() {
      if (c && c->waiting) c->StopWaiting();
    }
  } guard{c};
  timer.expires_after(config_.timeout);
  Publish(*slot);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  guard.c = nullptr;
  // The answer is read after StopWaiting has taken it from the connection thread, and before
  // this worker's next reservation may reuse the completion.
  const bool answered = c->StopWaiting();
  bool ok = answered && c->ok && c->n_values > 0;
  int64_t values[kMaxCounters + 1];
  const int n_values = ok ? c->n_values : 0;
  std::copy(c->values, c->values + n_values, values);
  if (!answered) backend_errors.fetch_add(1, std::memory_order_relaxed);
  if (!ok) co_return Unavailable(r);

  int64_t used[Reservation::kMaxScopes][kLimitKinds];
  for (auto& row : used) std::fill(std::begin(row), std::end(row), -1);
  if (values[0] == 1) {
    for (int i = 0; i < n && i + 1 < n_values; ++i) {
      used[counter_scope[i]][counter_kind[i]] = values[i + 1];
    }
    r.held = true;
    r.counted = true;
    FillHeaderFields(r, used, now_ms, d);
    co_return d;
  }
  int index = n_values > 1 ? static_cast<int>(values[1] - 1) : 0;
  if (index < 0 || index >= n) index = 0;
  used[counter_scope[index]][counter_kind[index]] = n_values > 2 ? values[2] : 0;
  d.result = Decision::Result::kLimited;
  d.limit = static_cast<LimitKind>(counter_kind[index]);
  d.retry_after_ms = d.limit == LimitKind::kConcurrent
                         ? 1000
                         : std::max<int64_t>(1, r.windows.end_ms[counter_kind[index]] - now_ms);
  FillHeaderFields(r, used, now_ms, d);
  co_return d;
}

void RedisLimiter::SendSettle(const Reservation& r, int64_t input, int64_t output, bool counted) {
  if (stop_.load(std::memory_order_relaxed)) return;
  const int64_t now_ms = UnixMillis();
  const Windows now = WindowsAt(now_ms, window_ms_);
  ProducerSlot* slot = Slot();
  Job* job = slot ? slot->Back() : nullptr;
  if (!job) {
    queue_full.fetch_add(1, std::memory_order_relaxed);
    backend_errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint8_t n = 0;
  for (int s = 0; s < r.n_scopes; ++s) {
    for (int k = 0; k < kLimitKinds; ++k) {
      const LimitKind kind = static_cast<LimitKind>(k);
      if (LimitOf(r.scopes[s]->limits, kind) <= 0) continue;
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
      Job::Op& op = job->ops[n];
      op.scope = static_cast<uint8_t>(s);
      op.kind = static_cast<uint8_t>(k);
      op.value = delta;
      op.limit = 0;
      if (kind == LimitKind::kConcurrent) {
        op.window = -1;
        op.ttl_ms = kConcurrentTtlMs;
      } else if (now.index[k] == r.windows.index[k]) {
        op.window = r.windows.index[k];
        op.ttl_ms = r.windows.end_ms[k] - now_ms + window_ms_;
      } else {
        if (delta < 0) continue;   // the over-reservation of a passed window is gone with it
        op.window = now.index[k];  // tokens beyond it count where they happened: now
        op.ttl_ms = now.end_ms[k] - now_ms + window_ms_;
      }
      ++n;
    }
  }
  if (n == 0) return;
  job->type = Job::Type::kSettle;
  job->completion = nullptr;
  job->n_ops = n;
  for (int s = 0; s < r.n_scopes; ++s) job->SetScopeId(s, r.scopes[s]->id);
  Publish(*slot);
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
