// The payload-processing phase and the response processors of the relay phase, driven through the
// real request path in-process: a request processor that rejects or replaces the body, response
// processors that replace or drop stream events and replace a whole body; and the processors a
// `processors:` configuration builds (pii block/redact/flag, limits, a pattern that spans stream
// events and ends the stream with content_filter).
#include <gtest/gtest.h>

#include <string>

#include "common/request_inspector.h"
#include "control/config.h"
#include "control/runtime.h"
#include "gateway/worker.h"
#include "payload/payload_metrics.h"
#include "support/scripted_upstream.h"
#include "telemetry/access_log.h"
#include "telemetry/metrics.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {
namespace {

// Rejects prompts that mention "forbidden"; replaces the body of prompts that mention "rewrite".
class TestRequestProcessor final : public RequestProcessor {
 public:
  std::string_view name() const override { return "test-request"; }
  void Process(const PayloadRequest& request, RequestVerdict& verdict) const override {
    const std::string& prompt = request.inspected->prompt_text;
    if (prompt.find("forbidden") != std::string::npos) {
      verdict.kind = RequestVerdict::Kind::kReject;
      verdict.status = 400;
      verdict.code = "content_blocked";
      verdict.message = "the prompt is not allowed";
    } else if (prompt.find("rewrite") != std::string::npos) {
      verdict.kind = RequestVerdict::Kind::kReplace;
      verdict.body =
          R"({"model":"m","max_tokens":3,"messages":[{"role":"user","content":"rewritten"}]})";
    }
  }
};

// Replaces event " w1" with " W1" and drops " w2"; uppercases a whole body's "hi there".
class TestResponseProcessor final : public ResponseProcessor {
 public:
  std::string_view name() const override { return "test-response"; }
  ResponseVerdict Process(std::string_view data, std::string& replacement) const override {
    if (data.find("\" w2\"") != std::string_view::npos) return ResponseVerdict::kDrop;
    size_t at = data.find("\" w1\"");
    if (at == std::string_view::npos) at = data.find("hi there");
    if (at == std::string_view::npos) return ResponseVerdict::kPass;
    replacement.assign(data);
    if (replacement.compare(at, 5, "\" w1\"") == 0) {
      replacement.replace(at, 5, "\" W1\"");
    } else {
      replacement.replace(at, 8, "HI THERE");
    }
    return ResponseVerdict::kReplace;
  }
};

class PayloadPhaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    upstream_ = std::make_unique<testing::ScriptedUpstream>(4);
    auto config = ParseConfig(R"(
pools:
  - name: p
    endpoints:
      - )" + upstream_->url() + R"(
models:
  - name: m
    pool: p
access_log:
  enabled: false
)",
                              "payload_phase_test.yaml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto rt = BuildRuntime(*config, endpoints_, slots_, 1, 0, &pools_);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    // The snapshot is not shared yet: install the processors as a configuration would.
    auto& chain = const_cast<Runtime&>(**rt).payload;
    chain.request.push_back(std::make_unique<TestRequestProcessor>());
    chain.response.push_back(std::make_unique<TestResponseProcessor>());
    worker_ = std::make_unique<Worker>(0, shared_, metrics_);
    port_ =
        worker_
            ->Listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0))
            .port();
    worker_->Start(*rt);
  }
  void TearDown() override {
    worker_->Stop();
    worker_.reset();
    upstream_.reset();
    pools_.DropAll();
  }

  std::string Chat(std::string_view content, bool stream) {
    return R"({"model":"m","stream":)" + std::string(stream ? "true" : "false") +
           R"(,"max_tokens":4,"messages":[{"role":"user","content":")" + std::string(content) +
           R"("}]})";
  }

  std::unique_ptr<testing::ScriptedUpstream> upstream_;
  GatewayShared shared_;
  WorkerMetrics metrics_;
  EndpointRegistry endpoints_;
  PoolStateRegistry pools_;
  MetricSlots slots_;
  std::unique_ptr<Worker> worker_;
  uint16_t port_ = 0;
};

