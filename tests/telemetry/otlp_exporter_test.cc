#include "telemetry/otlp_exporter.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "support/test_env.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace tokenway {
namespace {

TEST(OtlpEndpointTest, AppendsV1TracesToTheBaseUrl) {
  auto t = ParseOtlpEndpoint("http://collector:4318");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "collector");
  EXPECT_EQ(t->port, "4318");
  EXPECT_EQ(t->path, "/v1/traces");
  t = ParseOtlpEndpoint("http://10.0.0.1:4318/otlp/");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path, "/otlp/v1/traces");
  t = ParseOtlpEndpoint("http://[::1]:4318");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "::1");
  t = ParseOtlpEndpoint("http://collector");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->port, "80");
}

TEST(OtlpEndpointTest, RejectsWhatItCannotReach) {
  EXPECT_FALSE(ParseOtlpEndpoint("https://collector:4318").ok());
  EXPECT_FALSE(ParseOtlpEndpoint("collector:4318").ok());
  EXPECT_FALSE(ParseOtlpEndpoint("http://:4318").ok());
  EXPECT_FALSE(ParseOtlpEndpoint("http://collector:0").ok());
  EXPECT_FALSE(ParseOtlpEndpoint("http://collector:99999").ok());
  EXPECT_FALSE(ParseOtlpEndpoint("http://collector:43x8").ok());
}

// A loopback port with nothing listening.
int DeadPort() {
  return testing::UnusedLoopbackPort();
}

TEST(OtlpExporterTest, AFullQueueDropsAndCounts) {
  OtlpExporterOptions o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(DeadPort());
  o.workers = 2;
  o.queue_size = 3;
  o.batch_size = 100;
  o.batch_interval = std::chrono::hours(1);  // nothing leaves the queue before Stop()
  auto exporter = OtlpExporter::Create(o);
  ASSERT_TRUE(exporter.ok());
  int accepted = 0;
  for (int i = 0; i < 5; ++i) {
    accepted += (*exporter)->Submit(i % 2, [](std::string& out) { out.append("{}"); });
  }
  EXPECT_EQ(accepted, 3);
  EXPECT_EQ((*exporter)->stats().spans_dropped, 2u);
  // Stop posts what is queued: nobody listens, so the batch fails (once, no retry).
  (*exporter)->Stop();
  OtlpExporterStats s = (*exporter)->stats();
  EXPECT_EQ(s.spans_failed, 3u);
  EXPECT_EQ(s.batches_failed, 1u);
  EXPECT_EQ(s.batches_retried, 0u);
  EXPECT_EQ(s.spans_exported, 0u);
}

TEST(OtlpExporterTest, SubmitNeverWaitsForTheCollector) {
  // A listener that accepts nothing: connects hang in the backlog until the exporter's timeout.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  OtlpExporterOptions o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  o.batch_size = 1;
  o.batch_interval = std::chrono::milliseconds(10);
  o.queue_size = 1000;
  o.timeout = std::chrono::milliseconds(300);
  auto exporter = OtlpExporter::Create(o);
  ASSERT_TRUE(exporter.ok());
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE((*exporter)->Submit(0, [](std::string& out) { out.append("{}"); }));
  }
  (*exporter)->Stop();
  OtlpExporterStats s = (*exporter)->stats();
  EXPECT_EQ(s.spans_failed + s.spans_exported, 200u);
  ::close(fd);
}

TEST(OtlpExporterTest, EverySpanIsAccountedForUnderConcurrentSubmits) {
  OtlpExporterOptions o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(DeadPort());
  o.workers = 4;
  o.batch_size = 64;
  o.batch_interval = std::chrono::milliseconds(1);
  o.queue_size = 256;
  auto exporter = OtlpExporter::Create(o);
  ASSERT_TRUE(exporter.ok());
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> accepted{0};
  for (uint32_t w = 0; w < o.workers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kPerThread; ++i) {
        if ((*exporter)->Submit(w, [](std::string& out) { out.append("{\"spanId\":\"x\"}"); })) {
          accepted.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  (*exporter)->Stop();
  OtlpExporterStats s = (*exporter)->stats();
  EXPECT_EQ(s.spans_dropped + accepted.load(), uint64_t{o.workers} * kPerThread);
  EXPECT_EQ(s.spans_failed + s.spans_exported, accepted.load());
}

}  // namespace
}  // namespace tokenway
