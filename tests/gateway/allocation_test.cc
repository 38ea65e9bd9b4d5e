// Heap allocations per proxied request in steady state, counted with a replacing global
// operator new: the request path reuses its buffers, so a warmed-up connection proxies a
// request — non-streaming or streaming, access log on, a scheduler with prefix affinity — with
// at most two allocations (in practice coroutine frames beyond Asio's per-thread cache).
//
// The gateway's workers run in-process; the backend and the client are plain threads of this
// test that use raw sockets and pre-sized buffers, and are exempt from counting.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "control/config.h"
#include "control/runtime.h"
#include "gateway/worker.h"
#include "telemetry/access_log.h"
#include "telemetry/metrics.h"

namespace {

std::atomic<uint64_t> g_allocations{0};
thread_local bool t_exempt = false;

}  // namespace

void* operator new(std::size_t n) {
  if (!t_exempt) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return ::operator new(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (!t_exempt) g_allocations.fetch_add(1, std::memory_order_relaxed);
  size_t align = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return ::operator new(n, a);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace tokenway {
namespace {

int Listen(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  ::listen(fd, 64);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

int Connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Reads one HTTP message (head + Content-Length body, or a chunked body) into `buf`; returns
// false when the peer closed. `buf` keeps what follows the message.
bool ReadMessage(int fd, std::string& buf, bool& request_was_stream) {
  for (;;) {
    size_t head_end = buf.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::string_view head(buf.data(), head_end);
      size_t total = head_end + 4;
      bool complete = false;
      size_t cl = head.find("Content-Length: ");
      if (cl != std::string::npos) {
        size_t n = std::strtoul(head.data() + cl + 16, nullptr, 10);
        complete = buf.size() >= total + n;
        total += n;
      } else if (head.find("chunked") != std::string::npos) {
        size_t end = buf.find("\r\n0\r\n\r\n", head_end);
        if (end == std::string::npos)
          end = buf.find("0\r\n\r\n", head_end + 4) == head_end + 4 ? head_end + 4 - 2
                                                                    : std::string::npos;
        if (end != std::string::npos) {
          complete = true;
          total = end + 7;
        }
      } else {
        complete = true;
      }
      if (complete) {
        request_was_stream = buf.find("\"stream\":true") != std::string::npos;
        buf.erase(0, total);
        return true;
      }
    }
    char tmp[16384];
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
  }
}

constexpr char kJsonBody[] =
    "{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"hi there\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}";

// A model server that answers every request at once: a JSON completion, or a short SSE stream
// with a usage chunk, both keep-alive.
void Backend(int listen_fd, std::atomic<bool>& stop) {
  t_exempt = true;
  std::string json = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(sizeof kJsonBody - 1) + "\r\n\r\n" + kJsonBody;
  std::string events;
  for (int i = 0; i < 8; ++i) {
    events +=
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"content\":\" w\"},\"finish_reason\":null}]}\n\n";
  }
  events +=
      "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],"
      "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":8,\"total_tokens\":13}}\n\n"
      "data: [DONE]\n\n";
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", events.size());
  std::string sse = std::string(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n") +
                    size + events + "\r\n0\r\n\r\n";
  std::vector<std::thread> conns;
  while (!stop.load()) {
    int fd = ::accept(listen_fd, nullptr, nullptr);
    if (fd < 0) break;
    conns.emplace_back([fd, &json, &sse] {
      t_exempt = true;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::string buf;
      buf.reserve(1 << 16);
      bool stream = false;
      while (ReadMessage(fd, buf, stream)) {
        const std::string& out = stream ? sse : json;
        if (::write(fd, out.data(), out.size()) < 0) break;
      }
      ::close(fd);
    });
  }
  for (auto& t : conns) t.join();
}

class AllocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t_exempt = true;
    backend_fd_ = Listen(backend_port_);
    ASSERT_GE(backend_fd_, 0);
    backend_ = std::thread(Backend, backend_fd_, std::ref(stop_));
    std::string yaml = R"(
pools:
  - name: p
    scheduler:
      preset: gie-default
    endpoints:
      - http://127.0.0.1:)" +
                       std::to_string(backend_port_) +
                       R"(
models:
  - name: m
    pool: p
access_log:
  enabled: true
  path: /dev/null
)";
    auto config = ParseConfig(yaml, "allocation_test.yaml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    std::string error;
    shared_.access_log = AccessLogSink::Open("/dev/null", error);
    ASSERT_TRUE(shared_.access_log) << error;
    auto rt = BuildRuntime(*config, endpoints_, slots_, 1, 0, &pools_);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    worker_ = std::make_unique<Worker>(0, shared_, metrics_);
    auto bound = worker_->Listen(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    gateway_port_ = bound.port();
    worker_->Start(*rt);
  }

  void TearDown() override {
    worker_->Stop();
    worker_.reset();
    stop_ = true;
    ::shutdown(backend_fd_, SHUT_RDWR);
    ::close(backend_fd_);
    backend_.join();
    pools_.DropAll();
  }

  // Allocations per request over `n` requests on one keep-alive connection, after a warm-up.
  double AllocationsPerRequest(bool stream, int n) {
    int fd = Connect(gateway_port_);
    EXPECT_GE(fd, 0);
    std::string body = std::string("{\"model\":\"m\",\"stream\":") + (stream ? "true" : "false") +
                       ",\"max_tokens\":16,\"messages\":[{\"role\":\"system\",\"content\":\"" +
                       std::string(2000, 's') + "\"},{\"role\":\"user\",\"content\":\"hello\"}]}";
    std::string request =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        "Authorization: Bearer k\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    std::string buf;
    buf.reserve(1 << 16);
    auto one = [&] {
      if (::write(fd, request.data(), request.size()) < 0) return false;
      bool ignored;
      if (!ReadMessage(fd, buf, ignored)) return false;
      return true;
    };
    for (int i = 0; i < 300; ++i) EXPECT_TRUE(one());
    uint64_t before = g_allocations.load();
    for (int i = 0; i < n; ++i) EXPECT_TRUE(one());
    uint64_t after = g_allocations.load();
    ::close(fd);
    return static_cast<double>(after - before) / n;
  }

  std::atomic<bool> stop_{false};
  int backend_fd_ = -1;
  uint16_t backend_port_ = 0;
  std::thread backend_;
  uint16_t gateway_port_ = 0;
  GatewayShared shared_;
  WorkerMetrics metrics_;
  EndpointRegistry endpoints_;
  PoolStateRegistry pools_;
  MetricSlots slots_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(AllocationTest, NonStreamingRequestAllocatesAtMostTwice) {
  double per_request = AllocationsPerRequest(false, 2000);
  RecordProperty("allocations_per_request", std::to_string(per_request));
  std::printf("non-streaming: %.3f allocations per request\n", per_request);
  EXPECT_LE(per_request, 2.0);
  EXPECT_GE(metrics_.requests[slots_.models.SlotFor("m")][StatusSlot(200)].load(),
            2299u);  // the last one may still be settling
}

TEST_F(AllocationTest, StreamingRequestAllocatesAtMostTwice) {
  double per_request = AllocationsPerRequest(true, 2000);
  std::printf("streaming: %.3f allocations per request\n", per_request);
  EXPECT_LE(per_request, 2.0);
  EXPECT_GE(metrics_.requests[slots_.models.SlotFor("m")][StatusSlot(200)].load(),
            2299u);  // the last one may still be settling
}

}  // namespace
}  // namespace tokenway
