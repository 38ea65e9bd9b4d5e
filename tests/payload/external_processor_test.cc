// The external request processors against hostile services in the same process: webhooks that
// allow, deny, mutate, hang, answer garbage or 500, close mid-answer, or are too slow for
// max_concurrency; ext_proc services that allow, deny with an immediate_response, replace the
// body, misbehave or hang. Each case checks the verdict and the per-processor counters.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>

#include "common/json_writer.h"
#include "common/request_inspector.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "http/json_client.h"
#include "payload/ext_proc_processor.h"
#include "payload/payload_config.h"
#include "payload/webhook_processor.h"
#include "support/guardrail_ext_proc.h"
#include "support/scripted_http_service.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {
namespace {

namespace asio = boost::asio;
using testing::GuardrailDecision;
using testing::GuardrailExtProc;
using testing::HttpOk;
using testing::Reply;
using testing::ScriptedService;
using Kind = RequestVerdict::Kind;
using Counters = ExternalCallCounters;

constexpr std::string_view kBody =
    R"({"model":"m1","messages":[{"role":"user","content":"hello there"}],"max_tokens":50})";

// A request as the payload phase hands it over.
struct Request {
  Request() {
    inspected.model = "m1";
    inspected.prompt_text = "user: hello there";
    inspected.operation = Operation::kChatCompletions;
  }
  InspectedRequest inspected;
  PayloadRequest get() const { return PayloadRequest{kBody, &inspected, "team-a", 7}; }
};

uint64_t Outcome(const std::string& name, Counters::Outcome o) {
  return PayloadMetrics::Global().External(name)->outcomes[o].load();
}
uint64_t Failure(const std::string& name, Counters::Failure f) {
  return PayloadMetrics::Global().External(name)->failures[f].load();
}

class ExternalTest : public ::testing::Test {
 protected:
  // Runs `processor` once for the standard request and returns the verdict.
  RequestVerdict Run(const ExternalRequestProcessor& processor) {
    std::optional<RequestVerdict> out;
    RequestVerdict v;
    Request r;
    ExternalCallSite site;
    site.io = &io_;
    site.http = &client_;
    site.request_id = "req-1";
    site.authority = "gw.example";
    site.path = "/v1/chat/completions";
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          co_await processor.Call(r.get(), site, v);
          out = v;
        },
        asio::detached);
    io_.restart();
    while (!out && io_.run_one() > 0) {
    }
    return out.value_or(RequestVerdict{});
  }

  // Starts `n` calls at once and runs until all have answered.
  std::vector<RequestVerdict> RunConcurrently(const ExternalRequestProcessor& processor, int n) {
    std::vector<RequestVerdict> verdicts(n);
    int done = 0;
    Request r;
    ExternalCallSite site;
    site.io = &io_;
    site.http = &client_;
    site.request_id = "req-n";
    site.path = "/v1/chat/completions";
    for (int i = 0; i < n; ++i) {
      asio::co_spawn(
          io_,
          [&, i]() -> asio::awaitable<void> {
            co_await processor.Call(r.get(), site, verdicts[i]);
            ++done;
          },
          asio::detached);
    }
    io_.restart();
    while (done < n && io_.run_one() > 0) {
    }
    return verdicts;
  }

  std::unique_ptr<WebhookProcessor> Webhook(
      const std::string& name, const std::string& url, FailureMode mode = FailureMode::kClosed,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(300)) {
    ExternalProcessorConfig c;
    c.url = url;
    c.failure_mode = mode;
    c.timeout = timeout;
    auto target = ParseHttpUrl(url);
    EXPECT_TRUE(target.ok());
    return std::make_unique<WebhookProcessor>(name, ProcessorMatch{}, c, *target);
  }

  std::unique_ptr<ExtProcProcessor> ExtProc(
      const std::string& name, const std::string& target, FailureMode mode = FailureMode::kClosed,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000)) {
    ExternalProcessorConfig c;
    c.url = target;
    c.failure_mode = mode;
    c.timeout = timeout;
    return std::make_unique<ExtProcProcessor>(name, ProcessorMatch{}, c);
  }

  asio::io_context io_;
  JsonClient client_{io_};
};

