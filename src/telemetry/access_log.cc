#include "telemetry/access_log.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "telemetry/prometheus_text.h"

namespace tokenway {

namespace {

constexpr std::string_view kFieldNames[] = {"ts",
                                            "request_id",
                                            "tenant",
                                            "operation",
                                            "model",
                                            "pool",
                                            "endpoint",
                                            "status",
                                            "stream",
                                            "duration_ms",
                                            "ttft_ms",
                                            "prompt_tokens",
                                            "completion_tokens",
                                            "cached_tokens",
                                            "usage",
                                            "usage_injected",
                                            "stream_events",
                                            "retries",
                                            "priority",
                                            "queue_ms",
                                            "route",
                                            "request_bytes",
                                            "response_bytes",
                                            "prompt_hash",
                                            "payload",
                                            "error",
                                            "semantic_route"};
static_assert(std::size(kFieldNames) == static_cast<size_t>(AccessLogField::kCount));

std::atomic<uint64_t> next_sink_id{1};

uint64_t CountLines(std::string_view text) {
  return static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

std::string_view AccessLogFieldName(AccessLogField f) {
  return kFieldNames[static_cast<size_t>(f)];
}

bool ParseAccessLogField(std::string_view name, AccessLogField& out) {
  for (size_t i = 0; i < std::size(kFieldNames); ++i) {
    if (kFieldNames[i] == name) {
      out = static_cast<AccessLogField>(i);
      return true;
    }
  }
  return false;
}

// One AccessLogBuffer's ring of buffers: its owner fills the slot at `tail`, the writer thread
// empties the slot at `head` and leaves it cleared (keeping its capacity) for a later swap.
class AccessLogSink::Producer {
 public:
  explicit Producer(uint32_t n) : slots_(n) {}

  // Owner. Sequentially consistent publication: either the writer sees the buffer before it
  // sleeps, or the owner sees it asleep and wakes it.
  bool Push(std::string& lines) {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_.load(std::memory_order_acquire) >= slots_.size()) return false;
    slots_[t % slots_.size()].swap(lines);
    tail_.store(t + 1, std::memory_order_seq_cst);
    return true;
  }
  // Writer thread.
  std::string* Front() {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_.load(std::memory_order_seq_cst)) return nullptr;
    return &slots_[h % slots_.size()];
  }
  void Pop() {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    slots_[h % slots_.size()].clear();
    head_.store(h + 1, std::memory_order_release);
  }

 private:
  std::vector<std::string> slots_;
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
};

std::shared_ptr<AccessLogSink> AccessLogSink::Open(const std::string& path, std::string& error,
                                                   const AccessLogSinkOptions& options) {
  if (path == "stdout" || path == "-") {
    return std::shared_ptr<AccessLogSink>(new AccessLogSink(STDOUT_FILENO, false, options));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(fd, true, options));
}

std::shared_ptr<AccessLogSink> AccessLogSink::OnDescriptor(int fd,
                                                           const AccessLogSinkOptions& options) {
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(fd, false, options));
}

AccessLogSink::AccessLogSink(int fd, bool owned, const AccessLogSinkOptions& options)
    : fd_(fd),
      owned_(owned),
      options_(options),
      id_(next_sink_id.fetch_add(1, std::memory_order_relaxed)),
      producers_(new std::atomic<Producer*>[kMaxProducers]) {
  struct stat st {};
  regular_file_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  for (int i = 0; i < kMaxProducers; ++i) producers_[i].store(nullptr, std::memory_order_relaxed);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { Run(); });
}

AccessLogSink::~AccessLogSink() {
  stop_deadline_ = std::chrono::steady_clock::now() + options_.shutdown_timeout;
  stop_.store(true, std::memory_order_seq_cst);
  ::eventfd_write(wake_fd_, 1);
  if (thread_.joinable()) thread_.join();
  for (int i = 0; i < kMaxProducers; ++i) delete producers_[i].load(std::memory_order_relaxed);
  ::close(wake_fd_);
  if (owned_) ::close(fd_);
}