TEST_F(PayloadPhaseTest, RequestProcessorRejectsBeforeAnythingIsForwarded) {
  testing::RawClient client(port_);
  std::string head, body;
  ASSERT_TRUE(client.Exchange(
      testing::RawClient::Post("/v1/chat/completions", Chat("a forbidden prompt", false)), head,
      body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 400"), 0) << head;
  EXPECT_NE(body.find("\"code\":\"content_blocked\""), std::string::npos) << body;
  EXPECT_EQ(upstream_->requests(), 0u);
  EXPECT_EQ(metrics_.client_errors[static_cast<size_t>(ClientError::kPayloadRejected)].load(), 1u);
}

TEST_F(PayloadPhaseTest, ReplacedBodyIsWhatGoesUpstream) {
  testing::RawClient client(port_);
  std::string head, body;
  ASSERT_TRUE(client.Exchange(
      testing::RawClient::Post("/v1/chat/completions", Chat("please rewrite this", false)), head,
      body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  EXPECT_EQ(upstream_->last_body(),
            R"({"model":"m","max_tokens":3,"messages":[{"role":"user","content":"rewritten"}]})");
}

TEST_F(PayloadPhaseTest, ResponseProcessorsReplaceAndDropStreamEvents) {
  testing::RawClient client(port_);
  std::string head, body;
  ASSERT_TRUE(client.Exchange(testing::RawClient::Post("/v1/chat/completions", Chat("hello", true)),
                              head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  EXPECT_NE(body.find("\" w0\""), std::string::npos) << body;
  EXPECT_NE(body.find("\" W1\""), std::string::npos) << body;
  EXPECT_EQ(body.find("\" w1\""), std::string::npos) << body;
  EXPECT_EQ(body.find("\" w2\""), std::string::npos) << body;
  EXPECT_NE(body.find("\" w3\""), std::string::npos) << body;
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos) << body;
  // Events stay in order, each a whole SSE event.
  EXPECT_LT(body.find("\" w0\""), body.find("\" W1\""));
  EXPECT_LT(body.find("\" W1\""), body.find("\" w3\""));
  EXPECT_NE(body.find("\" W1\"},\"finish_reason\":null}]}\n\n"), std::string::npos) << body;
}

TEST_F(PayloadPhaseTest, ResponseProcessorsReplaceAWholeBody) {
  testing::RawClient client(port_);
  std::string head, body;
  ASSERT_TRUE(client.Exchange(
      testing::RawClient::Post("/v1/chat/completions", Chat("hello", false)), head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  EXPECT_NE(body.find("HI THERE"), std::string::npos) << body;
  EXPECT_NE(head.find("Content-Length: " + std::to_string(body.size())), std::string::npos) << head;
}

// The processors built from configuration, through the same request path.
class ConfiguredProcessorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    upstream_ = std::make_unique<testing::ScriptedUpstream>(4);
    auto config = ParseConfig(R"(
pools:
  - name: p
    endpoints:
      - )" + upstream_->url() + R"(
models:
  - name: m
    pool: p
access_log:
  enabled: false
processors:
  - name: guard
    type: patterns
    request: false
    window: 16
    patterns:
      - name: codeword
        pattern: 'w1\s*w2'
        action: block
  - name: pii
    type: pii
    response: false
    detectors: {email: redact, payment_card: block, phone: flag}
  - name: shape
    type: limits
    deny_fields: [logprobs]
)",
                              "configured_processors_test.yaml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto rt = BuildRuntime(*config, endpoints_, slots_, 1, 0, &pools_);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    ASSERT_EQ((*rt)->payload.request.size(), 2u);
    ASSERT_EQ((*rt)->payload.response.size(), 1u);
    worker_ = std::make_unique<Worker>(0, shared_, metrics_);
    port_ =
        worker_
            ->Listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0))
            .port();
    worker_->Start(*rt);
  }
  void TearDown() override {
    worker_->Stop();
    worker_.reset();
    upstream_.reset();
    pools_.DropAll();
  }

  std::string Chat(std::string_view content, bool stream, std::string_view extra = "") {
    return R"({"model":"m","stream":)" + std::string(stream ? "true" : "false") +
           std::string(extra) +
           R"(,"max_tokens":4,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":")" +
           std::string(content) + R"("}]})";
  }
  bool Post(const std::string& body, std::string& head, std::string& response) {
    testing::RawClient client(port_);
    return client.Exchange(testing::RawClient::Post("/v1/chat/completions", body), head, response);
  }

  std::unique_ptr<testing::ScriptedUpstream> upstream_;
  GatewayShared shared_;
  WorkerMetrics metrics_;
  EndpointRegistry endpoints_;
  PoolStateRegistry pools_;
  MetricSlots slots_;
  std::unique_ptr<Worker> worker_;
  uint16_t port_ = 0;
};