// --- webhook ---

TEST_F(ExternalTest, WebhookSeesTheDocumentedRequest) {
  ScriptedService svc(io_,
                      [](const std::string&) { return Reply{HttpOk(R"({"action":"allow"})")}; });
  auto p = Webhook("wh_shape", svc.url());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kPass);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(svc.last_body).get(doc), simdjson::SUCCESS) << svc.last_body;
  EXPECT_EQ(std::string_view(doc["request_id"]), "req-1");
  EXPECT_EQ(std::string_view(doc["tenant"]), "team-a");
  EXPECT_EQ(std::string_view(doc["model"]), "m1");
  EXPECT_EQ(std::string_view(doc["operation"]), "chat");
  EXPECT_EQ(std::string_view(doc["prompt"]), "user: hello there");
  EXPECT_EQ(int64_t(doc["prompt_tokens"]), 7);
  EXPECT_EQ(bool(doc["stream"]), false);
  EXPECT_EQ(int64_t(doc["body"]["max_tokens"]), 50);
  EXPECT_NE(svc.last_request.find("POST /check HTTP/1.1"), std::string::npos);
  EXPECT_EQ(Outcome("wh_shape", Counters::kAllow), 1u);
}

TEST_F(ExternalTest, WebhookDenies) {
  int n = 0;
  ScriptedService svc(io_, [&](const std::string&) {
    switch (n++) {
      case 0:
        return Reply{HttpOk(R"({"action":"deny","reason":"no secrets"})")};
      case 1:
        return Reply{HttpOk(R"({"action":"deny","reason":"r","status":403,"code":"policy"})")};
      default:
        return Reply{HttpOk(R"({"action":"deny","error":{"message":"custom","code":"x"}})")};
    }
  });
  auto p = Webhook("wh_deny", svc.url());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kReject);
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.code, "content_filter");
  EXPECT_EQ(v.message, "no secrets");
  EXPECT_EQ(v.flagged, "wh_deny");
  v = Run(*p);
  EXPECT_EQ(v.status, 403);
  EXPECT_EQ(v.code, "policy");
  v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kReject);
  EXPECT_EQ(v.reply_body, R"({"error":{"message":"custom","code":"x"}})");
  EXPECT_EQ(Outcome("wh_deny", Counters::kDeny), 3u);
  EXPECT_EQ(client_.connects(), 1u);  // one keep-alive connection for the three calls
}

TEST_F(ExternalTest, WebhookMutates) {
  ScriptedService svc(io_, [](const std::string&) {
    return Reply{HttpOk(R"({"action":"mutate","body":{"model":"m1","max_tokens":5,
                          "messages":[{"role":"user","content":"hi"}]}})")};
  });
  auto p = Webhook("wh_mutate", svc.url());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kReplace);
  EXPECT_EQ(v.body, R"({"model":"m1","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(Outcome("wh_mutate", Counters::kMutate), 1u);
}