AccessLogSink::Producer* AccessLogSink::AddProducer() {
  std::lock_guard lock(add_mu_);
  const int n = producer_count_.load(std::memory_order_relaxed);
  if (n >= kMaxProducers) return nullptr;
  auto* p = new Producer(std::max<uint32_t>(1, options_.buffers_per_producer));
  producers_[n].store(p, std::memory_order_release);
  producer_count_.store(n + 1, std::memory_order_release);
  return p;
}

void AccessLogSink::Submit(Producer* producer, std::string& lines) {
  if (lines.empty()) return;
  if (!producer || !producer->Push(lines)) {
    Drop(lines);
    lines.clear();
    return;
  }
  Wake();
}

void AccessLogSink::Wake() {
  if (sleeping_.load(std::memory_order_seq_cst) &&
      sleeping_.exchange(false, std::memory_order_seq_cst)) {
    ::eventfd_write(wake_fd_, 1);
  }
}

void AccessLogSink::Drop(std::string_view lines) {
  dropped_lines_.fetch_add(CountLines(lines), std::memory_order_relaxed);
}

void AccessLogSink::Run() {
  // A reader that went away must cost the lines, not the process.
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
  for (;;) {
    // Read before draining: a buffer handed over before Stop is then always seen.
    const bool stopping = stop_.load(std::memory_order_seq_cst);
    bool wrote = false;
    const int n = producer_count_.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) {
      Producer* p = producers_[i].load(std::memory_order_acquire);
      while (std::string* lines = p->Front()) {
        WriteOut(*lines);
        p->Pop();
        wrote = true;
      }
    }
    if (wrote) continue;
    if (stopping) return;
    sleeping_.store(true, std::memory_order_seq_cst);
    bool pending = stop_.load(std::memory_order_seq_cst);
    const int m = producer_count_.load(std::memory_order_acquire);
    for (int i = 0; i < m && !pending; ++i) {
      pending = producers_[i].load(std::memory_order_acquire)->Front() != nullptr;
    }
    if (!pending) {
      pollfd w{wake_fd_, POLLIN, 0};
      while (::poll(&w, 1, -1) < 0 && errno == EINTR) {
      }
      eventfd_t ignored;
      ::eventfd_read(wake_fd_, &ignored);
    }
    sleeping_.store(false, std::memory_order_relaxed);
  }
}

void AccessLogSink::WriteOut(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    size_t chunk = data.size() - off;
    if (!regular_file_) {
      // A pipe, terminal or socket may stay full: wait until it takes a chunk that cannot block
      // (PIPE_BUF bytes), or until the sink stops and its deadline passes.
      chunk = std::min<size_t>(chunk, PIPE_BUF);
      int timeout_ms = -1;
      if (stop_.load(std::memory_order_acquire)) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            stop_deadline_ - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        timeout_ms = static_cast<int>(left.count());
      }
      pollfd fds[2] = {{fd_, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
      int r = ::poll(fds, 2, timeout_ms);
      if (r < 0 && errno != EINTR) break;
      if (fds[1].revents & POLLIN) {
        eventfd_t ignored;
        ::eventfd_read(wake_fd_, &ignored);  // stop: the deadline applies from now on
      }
      if (!(fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) continue;
    }
    ssize_t n = ::write(fd_, data.data() + off, chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      break;  // a full disk or a closed pipe must not take the gateway down
    }
    off += static_cast<size_t>(n);
  }
  if (off < data.size()) Drop(std::string_view(data).substr(off));
}

void AccessLogBuffer::Flush(AccessLogSink* sink) {
  if (buf_.empty()) return;
  if (!sink) {
    buf_.clear();
    return;
  }
  if (sink->id() != sink_id_) {
    sink_id_ = sink->id();
    producer_ = sink->AddProducer();
  }
  sink->Submit(producer_, buf_);
}

void RenderAccessLogMetrics(PrometheusText& t, const AccessLogSink* sink) {
  t.Family("tokenway_access_log_dropped_lines_total", "counter",
           "Access-log lines dropped because the output fell behind (a worker's hand-off queue "
           "was full) or failed.");
  t.Sample("tokenway_access_log_dropped_lines_total", {}, sink ? sink->dropped_lines() : 0);
}

}  // namespace tokenway
