// Reload and drain under load, in-process: two workers serve client threads without pause while
// the control side publishes new snapshots over and over (the RuntimePin bookkeeping and the
// endpoint state shared across snapshots), then drains. Every request must be answered 200 and
// no request may be lost; under ThreadSanitizer (make test-tsan) the same run checks that the
// workers, the client threads and the publishing thread share nothing unsynchronised.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "control/config.h"
#include "control/runtime.h"
#include "gateway/worker.h"
#include "support/scripted_upstream.h"
#include "telemetry/metrics.h"

namespace tokenway {
namespace {

TEST(ReloadDrainTest, RequestsSurviveReloadsAndDrain) {
  testing::ScriptedUpstream upstream(4);
  auto config = ParseConfig(R"(
pools:
  - name: p
    scheduler:
      preset: gie-default
    endpoints:
      - )" + upstream.url() + R"(
models:
  - name: m
    pool: p
access_log:
  enabled: false
)",
                            "reload_drain_test.yaml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EndpointRegistry endpoints;
  PoolStateRegistry pools;
  MetricSlots slots;
  GatewayShared shared;
  uint64_t generation = 1;
  auto rt = BuildRuntime(*config, endpoints, slots, generation, 0, &pools);
  ASSERT_TRUE(rt.ok());

  constexpr int kWorkers = 2;
  std::vector<std::unique_ptr<WorkerMetrics>> metrics;
  std::vector<std::unique_ptr<Worker>> workers;
  boost::asio::ip::tcp::endpoint at(boost::asio::ip::make_address("127.0.0.1"), 0);
  for (int i = 0; i < kWorkers; ++i) {
    metrics.push_back(std::make_unique<WorkerMetrics>());
    workers.push_back(std::make_unique<Worker>(i, shared, *metrics.back()));
    at = workers.back()->Listen(at);
  }
  for (auto& w : workers) w->Start(*rt);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      const std::string body = std::string(R"({"model":"m","stream":)") +
                               (c % 2 ? "true" : "false") +
                               R"(,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]})";
      const std::string request = testing::RawClient::Post("/v1/chat/completions", body);
      std::string head, response;
      while (!stop.load()) {
        testing::RawClient client(at.port());  // a new connection now and then
        for (int i = 0; i < 20 && !stop.load(); ++i) {
          if (!client.Exchange(request, head, response)) break;
          (head.compare(0, 12, "HTTP/1.1 200") == 0 ? ok : bad).fetch_add(1);
        }
      }
    });
  }
  // Reloads while requests run.
  for (int i = 0; i < 40; ++i) {
    auto next = BuildRuntime(*config, endpoints, slots, ++generation, 0, &pools);
    ASSERT_TRUE(next.ok());
    for (auto& w : workers) w->Publish(*next);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const int before_drain = ok.load();
  for (auto& w : workers) w->BeginDrain();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  for (auto& t : clients) t.join();
  for (auto& w : workers) w->Stop();
  workers.clear();
  pools.DropAll();

  EXPECT_GT(before_drain, 40);
  EXPECT_EQ(bad.load(), 0);
  // Every answered request was also counted by the workers.
  uint64_t counted = 0;
  for (auto& m : metrics) counted += m->requests[slots.models.SlotFor("m")][StatusSlot(200)].load();
  EXPECT_EQ(counted, static_cast<uint64_t>(ok.load()));
}

}  // namespace
}  // namespace tokenway