TEST_F(ExternalTest, WebhookThatHangsTimesOutClosedAndOpen) {
  ScriptedService svc(io_, [](const std::string&) {
    return Reply{HttpOk(R"({"action":"allow"})"), std::chrono::milliseconds(3000)};
  });
  auto closed =
      Webhook("wh_hang_closed", svc.url(), FailureMode::kClosed, std::chrono::milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  RequestVerdict v = Run(*closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  EXPECT_EQ(v.kind, Kind::kReject);
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(v.code, "payload_processor_unavailable");
  EXPECT_NE(v.message.find("wh_hang_closed"), std::string::npos);
  EXPECT_EQ(Outcome("wh_hang_closed", Counters::kTimeout), 1u);
  EXPECT_EQ(Failure("wh_hang_closed", Counters::kDeadline), 1u);

  auto open =
      Webhook("wh_hang_open", svc.url(), FailureMode::kOpen, std::chrono::milliseconds(100));
  v = Run(*open);
  EXPECT_EQ(v.kind, Kind::kPass);
  EXPECT_EQ(v.flagged, "wh_hang_open:unavailable");
  EXPECT_EQ(Outcome("wh_hang_open", Counters::kTimeout), 1u);
  EXPECT_EQ(PayloadMetrics::Global().External("wh_hang_open")->in_flight.load(), 0);
}

TEST_F(ExternalTest, WebhookAnsweringGarbageIsAnInvalidAnswer) {
  int n = 0;
  const char* answers[] = {"not json",
                           "[1,2]",
                           R"({"verdict":"allow"})",
                           R"({"action":"maybe"})",
                           R"({"action":"mutate","body":"text"})",
                           R"({"action":"deny","status":200})"};
  ScriptedService svc(io_, [&](const std::string&) { return Reply{HttpOk(answers[n++])}; });
  auto p = Webhook("wh_garbage", svc.url());
  for (size_t i = 0; i < std::size(answers); ++i) {
    RequestVerdict v = Run(*p);
    EXPECT_EQ(v.kind, Kind::kReject) << answers[i];
    EXPECT_EQ(v.status, 503) << answers[i];
  }
  EXPECT_EQ(Outcome("wh_garbage", Counters::kInvalidAnswer), std::size(answers));
  EXPECT_EQ(Failure("wh_garbage", Counters::kBadAnswer), std::size(answers));
}

TEST_F(ExternalTest, WebhookAnswering500IsAnError) {
  ScriptedService svc(io_, [](const std::string&) {
    return Reply{"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}"};
  });
  auto p = Webhook("wh_500", svc.url(), FailureMode::kOpen);
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kPass);
  EXPECT_EQ(Outcome("wh_500", Counters::kError), 1u);
  EXPECT_EQ(Failure("wh_500", Counters::kHttpStatus), 1u);
}

TEST_F(ExternalTest, WebhookClosingMidAnswerIsAnError) {
  ScriptedService svc(io_, [](const std::string&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"action\":\"al", {}, true};
  });
  auto p = Webhook("wh_close", svc.url());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(Outcome("wh_close", Counters::kError), 1u);
  EXPECT_EQ(Failure("wh_close", Counters::kClosed), 1u);
}

