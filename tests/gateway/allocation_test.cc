// Heap allocations per proxied request in steady state, counted with a replacing global
// operator new: the request path reuses its buffers, so a warmed-up connection proxies a
// request — non-streaming or streaming, access log on, a scheduler with prefix affinity — with
// at most two allocations (in practice coroutine frames beyond Asio's per-thread cache).
//
// The gateway's worker runs in-process; the scripted upstream and the client
// (tests/support/scripted_upstream.h) are plain threads of this test, exempt from counting.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

#include "control/config.h"
#include "control/runtime.h"
#include "gateway/worker.h"
#include "support/scripted_upstream.h"
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
// The nothrow forms too (simdjson uses them): every form must come from the malloc that the
// replaced deletes free.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (!t_exempt) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return ::operator new(n, t);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  if (!t_exempt) g_allocations.fetch_add(1, std::memory_order_relaxed);
  size_t align = static_cast<size_t>(a);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return ::operator new(n, a, t);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
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

void Exempt() {
  t_exempt = true;
}

class AllocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t_exempt = true;
    backend_ = std::make_unique<testing::ScriptedUpstream>(8, Exempt);
    std::string yaml = R"(
pools:
  - name: p
    scheduler:
      preset: gie-default
    endpoints:
      - )" + backend_->url() +
                       R"(
models:
  - name: m
    pool: p
  - name: chat
    versions: [{name: v1, model: m, pool: p, weight: 1}]
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
    backend_.reset();
    pools_.DropAll();
  }

  // Allocations per request over `n` requests on one keep-alive connection, after a warm-up.
  double AllocationsPerRequest(bool stream, int n, const std::string& model = "m") {
    testing::RawClient client(gateway_port_);
    std::string body = "{\"model\":\"" + model + "\",\"stream\":" + (stream ? "true" : "false") +
                       ",\"max_tokens\":16,\"messages\":[{\"role\":\"system\",\"content\":\"" +
                       std::string(2000, 's') + "\"},{\"role\":\"user\",\"content\":\"hello\"}]}";
    std::string request = testing::RawClient::Post("/v1/chat/completions", body);
    std::string head, response;
    head.reserve(4096);
    response.reserve(1 << 16);
    auto one = [&] {
      return client.Exchange(request, head, response) && head.compare(0, 12, "HTTP/1.1 200") == 0;
    };
    for (int i = 0; i < 300; ++i) EXPECT_TRUE(one());
    uint64_t before = g_allocations.load();
    for (int i = 0; i < n; ++i) EXPECT_TRUE(one());
    uint64_t after = g_allocations.load();
    return static_cast<double>(after - before) / n;
  }

  std::unique_ptr<testing::ScriptedUpstream> backend_;
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

// An alias with a version served under another name: the body rewritten for the version's model
// and the response's "model" written back to the alias reuse the request's buffers.
TEST_F(AllocationTest, VersionedAliasAllocatesAtMostTwice) {
  double whole = AllocationsPerRequest(false, 1000, "chat");
  double stream = AllocationsPerRequest(true, 1000, "chat");
  std::printf("alias with a version: %.3f (whole), %.3f (stream) allocations per request\n", whole,
              stream);
  EXPECT_LE(whole, 2.0);
  EXPECT_LE(stream, 2.0);
}

}  // namespace
}  // namespace tokenway