TEST_F(ConfiguredProcessorsTest, BlockedPiiIsA400ContentFilterThatNamesTheDetectorOnly) {
  std::string head, body;
  ASSERT_TRUE(Post(Chat("my card is 4111 1111 1111 1111", false), head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 400"), 0) << head;
  EXPECT_NE(body.find(R"("code":"content_filter")"), std::string::npos) << body;
  EXPECT_NE(body.find("payment_card"), std::string::npos) << body;
  EXPECT_EQ(body.find("4111"), std::string::npos) << body;
  EXPECT_EQ(upstream_->requests(), 0u);
}

TEST_F(ConfiguredProcessorsTest, RedactedPromptIsWhatTheUpstreamReceives) {
  std::string head, body;
  ASSERT_TRUE(
      Post(Chat("mail ann@example.com and ann@example.com, or bo@example.org", false), head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  const std::string sent = upstream_->last_body();
  EXPECT_NE(sent.find(R"("content":"mail [EMAIL_1] and [EMAIL_1], or [EMAIL_2]")"),
            std::string::npos)
      << sent;
  EXPECT_EQ(sent.find("example"), std::string::npos) << sent;
  EXPECT_NE(sent.find(R"({"role":"system","content":"be brief"})"), std::string::npos) << sent;
  std::string metrics;
  {
    PrometheusText t;
    PayloadMetrics::Global().Render(t);
    metrics = t.str();
  }
  EXPECT_NE(
      metrics.find(
          R"(tokenway_payload_verdicts_total{processor="pii",detector="email",action="redact",direction="request"} )"),
      std::string::npos)
      << metrics;
}

TEST_F(ConfiguredProcessorsTest, FlaggedPromptPassesWithAHeader) {
  std::string head, body;
  ASSERT_TRUE(Post(Chat("call +1 415 555 2671 tomorrow", false), head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  EXPECT_NE(head.find("X-Tokenway-Flagged: phone"), std::string::npos) << head;
  EXPECT_NE(upstream_->last_body().find("+1 415 555 2671"), std::string::npos);
}

TEST_F(ConfiguredProcessorsTest, DeniedFieldIsRefused) {
  std::string head, body;
  ASSERT_TRUE(Post(Chat("hello", false, R"(,"logprobs":true)"), head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 400"), 0) << head;
  EXPECT_NE(body.find(R"("code":"field_not_allowed")"), std::string::npos) << body;
}

TEST_F(ConfiguredProcessorsTest, APatternSpanningStreamEventsEndsTheStreamWithContentFilter) {
  std::string head, body;
  ASSERT_TRUE(Post(Chat("hello", true), head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  // " w0 w1 w2 w3" arrives one word per event; "w1 w2" spans two of them.
  EXPECT_NE(body.find(R"("finish_reason":"content_filter")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("code":"content_filter")"), std::string::npos) << body;
  EXPECT_EQ(body.find("w1"), std::string::npos) << body;
  EXPECT_EQ(body.find("w2"), std::string::npos) << body;
  EXPECT_EQ(body.find("w3"), std::string::npos) << body;
  // Released before: " w0" cannot begin the pattern and leaves in its own event (early release).
  EXPECT_NE(body.find(R"("content":" w0")"), std::string::npos) << body;
  EXPECT_LT(body.find("w0"), body.find("content_filter"));
  // The chunked body ends properly.
  EXPECT_EQ(body.find("[DONE]"), std::string::npos) << body;
}

TEST_F(ConfiguredProcessorsTest, CleanStreamPassesWhole) {
  std::string head, body;
  // The codeword pattern applies to responses; a prompt mentioning it is not scanned (request:
  // false) and this stream's words are all released by the end.
  ASSERT_TRUE(Post(Chat("w1 w2", false), head, body));
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  EXPECT_NE(body.find("hi there"), std::string::npos) << body;
}

}  // namespace
}  // namespace tokenway