TEST_F(ExternalTest, WebhookThatIsNotThereFailsAsConnect) {
  uint16_t port;
  {
    asio::ip::tcp::acceptor a(io_, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto p = Webhook("wh_gone", "http://127.0.0.1:" + std::to_string(port) + "/x");
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(Failure("wh_gone", Counters::kConnect), 1u);
}

TEST_F(ExternalTest, WebhookBeyondMaxConcurrencyFailsAtOnce) {
  ScriptedService svc(io_, [](const std::string&) {
    return Reply{HttpOk(R"({"action":"allow"})"), std::chrono::milliseconds(100)};
  });
  ExternalProcessorConfig c;
  c.url = svc.url();
  c.max_concurrency = 2;
  c.failure_mode = FailureMode::kClosed;
  c.timeout = std::chrono::milliseconds(2000);
  WebhookProcessor p("wh_slow", ProcessorMatch{}, c, *ParseHttpUrl(c.url));
  std::vector<RequestVerdict> verdicts = RunConcurrently(p, 5);
  int passed = 0, refused = 0;
  for (const auto& v : verdicts) {
    if (v.kind == Kind::kPass) ++passed;
    if (v.kind == Kind::kReject && v.status == 503) ++refused;
  }
  EXPECT_EQ(passed, 2);
  EXPECT_EQ(refused, 3);
  EXPECT_EQ(svc.requests, 2);
  EXPECT_EQ(Outcome("wh_slow", Counters::kOverloaded), 3u);
  EXPECT_EQ(Failure("wh_slow", Counters::kConcurrency), 3u);
  EXPECT_EQ(PayloadMetrics::Global().External("wh_slow")->in_flight.load(), 0);
}

TEST_F(ExternalTest, WithoutAnEventLoopTheFailureModeApplies) {
  auto p = Webhook("wh_sync", "http://127.0.0.1:9/", FailureMode::kOpen);
  Request r;
  RequestVerdict v;
  p->Process(r.get(), v);
  EXPECT_EQ(v.kind, Kind::kPass);
  EXPECT_EQ(v.flagged, "wh_sync:unavailable");
}

TEST(ParseWebhookAnswer, ReadsEveryAction) {
  ExternalAnswer a;
  ParseWebhookAnswer(R"({"action":"allow","extra":1})", a);
  EXPECT_EQ(a.kind, ExternalAnswer::Kind::kAllow);
  ParseWebhookAnswer(R"({"action":"deny","reason":"why","status":451,"code":"c"})", a);
  EXPECT_EQ(a.kind, ExternalAnswer::Kind::kDeny);
  EXPECT_EQ(a.status, 451);
  EXPECT_EQ(a.code, "c");
  EXPECT_EQ(a.message, "why");
  ParseWebhookAnswer(R"({"action":"mutate","body":{"a":[1, 2]}})", a);
  EXPECT_EQ(a.kind, ExternalAnswer::Kind::kMutate);
  EXPECT_EQ(a.body, R"({"a":[1,2]})");
  for (const char* bad : {"", "{", "null", R"({"action":1})", R"({"action":"deny","code":""})",
                          R"({"action":"deny","reason":5})", R"({"action":"deny","error":"e"})",
                          R"({"action":"mutate"})"}) {
    ParseWebhookAnswer(bad, a);
    EXPECT_EQ(a.kind, ExternalAnswer::Kind::kFailed) << bad;
  }
}

// --- ext_proc ---

TEST_F(ExternalTest, ExtProcAllowsAndSeesEnvoysHeaders) {
  GuardrailExtProc svc([](const std::string&) { return GuardrailDecision{}; });
  ASSERT_GT(svc.Start(), 0);
  auto p = ExtProc("xp_allow", svc.target());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kPass);
  EXPECT_EQ(svc.bodies.load(), 1);
  const std::string h = svc.last_headers();
  EXPECT_NE(h.find(":method: POST\n"), std::string::npos) << h;
  EXPECT_NE(h.find(":path: /v1/chat/completions\n"), std::string::npos) << h;
  EXPECT_NE(h.find(":authority: gw.example\n"), std::string::npos) << h;
  EXPECT_NE(h.find("content-type: application/json\n"), std::string::npos) << h;
  EXPECT_NE(h.find("x-request-id: req-1\n"), std::string::npos) << h;
  EXPECT_NE(h.find("x-tokenway-tenant: team-a\n"), std::string::npos) << h;
  EXPECT_EQ(Outcome("xp_allow", Counters::kAllow), 1u);
}

TEST_F(ExternalTest, ExtProcDeniesWithAnImmediateResponse) {
  int n = 0;
  GuardrailExtProc svc([&](const std::string& body) {
    GuardrailDecision d;
    if (body.empty()) return d;  // the headers pass
    d.kind = GuardrailDecision::Kind::kDeny;
    d.status = 403;
    d.body = n++ == 0 ? R"({"error":{"message":"blocked by guardrail","code":"guard"}})"
                      : "plain text reason";
    return d;
  });
  ASSERT_GT(svc.Start(), 0);
  auto p = ExtProc("xp_deny", svc.target());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kReject);
  EXPECT_EQ(v.status, 403);
  EXPECT_EQ(v.reply_body, R"({"error":{"message":"blocked by guardrail","code":"guard"}})");
  v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kReject);
  EXPECT_EQ(v.code, "content_filter");
  EXPECT_EQ(v.message, "plain text reason");
  EXPECT_TRUE(v.reply_body.empty());
  EXPECT_EQ(Outcome("xp_deny", Counters::kDeny), 2u);
}

TEST_F(ExternalTest, ExtProcDeniesOnTheHeaders) {
  GuardrailExtProc svc([](const std::string&) {
    GuardrailDecision d;
    d.kind = GuardrailDecision::Kind::kDenyOnHeaders;
    d.status = 429;
    return d;
  });
  ASSERT_GT(svc.Start(), 0);
  auto p = ExtProc("xp_deny_headers", svc.target());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kReject);
  EXPECT_EQ(v.status, 429);
  EXPECT_EQ(svc.bodies.load(), 0);
}

