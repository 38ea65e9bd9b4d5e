// The model-version split driven through the real request path in-process: header and tenant
// match rules before the weighted split, the body rewritten for the version's model and sent to
// the version's pool, the response's model reported as the alias, x-tokenway-version, the
// per-version figures, and a semantic route whose target is the alias (routing, then the split).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "control/config.h"
#include "control/runtime.h"
#include "gateway/worker.h"
#include "governance/governance.h"
#include "support/scripted_upstream.h"
#include "telemetry/metrics.h"

namespace tokenway {
namespace {

constexpr const char* kAcmeKey = "sk-acme-0123456789abcdef";
constexpr const char* kTesterKey = "sk-test-0123456789abcdef";

class VersionPhaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stable_ = std::make_unique<testing::ScriptedUpstream>(3);
    canary_ = std::make_unique<testing::ScriptedUpstream>(3);
    // The scripted upstreams answer "model":"m": every version serves the upstream model "m".
    auto config = ParseConfig(R"(
pools:
  - {name: stable, endpoints: [)" +
                                  stable_->url() + R"(]}
  - {name: canary, endpoints: [)" +
                                  canary_->url() + R"(]}
models:
  - name: chat
    versions:
      - {name: v1, model: m, pool: stable, weight: 1}
      - {name: v2, model: m, pool: canary, weight: 0, match: {headers: {X-Canary: "yes"}}}
      - {name: v3, model: m, pool: canary, weight: 0, match: {tenants: [testers]}}
  - {name: coder, pool: canary}
  - name: auto
    router:
      routes:
        - {name: talk, target: chat, examples: ["hello there, how are you today"]}
        - {name: code, target: coder, examples: ["write a python function that sorts a list"]}
      default: talk
governance:
  backend: local
  tenants:
    - name: acme
      keys: [{id: a, sha256: 63bf42112005427c6410f33d4a8dc52b7ec7102d23b59f606225da1989b16f5a}]
      limits: {}
    - name: testers
      keys: [{id: t, sha256: c871f067542d565c57ebb8b54f99afe326644dceeb5c05fc2209a8161a52875e}]
      limits: {}
access_log:
  enabled: false
)",
                              "version_phase_test.yaml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    std::string warning;
    auto governance = governance_->Build(config->governance, true, warning);
    ASSERT_TRUE(governance.ok()) << governance.status().message();
    auto rt = BuildRuntime(*config, endpoints_, slots_, 1, 0, &pools_, *governance);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    runtime_ = *rt;
    worker_ = std::make_unique<Worker>(0, shared_, metrics_);
    port_ =
        worker_
            ->Listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0))
            .port();
    worker_->Start(runtime_);
  }
  void TearDown() override {
    worker_->Stop();
    worker_.reset();
    stable_.reset();
    canary_.reset();
    pools_.DropAll();
    governance_->Stop();
  }

  // POSTs a chat request for "chat" with the key and extra header lines; the response head and
  // body.
  void Send(const char* key, const std::string& extra, bool stream, std::string& head,
            std::string& body, const std::string& model = "chat",
            const std::string& content = "hi") {
    const std::string json =
        R"({"model":")" + model + R"(","stream":)" + (stream ? "true" : "false") +
        R"(,"max_tokens":4,"messages":[{"role":"user","content":")" + content + R"("}]})";
    std::string r = "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n";
    r += "Content-Type: application/json\r\nAuthorization: Bearer " + std::string(key) + "\r\n";
    r += extra;
    r += "Content-Length: " + std::to_string(json.size()) + "\r\n\r\n" + json;
    testing::RawClient client(port_);
    ASSERT_TRUE(client.Exchange(r, head, body));
  }

  // The x-tokenway-version header's value ("" when absent).
  static std::string Version(const std::string& head) {
    constexpr std::string_view kName = "X-Tokenway-Version: ";
    const size_t at = head.find(kName);
    if (at == std::string::npos) return "";
    const size_t start = at + kName.size();
    return head.substr(start, head.find_first_of("\r\n", start) - start);
  }