TEST_F(ExternalTest, ExtProcMutatesTheBody) {
  const std::string replaced = R"({"model":"m1","messages":[],"max_tokens":3})";
  GuardrailExtProc svc([&](const std::string& body) {
    GuardrailDecision d;
    if (!body.empty()) {
      d.kind = GuardrailDecision::Kind::kMutate;
      d.body = replaced;
    }
    return d;
  });
  ASSERT_GT(svc.Start(), 0);
  auto p = ExtProc("xp_mutate", svc.target());
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kReplace);
  EXPECT_EQ(v.body, replaced);

  GuardrailExtProc early([&](const std::string&) {
    GuardrailDecision d;
    d.kind = GuardrailDecision::Kind::kMutateOnHeaders;
    d.body = replaced;
    return d;
  });
  ASSERT_GT(early.Start(), 0);
  auto q = ExtProc("xp_mutate_headers", early.target());
  v = Run(*q);
  EXPECT_EQ(v.kind, Kind::kReplace);
  EXPECT_EQ(v.body, replaced);
  EXPECT_EQ(early.bodies.load(), 0);
  EXPECT_EQ(Outcome("xp_mutate", Counters::kMutate), 1u);
}

TEST_F(ExternalTest, ExtProcMisbehavingServicesFail) {
  struct Case {
    const char* name;
    GuardrailDecision::Kind kind;
    Counters::Failure failure;
  };
  const Case cases[] = {
      {"xp_wrong_order", GuardrailDecision::Kind::kWrongOrder, Counters::kBadAnswer},
      {"xp_garbage", GuardrailDecision::Kind::kGarbage, Counters::kBadAnswer},
      {"xp_unimplemented", GuardrailDecision::Kind::kError, Counters::kGrpcStatus},
      {"xp_end_early", GuardrailDecision::Kind::kEndEarly, Counters::kClosed},
  };
  for (const Case& c : cases) {
    GuardrailExtProc svc([&](const std::string&) {
      GuardrailDecision d;
      d.kind = c.kind;
      return d;
    });
    ASSERT_GT(svc.Start(), 0);
    auto p = ExtProc(c.name, svc.target());
    RequestVerdict v = Run(*p);
    EXPECT_EQ(v.kind, Kind::kReject) << c.name;
    EXPECT_EQ(v.status, 503) << c.name;
    EXPECT_EQ(v.code, "payload_processor_unavailable") << c.name;
    EXPECT_EQ(Failure(c.name, c.failure), 1u) << c.name << ": " << v.message;
  }
}

TEST_F(ExternalTest, ExtProcWithoutTheServiceIsUnimplemented) {
  // A gRPC server that does not offer ExternalProcessor (only health) answers UNIMPLEMENTED.
  grpc::health::v1::Health::Service health;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&health);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_GT(port, 0);
  auto p = ExtProc("xp_no_service", "127.0.0.1:" + std::to_string(port), FailureMode::kOpen);
  RequestVerdict v = Run(*p);
  EXPECT_EQ(v.kind, Kind::kPass);
  EXPECT_EQ(v.flagged, "xp_no_service:unavailable");
  EXPECT_EQ(Failure("xp_no_service", Counters::kGrpcStatus), 1u);
  server->Shutdown();
}

TEST_F(ExternalTest, ExtProcThatHangsTimesOut) {
  GuardrailExtProc svc([](const std::string&) {
    GuardrailDecision d;
    d.kind = GuardrailDecision::Kind::kHang;
    return d;
  });
  ASSERT_GT(svc.Start(), 0);
  auto p = ExtProc("xp_hang", svc.target(), FailureMode::kClosed, std::chrono::milliseconds(150));
  const auto start = std::chrono::steady_clock::now();
  RequestVerdict v = Run(*p);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(Outcome("xp_hang", Counters::kTimeout), 1u);
  auto q =
      ExtProc("xp_hang_open", svc.target(), FailureMode::kOpen, std::chrono::milliseconds(150));
  v = Run(*q);
  EXPECT_EQ(v.kind, Kind::kPass);
  EXPECT_EQ(Outcome("xp_hang_open", Counters::kTimeout), 1u);
}

TEST_F(ExternalTest, ExtProcThatIsNotThereFailsAsConnect) {
  uint16_t port;
  {
    asio::ip::tcp::acceptor a(io_, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  ExternalProcessorConfig c;
  c.url = "127.0.0.1:" + std::to_string(port);
  c.retries = 1;
  ExtProcProcessor p("xp_gone", ProcessorMatch{}, c);
  RequestVerdict v = Run(p);
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(Failure("xp_gone", Counters::kConnect), 1u) << v.message;
}

// --- configuration and metrics ---

TEST(ExternalConfig, LoadsAndRejects) {
  auto ok = LoadProcessorsConfig(YAML::Load(R"(
- name: guard
  type: webhook
  url: http://127.0.0.1:9000/check
  timeout: 150ms
  failure_mode: open
  max_concurrency: 8
  retries: 1
  deny_status: 403
  headers: {Authorization: Bearer x}
- type: ext_proc
  target: 127.0.0.1:9001
)"),
                                 "test.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  ASSERT_EQ(ok->size(), 2u);
  const ExternalProcessorConfig& e = (*ok)[0].external;
  EXPECT_EQ(e.timeout, std::chrono::milliseconds(150));
  EXPECT_EQ(e.failure_mode, FailureMode::kOpen);
  EXPECT_EQ(e.max_concurrency, 8u);
  EXPECT_EQ(e.retries, 1u);
  EXPECT_EQ(e.deny_status, 403u);
  EXPECT_EQ(e.headers, "Authorization: Bearer x\r\n");
  EXPECT_EQ((*ok)[1].name, "ext_proc_1");
  std::string rendered;
  JsonWriter w(rendered);
  WriteProcessorsConfig(w, *ok);
  EXPECT_NE(rendered.find(R"("url":"http://127.0.0.1:9000/check")"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find(R"("headers":["Authorization"])"), std::string::npos) << rendered;
  EXPECT_EQ(rendered.find("Bearer"), std::string::npos) << rendered;  // values stay secret
  EXPECT_NE(rendered.find(R"("target":"127.0.0.1:9001")"), std::string::npos) << rendered;
  auto chain = BuildPayloadChain(*ok);
  ASSERT_TRUE(chain.ok());
  ASSERT_EQ(chain->request.size(), 2u);
  EXPECT_NE(chain->request[0]->external(), nullptr);
  EXPECT_TRUE(chain->response.empty());

  for (const char* bad : {
           "[{type: webhook}]",
           "[{type: webhook, url: 'https://x/'}]",
           "[{type: webhook, url: 'http://x/', failure_mode: maybe}]",
           "[{type: webhook, url: 'http://x/', timeout: 0s}]",
           "[{type: webhook, url: 'http://x/', target: 'x:1'}]",
           "[{type: webhook, url: 'http://x/', headers: {'Bad Name': v}}]",
           "[{type: ext_proc}]",
           "[{type: ext_proc, target: 'http://x:1'}]",
           "[{type: ext_proc, target: 'x:1', headers: {a: b}}]",
           "[{type: pii, url: 'http://x/'}]",
           "[{type: webhook, url: 'http://x/', window: 8}]",
       }) {
    auto r = LoadProcessorsConfig(YAML::Load(bad), "test.yaml");
    EXPECT_FALSE(r.ok()) << bad;
  }
}

TEST(ExternalMetrics, RenderEveryFamily) {
  ExternalCallCounters* c = PayloadMetrics::Global().External("render_me");
  c->Count(Counters::kDeny);
  c->Fail(Counters::kDeadline);
  c->Observe(3'000'000);
  PrometheusText t;
  PayloadMetrics::Global().Render(t);
  const std::string& s = t.str();
  EXPECT_NE(
      s.find("tokenway_payload_external_calls_total{processor=\"render_me\",outcome=\"deny\"} 1"),
      std::string::npos);
  EXPECT_NE(
      s.find(
          "tokenway_payload_external_failures_total{processor=\"render_me\",kind=\"timeout\"} 1"),
      std::string::npos);
  EXPECT_NE(
      s.find(
          "tokenway_payload_external_call_seconds_bucket{processor=\"render_me\",le=\"0.005\"} 1"),
      std::string::npos);
  EXPECT_NE(s.find("tokenway_payload_external_in_flight{processor=\"render_me\"} 0"),
            std::string::npos);
}

}  // namespace
}  // namespace tokenway