  // Requests the version served, once the worker has counted `expected` of them (observe runs
  // after the response's last byte).
  uint64_t VersionRequests(const char* version, uint64_t expected) {
    const RouteVersion* v = runtime_->FindModel("chat")->FindVersion(version);
    const auto& requests = metrics_.versions[v->metrics_slot].requests;
    for (int i = 0; i < 200 && requests.load() < expected; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return requests.load();
  }

  std::unique_ptr<testing::ScriptedUpstream> stable_, canary_;
  std::shared_ptr<GovernanceState> governance_ = std::make_shared<GovernanceState>();
  GatewayShared shared_;
  WorkerMetrics metrics_;
  EndpointRegistry endpoints_;
  PoolStateRegistry pools_;
  MetricSlots slots_;
  std::shared_ptr<const Runtime> runtime_;
  std::unique_ptr<Worker> worker_;
  uint16_t port_ = 0;
};

TEST_F(VersionPhaseTest, SplitSendsToTheVersionPoolAndReportsTheAlias) {
  std::string head, body;
  Send(kAcmeKey, "", false, head, body);
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head << body;
  EXPECT_EQ(Version(head), "v1") << head;
  EXPECT_EQ(stable_->requests(), 1u);
  EXPECT_EQ(canary_->requests(), 0u);
  // Upstream saw the version's model; the client sees the alias.
  EXPECT_NE(stable_->last_body().find(R"("model":"m")"), std::string::npos);
  EXPECT_NE(body.find(R"("model":"chat")"), std::string::npos) << body;
  EXPECT_EQ(body.find(R"("model":"m")"), std::string::npos) << body;
  // A stream: every event reports the alias.
  Send(kAcmeKey, "", true, head, body);
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head;
  EXPECT_NE(body.find(R"("model":"chat")"), std::string::npos) << body;
  EXPECT_EQ(body.find(R"("model":"m")"), std::string::npos) << body;
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos) << body;
  EXPECT_EQ(VersionRequests("v1", 2), 2u);
}

TEST_F(VersionPhaseTest, HeaderAndTenantRulesComeBeforeTheSplit) {
  std::string head, body;
  Send(kAcmeKey, "x-canary: yes\r\n", false, head, body);
  EXPECT_EQ(Version(head), "v2") << head;
  EXPECT_EQ(canary_->requests(), 1u);
  Send(kAcmeKey, "X-Canary: no\r\n", false, head, body);
  EXPECT_EQ(Version(head), "v1") << head;
  Send(kTesterKey, "", false, head, body);
  EXPECT_EQ(Version(head), "v3") << head;
  EXPECT_EQ(canary_->requests(), 2u);
  // The first version (in list order) whose rule holds wins.
  Send(kTesterKey, "X-Canary: yes\r\n", false, head, body);
  EXPECT_EQ(Version(head), "v2") << head;
  EXPECT_EQ(VersionRequests("v1", 1), 1u);
  EXPECT_EQ(VersionRequests("v2", 2), 2u);
  EXPECT_EQ(VersionRequests("v3", 1), 1u);
}

TEST_F(VersionPhaseTest, RunTimeWeightMovesTheSplit) {
  ASSERT_TRUE(pools_.versions().Set("chat", "v1", 0));
  ASSERT_TRUE(pools_.versions().Set("chat", "v3", 1));
  std::string head, body;
  Send(kAcmeKey, "", false, head, body);
  EXPECT_EQ(Version(head), "v3") << head;
  EXPECT_EQ(canary_->requests(), 1u);
}

TEST_F(VersionPhaseTest, SemanticRouteToAnAliasIsSplitAfterwards) {
  std::string head, body;
  Send(kAcmeKey, "", false, head, body, "auto", "hello there, how are you doing today");
  EXPECT_EQ(head.compare(0, 12, "HTTP/1.1 200"), 0) << head << body;
  // Routed to the alias "chat", then split to its version v1 on the stable pool.
  EXPECT_NE(head.find("X-Tokenway-Route: talk; confidence="), std::string::npos) << head;
  EXPECT_EQ(Version(head), "v1") << head;
  EXPECT_EQ(stable_->requests(), 1u);
  EXPECT_NE(stable_->last_body().find(R"("model":"m")"), std::string::npos);
  EXPECT_NE(body.find(R"("model":"chat")"), std::string::npos) << body;
  EXPECT_EQ(VersionRequests("v1", 1), 1u);
  // The other route's target has no versions: no version header, its own pool.
  Send(kAcmeKey, "", false, head, body, "auto", "write a python function that sorts a list");
  EXPECT_NE(head.find("X-Tokenway-Route: code; confidence="), std::string::npos) << head;
  EXPECT_EQ(Version(head), "") << head;
  EXPECT_EQ(canary_->requests(), 1u);
  EXPECT_NE(canary_->last_body().find(R"("model":"coder")"), std::string::npos);
}

}  // namespace
}  // namespace tokenway
