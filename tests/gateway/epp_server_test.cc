// The endpoint-picker front door in-process, through a real gRPC channel on loopback: the test
// plays Envoy's ext_proc message sequence against an EppServer whose worker routes to two
// scripted model servers, and plays the Gateway's part of the data plane by sending the request
// to the endpoint tokenway picked and feeding the real response back through the stream.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "control/config.h"
#include "control/runtime.h"
#include "envoy/service/ext_proc/v3/external_processor.grpc.pb.h"
#include "gateway/epp_server.h"
#include "gateway/worker.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "support/scripted_upstream.h"
#include "telemetry/metrics.h"

namespace tokenway {
namespace {

namespace ep = envoy::service::ext_proc::v3;
using Mode = envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;

// Polls `cond` for up to 5 s (settlement runs on the worker after the last answer is sent).
template <typename F>
bool Eventually(F cond) {
  for (int i = 0; i < 500; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

std::string HeaderOf(const ep::HeaderMutation& m, const std::string& key) {
  for (const auto& h : m.set_headers()) {
    if (h.header().key() == key) return h.header().raw_value();
  }
  return "";
}

std::string Chat(std::string_view model, bool stream, std::string_view content = "hello") {
  return R"({"model":")" + std::string(model) + R"(","stream":)" + (stream ? "true" : "false") +
         R"(,"max_tokens":4,"messages":[{"role":"user","content":")" + std::string(content) +
         R"("}]})";
}

class EppServerTest : public ::testing::Test {
 protected:
  void Start(std::string_view epp_extra = "", std::string_view pool_extra = "",
             std::string_view models_extra = "",
             std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
             uint64_t max_body_bytes = 4096) {
    a_ = std::make_unique<testing::ScriptedUpstream>(4);
    b_ = std::make_unique<testing::ScriptedUpstream>(4);
    auto config = ParseConfig(R"(
epp:
  listen: 127.0.0.1:0
)" + std::string(epp_extra) + R"(
health:
  active:
    enabled: false
engine_metrics:
  enabled: false
pools:
  - name: p
    policy: least-request
)" + std::string(pool_extra) + R"(
    endpoints:
      - )" + a_->url() + R"(
      - )" + b_->url() + R"(
models:
  - name: m
    pool: p
)" + std::string(models_extra) + R"(
access_log:
  enabled: false
limits:
  max_body_bytes: )" + std::to_string(max_body_bytes) +
                                  R"(
)",
                              "epp_server_test.yaml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto rt = BuildRuntime(*config, endpoints_, slots_, 1, 0, &pools_);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    runtime_ = *rt;
    worker_ = std::make_unique<Worker>(0, shared_, metrics_);
    worker_->Start(runtime_);
    server_ = std::make_unique<EppServer>(std::vector<Worker*>{worker_.get()});
    auto port = server_->Start(config->epp, max_body_bytes + (1 << 20));
    ASSERT_TRUE(port.ok()) << port.status().message();
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(*port),
                                   credentials ? credentials : grpc::InsecureChannelCredentials());
    stub_ = ep::ExternalProcessor::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (worker_) worker_->Stop();
    worker_.reset();
    runtime_.reset();
    pools_.DropAll();
  }

  std::string Endpoint(const testing::ScriptedUpstream& u) {
    return "127.0.0.1:" + std::to_string(u.port());
  }
  int64_t EndpointInFlight() {
    int64_t n = 0;
    for (const auto& e : runtime_->pools[0]->endpoints) n += e.state->in_flight.load();
    return n;
  }
  uint64_t Decisions(EppDecision d) {
    return metrics_.epp_decisions[static_cast<size_t>(d)].load();
  }

  static ep::ProcessingRequest Headers(
      std::string_view path, bool end_of_stream,
      Mode::BodySendMode request_mode = Mode::FULL_DUPLEX_STREAMED,
      Mode::BodySendMode response_mode = Mode::FULL_DUPLEX_STREAMED,
      std::string_view method = "POST") {
    ep::ProcessingRequest r;
    auto* h = r.mutable_request_headers();
    auto add = [&](std::string_view k, std::string_view v) {
      auto* hv = h->mutable_headers()->add_headers();
      hv->set_key(std::string(k));
      hv->set_raw_value(std::string(v));
    };
    add(":method", method);
    add(":path", path);
    add(":authority", "gw");
    add("content-type", "application/json");
    add("x-request-id", "req-1");
    h->set_end_of_stream(end_of_stream);
    r.mutable_protocol_config()->set_request_body_mode(request_mode);
    r.mutable_protocol_config()->set_response_body_mode(response_mode);
    return r;
  }
  static ep::ProcessingRequest Body(std::string_view bytes, bool end_of_stream,
                                    bool response = false) {
    ep::ProcessingRequest r;
    auto* b = response ? r.mutable_response_body() : r.mutable_request_body();
    b->set_body(std::string(bytes));
    b->set_end_of_stream(end_of_stream);
    return r;
  }
  static ep::ProcessingRequest ResponseHeaders(int status, std::string_view content_type,
                                               std::string_view served = {}) {
    ep::ProcessingRequest r;
    auto* h = r.mutable_response_headers();
    auto* s = h->mutable_headers()->add_headers();
    s->set_key(":status");
    s->set_raw_value(std::to_string(status));
    auto* c = h->mutable_headers()->add_headers();
    c->set_key("content-type");
    c->set_raw_value(std::string(content_type));
    if (!served.empty()) {
      auto& lb = (*r.mutable_metadata_context()->mutable_filter_metadata())["envoy.lb"];
      (*lb.mutable_fields())["x-gateway-destination-endpoint-served"].set_string_value(
          std::string(served));
    }
    return r;
  }

  // Sends the request to `endpoint` as the Gateway would and returns the response body.
  std::string Upstream(const std::string& endpoint, const std::string& body) {
    uint16_t port = static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
    testing::RawClient client(port);
    std::string head, response;
    EXPECT_TRUE(
        client.Exchange(testing::RawClient::Post("/v1/chat/completions", body), head, response));
    return response;
  }

  std::unique_ptr<testing::ScriptedUpstream> a_, b_;
  GatewayShared shared_;
  WorkerMetrics metrics_;
  EndpointRegistry endpoints_;
  PoolStateRegistry pools_;
  MetricSlots slots_;
  std::shared_ptr<const Runtime> runtime_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<EppServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ep::ExternalProcessor::Stub> stub_;
};

TEST_F(EppServerTest, FullDuplexStreamedPickThenResponseUsage) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  const std::string body = Chat("m", false);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  ASSERT_TRUE(stream->Write(Body(body.substr(0, 20), false)));
  ASSERT_TRUE(stream->Write(Body(body.substr(20), true)));

  // One header answer with the pick, then the body back as streamed chunks.
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_request_headers()) << r.DebugString();
  const auto& common = r.request_headers().response();
  const std::string destination =
      HeaderOf(common.header_mutation(), "x-gateway-destination-endpoint");
  EXPECT_TRUE(common.clear_route_cache());
  const std::string a = Endpoint(*a_), b = Endpoint(*b_);
  EXPECT_TRUE(destination == a + "," + b || destination == b + "," + a) << destination;
  const auto& lb = r.dynamic_metadata().fields().at("envoy.lb").struct_value().fields();
  EXPECT_EQ(lb.at("x-gateway-destination-endpoint").string_value(), destination);
  std::string echoed;
  bool eos = false;
  while (!eos) {
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_request_body()) << r.DebugString();
    const auto& sr = r.request_body().response().body_mutation().streamed_response();
    echoed += sr.body();
    eos = sr.end_of_stream();
  }
  EXPECT_EQ(echoed, body);
  EXPECT_EQ(Decisions(EppDecision::kPicked), 1u);
  EXPECT_EQ(EndpointInFlight(), 1);  // the picked endpoint carries the request until it ends

  // The Gateway forwards to the first endpoint and shows tokenway the response.
  const std::string picked = destination.substr(0, destination.find(','));
  const std::string response = Upstream(picked, echoed);
  ASSERT_TRUE(stream->Write(ResponseHeaders(200, "application/json", picked)));
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_TRUE(r.has_response_headers()) << r.DebugString();
  ASSERT_TRUE(stream->Write(Body(response.substr(0, 10), false, true)));
  ASSERT_TRUE(stream->Write(Body(response.substr(10), true, true)));
  std::string relayed;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_response_body());
    relayed += r.response_body().response().body_mutation().streamed_response().body();
  }
  EXPECT_EQ(relayed, response);  // unchanged
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());

  const uint16_t model = slots_.models.SlotFor("m");
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
  EXPECT_EQ(metrics_.requests[model][StatusSlot(200)].load(), 1u);
  EXPECT_GT(metrics_.completion_tokens[model].load(), 0u);  // usage read from the JSON body
  EXPECT_EQ(metrics_.usage_unknown[model].load(), 0u);
  EXPECT_TRUE(Eventually([&] { return metrics_.epp_streams.load() == 0; }));
}

TEST_F(EppServerTest, BufferedModeAnswersHeadersThenBodyWithThePick) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false, Mode::BUFFERED, Mode::NONE)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_request_headers());
  EXPECT_EQ(r.request_headers().response().header_mutation().set_headers_size(), 0);
  ASSERT_TRUE(stream->Write(Body(Chat("m", false), true)));
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_request_body()) << r.DebugString();
  const auto& common = r.request_body().response();
  EXPECT_FALSE(HeaderOf(common.header_mutation(), "x-gateway-destination-endpoint").empty());
  EXPECT_TRUE(common.clear_route_cache());
  EXPECT_FALSE(common.has_body_mutation());  // unchanged body
  // Response processing off: the Gateway ends the stream after the request.
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
}

TEST_F(EppServerTest, StreamedResponseUsageInjectedAndStripped) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  const std::string body = Chat("m", true);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  ASSERT_TRUE(stream->Write(Body(body, true)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  const ep::HeaderMutation mutation = r.request_headers().response().header_mutation();
  const std::string destination = HeaderOf(mutation, "x-gateway-destination-endpoint");
  std::string sent;
  for (bool eos = false; !eos;) {
    ASSERT_TRUE(stream->Read(&r));
    const auto& sr = r.request_body().response().body_mutation().streamed_response();
    sent += sr.body();
    eos = sr.end_of_stream();
  }
  // The stream asks for usage; Content-Length follows the rewritten body.
  EXPECT_NE(sent.find("include_usage"), std::string::npos) << sent;
  EXPECT_EQ(HeaderOf(mutation, "content-length"), std::to_string(sent.size()));

  const std::string picked = destination.substr(0, destination.find(','));
  const std::string sse = Upstream(picked, sent);
  ASSERT_NE(sse.find("\"choices\":[]"), std::string::npos);
  ASSERT_TRUE(stream->Write(ResponseHeaders(200, "text/event-stream")));
  ASSERT_TRUE(stream->Read(&r));
  // Chunks cut across events, as a network would.
  std::string relayed;
  for (size_t at = 0; at < sse.size(); at += 37) {
    const bool last = at + 37 >= sse.size();
    ASSERT_TRUE(stream->Write(Body(sse.substr(at, 37), last, true)));
    ASSERT_TRUE(stream->Read(&r));
    relayed += r.response_body().response().body_mutation().streamed_response().body();
  }
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(relayed.find("\"choices\":[]"), std::string::npos) << relayed;  // taken out
  EXPECT_NE(relayed.find("[DONE]"), std::string::npos);
  EXPECT_NE(relayed.find(" w3"), std::string::npos);
  const uint16_t model = slots_.models.SlotFor("m");
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
  EXPECT_GT(metrics_.completion_tokens[model].load(), 0u);
  EXPECT_EQ(metrics_.usage_unknown[model].load(), 0u);
}

TEST_F(EppServerTest, StreamedResponseEndedByAResponseProcessor) {
  // A pattern spanning two events blocks the stream through the ext_proc front door too.
  Start(
      "processors:\n  - {type: patterns, request: false, window: 16, patterns: "
      "[{name: codeword, pattern: 'w1\\s*w2'}]}\n");
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  const std::string body = Chat("m", true);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  ASSERT_TRUE(stream->Write(Body(body, true)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  const ep::HeaderMutation mutation = r.request_headers().response().header_mutation();
  const std::string destination = HeaderOf(mutation, "x-gateway-destination-endpoint");
  std::string sent;
  for (bool eos = false; !eos;) {
    ASSERT_TRUE(stream->Read(&r));
    const auto& sr = r.request_body().response().body_mutation().streamed_response();
    sent += sr.body();
    eos = sr.end_of_stream();
  }
  const std::string picked = destination.substr(0, destination.find(','));
  const std::string sse = Upstream(picked, sent);
  ASSERT_TRUE(stream->Write(ResponseHeaders(200, "text/event-stream")));
  ASSERT_TRUE(stream->Read(&r));
  std::string relayed;
  for (size_t at = 0; at < sse.size(); at += 37) {
    const bool last = at + 37 >= sse.size();
    ASSERT_TRUE(stream->Write(Body(sse.substr(at, 37), last, true)));
    ASSERT_TRUE(stream->Read(&r));
    relayed += r.response_body().response().body_mutation().streamed_response().body();
  }
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_NE(relayed.find(R"("finish_reason":"content_filter")"), std::string::npos) << relayed;
  EXPECT_NE(relayed.find(R"("code":"content_filter")"), std::string::npos) << relayed;
  EXPECT_EQ(relayed.find("w1"), std::string::npos) << relayed;
  EXPECT_EQ(relayed.find("w3"), std::string::npos) << relayed;
  EXPECT_EQ(relayed.find("[DONE]"), std::string::npos) << relayed;
  EXPECT_NE(relayed.find(" w0"), std::string::npos) << relayed;
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
}

TEST_F(EppServerTest, LargeBodyGoesBackInBoundedChunksInOrder) {
  Start("", "", "", nullptr, 8 << 20);
  // 3 MB: 49 chunks of at most 62,000 bytes, more than the stream's write ring holds at once.
  const std::string body = Chat("m", false, std::string(3 << 20, 'a'));
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  for (size_t at = 0; at < body.size(); at += 1 << 20) {
    ASSERT_TRUE(stream->Write(Body(body.substr(at, 1 << 20), at + (1 << 20) >= body.size())));
  }
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_request_headers());
  std::string echoed;
  size_t chunks = 0;
  for (bool eos = false; !eos; ++chunks) {
    ASSERT_TRUE(stream->Read(&r));
    const auto& sr = r.request_body().response().body_mutation().streamed_response();
    EXPECT_LE(sr.body().size(), 62000u);
    echoed += sr.body();
    eos = sr.end_of_stream();
  }
  EXPECT_EQ(chunks, (body.size() + 61999) / 62000);
  EXPECT_TRUE(echoed == body);
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
}

TEST_F(EppServerTest, BufferedModeRewrittenBodyCarriesItsContentLength) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(
      stream->Write(Headers("/v1/chat/completions", false, Mode::BUFFERED, Mode::BUFFERED)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(stream->Write(Body(Chat("m", true), true)));
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_request_body()) << r.DebugString();
  const auto& common = r.request_body().response();
  const std::string& body = common.body_mutation().body();
  EXPECT_NE(body.find("include_usage"), std::string::npos) << body;
  EXPECT_EQ(HeaderOf(common.header_mutation(), "content-length"), std::to_string(body.size()));
  EXPECT_FALSE(HeaderOf(common.header_mutation(), "x-gateway-destination-endpoint").empty());
  ctx.TryCancel();
  stream->Finish();
}

TEST_F(EppServerTest, ObservabilityModeIsNeverAnswered) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  auto headers = Headers("/v1/chat/completions", false);
  headers.set_observability_mode(true);
  ASSERT_TRUE(stream->Write(headers));
  ASSERT_TRUE(stream->Write(Body(Chat("m", false), true)));
  EXPECT_TRUE(Eventually([&] { return Decisions(EppDecision::kPicked) == 1; }));
  stream->WritesDone();
  ep::ProcessingResponse r;
  EXPECT_FALSE(stream->Read(&r));  // no answer at all, then the end
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
}

// A client that asked for usage itself: nothing to take out, so every chunk goes back unchanged
// (answered on gRPC's thread) while the worker reads the usage from the events.
TEST_F(EppServerTest, StreamedResponseEchoedUnchangedWithUsage) {
  Start();
  const std::string body =
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":4,)"
      R"("messages":[{"role":"user","content":"hi"}]})";
  for (int round = 0; round < 2; ++round) {
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
    ASSERT_TRUE(stream->Write(Body(body, true)));
    ep::ProcessingResponse r;
    ASSERT_TRUE(stream->Read(&r));
    const std::string destination = HeaderOf(r.request_headers().response().header_mutation(),
                                             "x-gateway-destination-endpoint");
    for (bool eos = false; !eos;) {
      ASSERT_TRUE(stream->Read(&r));
      eos = r.request_body().response().body_mutation().streamed_response().end_of_stream();
    }
    const std::string sse = Upstream(destination.substr(0, destination.find(',')), body);
    ASSERT_TRUE(stream->Write(ResponseHeaders(200, "text/event-stream")));
    ASSERT_TRUE(stream->Read(&r));
    std::string relayed;
    const size_t cut = round == 0 ? sse.size() : 29;  // round 1: cancelled after a few chunks
    for (size_t at = 0; at < cut; at += 29) {
      const bool last = at + 29 >= sse.size();
      ASSERT_TRUE(stream->Write(Body(sse.substr(at, 29), last, true)));
      ASSERT_TRUE(stream->Read(&r));
      const auto& sr = r.response_body().response().body_mutation().streamed_response();
      EXPECT_EQ(sr.end_of_stream(), last);
      relayed += sr.body();
    }
    if (round == 0) {
      EXPECT_EQ(relayed, sse);  // unchanged, usage chunk included: the client asked for it
      stream->WritesDone();
      EXPECT_FALSE(stream->Read(&r));
      EXPECT_TRUE(stream->Finish().ok());
    } else {
      ctx.TryCancel();
      EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
    }
    EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
    EXPECT_EQ(EndpointInFlight(), 0);
  }
  const uint16_t model = slots_.models.SlotFor("m");
  EXPECT_EQ(metrics_.requests[model][StatusSlot(200)].load(), 1u);
  EXPECT_EQ(metrics_.requests[model][StatusSlot(499)].load(), 1u);
  EXPECT_GT(metrics_.completion_tokens[model].load(), 0u);
  EXPECT_TRUE(Eventually([&] { return metrics_.epp_streams.load() == 0; }));
}

TEST_F(EppServerTest, TheServedEndpointCarriesTheLoadWhenTheGatewayFellBack) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  ASSERT_TRUE(stream->Write(Body(Chat("m", false), true)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  const std::string destination =
      HeaderOf(r.request_headers().response().header_mutation(), "x-gateway-destination-endpoint");
  for (bool eos = false; !eos;) {
    ASSERT_TRUE(stream->Read(&r));
    eos = r.request_body().response().body_mutation().streamed_response().end_of_stream();
  }
  const std::string fallback = destination.substr(destination.find(',') + 1);
  const auto& endpoints = runtime_->pools[0]->endpoints;
  auto in_flight = [&](const std::string& ip_port) -> int64_t {
    for (const auto& e : endpoints) {
      if (e.ip_port == ip_port) return e.state->in_flight.load();
    }
    return -1;
  };
  ASSERT_EQ(in_flight(fallback), 0);
  // The first endpoint failed; the Gateway's retry reached the fallback.
  ASSERT_TRUE(stream->Write(ResponseHeaders(200, "application/json", fallback)));
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_EQ(in_flight(fallback), 1);
  EXPECT_EQ(EndpointInFlight(), 1);
  ASSERT_TRUE(stream->Write(
      Body(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}})", true, true)));
  ASSERT_TRUE(stream->Read(&r));
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
  for (const auto& e : endpoints) {
    if (e.ip_port == fallback) {
      EXPECT_EQ(metrics_.endpoint_tokens[e.metrics_slot][1].load(), 2u);  // output tokens
    }
  }
}

TEST_F(EppServerTest, SubsetHintRestrictsThePick) {
  Start();
  const std::string b = Endpoint(*b_);
  for (int i = 0; i < 4; ++i) {
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    auto headers = Headers("/v1/chat/completions", false);
    auto& hint =
        (*headers.mutable_metadata_context()->mutable_filter_metadata())["envoy.lb.subset_hint"];
    (*hint.mutable_fields())["x-gateway-destination-endpoint-subset"]
        .mutable_list_value()
        ->add_values()
        ->set_string_value(b);
    ASSERT_TRUE(stream->Write(headers));
    ASSERT_TRUE(stream->Write(Body(Chat("m", false), true)));
    ep::ProcessingResponse r;
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_EQ(HeaderOf(r.request_headers().response().header_mutation(),
                       "x-gateway-destination-endpoint"),
              b);
    ctx.TryCancel();
    stream->Finish();
  }
  // A subset with no eligible endpoint: 503.
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  auto headers = Headers("/v1/chat/completions", false);
  auto* h = headers.mutable_request_headers()->mutable_headers()->add_headers();
  h->set_key("x-gateway-destination-endpoint-subset");
  h->set_raw_value("10.9.9.9:8000");
  ASSERT_TRUE(stream->Write(headers));
  ASSERT_TRUE(stream->Write(Body(Chat("m", false), true)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_immediate_response()) << r.DebugString();
  EXPECT_EQ(static_cast<int>(r.immediate_response().status().code()), 503);
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
}

TEST_F(EppServerTest, UnknownModelIsAnImmediate404WithOpenAiJson) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  ASSERT_TRUE(stream->Write(Body(Chat("nope", false), true)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_immediate_response());
  const auto& ir = r.immediate_response();
  EXPECT_EQ(static_cast<int>(ir.status().code()), 404);
  EXPECT_NE(ir.body().find("\"code\":\"model_not_found\""), std::string::npos) << ir.body();
  EXPECT_EQ(HeaderOf(ir.headers(), "content-type"), "application/json");
  EXPECT_EQ(HeaderOf(ir.headers(), "x-request-id"), "req-1");
  EXPECT_FALSE(stream->Read(&r));  // the stream ends after an immediate response
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(metrics_.client_errors[static_cast<size_t>(ClientError::kUnknownModel)].load(), 1u);
  EXPECT_EQ(Decisions(EppDecision::kImmediateResponse), 1u);
}

TEST_F(EppServerTest, CancelMidResponseReleasesEverything) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  ASSERT_TRUE(stream->Write(Body(Chat("m", true), true)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  for (bool eos = false; !eos;) {
    ASSERT_TRUE(stream->Read(&r));
    eos = r.request_body().response().body_mutation().streamed_response().end_of_stream();
  }
  ASSERT_TRUE(stream->Write(ResponseHeaders(200, "text/event-stream")));
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(stream->Write(
      Body("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n", false, true)));
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_EQ(EndpointInFlight(), 1);
  ctx.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
  EXPECT_EQ(metrics_.client_errors[static_cast<size_t>(ClientError::kDisconnected)].load(), 1u);
  const uint16_t model = slots_.models.SlotFor("m");
  EXPECT_EQ(metrics_.requests[model][StatusSlot(499)].load(), 1u);
  EXPECT_TRUE(Eventually([&] { return metrics_.epp_streams.load() == 0; }));
}

TEST_F(EppServerTest, MalformedStreamsGetA400Or413) {
  Start();
  {  // A response before any request.
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    ASSERT_TRUE(stream->Write(ResponseHeaders(200, "application/json")));
    ep::ProcessingResponse r;
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_immediate_response());
    EXPECT_EQ(static_cast<int>(r.immediate_response().status().code()), 400);
  }
  {  // A body over limits.max_body_bytes.
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
    ASSERT_TRUE(stream->Write(Body(std::string(5000, 'x'), false)));
    ep::ProcessingResponse r;
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_immediate_response());
    EXPECT_EQ(static_cast<int>(r.immediate_response().status().code()), 413);
  }
  {  // Invalid JSON.
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
    ASSERT_TRUE(stream->Write(Body("{not json", true)));
    ep::ProcessingResponse r;
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_immediate_response());
    EXPECT_EQ(static_cast<int>(r.immediate_response().status().code()), 400);
  }
  {  // No :path.
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    ep::ProcessingRequest headers;
    auto* h = headers.mutable_request_headers()->mutable_headers()->add_headers();
    h->set_key(":method");
    h->set_raw_value("POST");
    ASSERT_TRUE(stream->Write(headers));
    ep::ProcessingResponse r;
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_immediate_response());
    EXPECT_EQ(static_cast<int>(r.immediate_response().status().code()), 400);
  }
  EXPECT_EQ(metrics_.epp_errors[static_cast<size_t>(EppError::kOutOfOrder)].load(), 1u);
  EXPECT_EQ(metrics_.epp_errors[static_cast<size_t>(EppError::kMissingHeader)].load(), 1u);
  EXPECT_EQ(metrics_.client_errors[static_cast<size_t>(ClientError::kBodyTooLarge)].load(), 1u);
  EXPECT_EQ(metrics_.client_errors[static_cast<size_t>(ClientError::kInvalidJson)].load(), 1u);
  EXPECT_TRUE(Eventually([&] { return metrics_.epp_streams.load() == 0; }));
}

TEST_F(EppServerTest, HeadersOnlyRequestsGetAnEndpointWithoutAccounting) {
  Start();
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(stream->Write(
      Headers("/v1/models", true, Mode::FULL_DUPLEX_STREAMED, Mode::FULL_DUPLEX_STREAMED, "GET")));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_request_headers());
  EXPECT_FALSE(
      HeaderOf(r.request_headers().response().header_mutation(), "x-gateway-destination-endpoint")
          .empty());
  EXPECT_EQ(Decisions(EppDecision::kPassthrough), 1u);
  EXPECT_EQ(metrics_.in_flight.load(), 0);
}

TEST_F(EppServerTest, SaturatedPoolShedsAndAnswersBeforeTheGatewayTimesOut) {
  Start("  message_timeout: 100ms\n", "    flow_control: {max_in_flight: 1, queue_ttl: 30s}\n",
        "  - {name: s, pool: p, priority: -1}\n");
  // Two requests take both endpoints' room.
  grpc::ClientContext c1, c2;
  auto s1 = stub_->Process(&c1);
  auto s2 = stub_->Process(&c2);
  ep::ProcessingResponse r;
  for (auto* s : {s1.get(), s2.get()}) {
    ASSERT_TRUE(s->Write(Headers("/v1/chat/completions", false)));
    ASSERT_TRUE(s->Write(Body(Chat("m", false), true)));
    ASSERT_TRUE(s->Read(&r));
    ASSERT_TRUE(r.has_request_headers()) << r.DebugString();
  }
  EXPECT_EQ(EndpointInFlight(), 2);
  // A sheddable model: 429 at once.
  {
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
    ASSERT_TRUE(stream->Write(Body(Chat("s", false), true)));
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_immediate_response()) << r.DebugString();
    EXPECT_EQ(static_cast<int>(r.immediate_response().status().code()), 429);
    EXPECT_NE(r.immediate_response().body().find("pool_saturated"), std::string::npos);
  }
  // A request that would wait: 503 decision_timeout after epp.message_timeout.
  {
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
    ASSERT_TRUE(stream->Write(Body(Chat("m", false), true)));
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_immediate_response()) << r.DebugString();
    EXPECT_EQ(static_cast<int>(r.immediate_response().status().code()), 503);
    EXPECT_NE(r.immediate_response().body().find("decision_timeout"), std::string::npos);
    EXPECT_EQ(HeaderOf(r.immediate_response().headers(), "retry-after"), "1");
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  }
  EXPECT_EQ(metrics_.epp_errors[static_cast<size_t>(EppError::kDecisionTimeout)].load(), 1u);
  c1.TryCancel();
  c2.TryCancel();
  s1->Finish();
  s2->Finish();
  EXPECT_TRUE(Eventually([&] { return metrics_.in_flight.load() == 0; }));
  EXPECT_EQ(EndpointInFlight(), 0);
}

// Random message sequences — in order, out of order, truncated, cancelled or half-closed at any
// point — never crash the server or leak a counter.
TEST_F(EppServerTest, RandomMessageSequencesLeaveNothingBehind) {
  Start();
  std::mt19937 rng(1234);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::string paths[] = {"/v1/chat/completions", "/v1/models", "/v1/completions"};
  const std::string bodies[] = {Chat("m", false), Chat("m", true),        Chat("nope", false),
                                "{\"model\":",    std::string(5000, 'x'), ""};
  for (int i = 0; i < 150; ++i) {
    grpc::ClientContext ctx;
    auto stream = stub_->Process(&ctx);
    const int n = 1 + pick(7);
    for (int k = 0; k < n; ++k) {
      ep::ProcessingRequest m;
      switch (pick(8)) {
        case 0:
        case 1:
          m = Headers(paths[pick(3)], pick(4) == 0,
                      pick(3) == 0 ? Mode::BUFFERED : Mode::FULL_DUPLEX_STREAMED);
          break;
        case 2:
        case 3:
          m = Body(bodies[pick(6)], pick(2) == 0);
          break;
        case 4:
          m.mutable_request_trailers();
          break;
        case 5:
          m = ResponseHeaders(pick(2) ? 200 : 503,
                              pick(2) ? "text/event-stream" : "application/json");
          break;
        case 6:
          m = Body("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n", pick(3) == 0, true);
          break;
        default:
          break;  // an empty message
      }
      if (!stream->Write(m)) break;
    }
    if (pick(2)) {
      stream->WritesDone();
    } else {
      ctx.TryCancel();
    }
    ep::ProcessingResponse r;
    while (stream->Read(&r)) {
    }
    stream->Finish();
  }
  EXPECT_TRUE(Eventually([&] { return metrics_.epp_streams.load() == 0; }));
  EXPECT_EQ(metrics_.in_flight.load(), 0);
  EXPECT_EQ(EndpointInFlight(), 0);
}

TEST_F(EppServerTest, StreamLimitAndHealth) {
  Start("  max_streams: 1\n");
  auto health = grpc::health::v1::Health::NewStub(channel_);
  auto check = [&](const std::string& service, grpc::health::v1::HealthCheckResponse& out) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    return health->Check(&ctx, req, &out);
  };
  grpc::health::v1::HealthCheckResponse hr;
  ASSERT_TRUE(check("liveness", hr).ok());
  EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  ASSERT_TRUE(check("readiness", hr).ok());
  EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  server_->SetReady(true);
  ASSERT_TRUE(check("envoy.service.ext_proc.v3.ExternalProcessor", hr).ok());
  EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("no-such-service", hr).error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext first_ctx;
  auto first = stub_->Process(&first_ctx);
  ASSERT_TRUE(first->Write(Headers("/v1/chat/completions", false)));
  EXPECT_TRUE(Eventually([&] { return metrics_.epp_streams.load() == 1; }));
  grpc::ClientContext second_ctx;
  auto second = stub_->Process(&second_ctx);
  ep::ProcessingResponse r;
  EXPECT_FALSE(second->Read(&r));
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(metrics_.epp_errors[static_cast<size_t>(EppError::kStreamLimit)].load(), 1u);
  first_ctx.TryCancel();
  first->Finish();
}

TEST_F(EppServerTest, HealthWatchFollowsReadinessAndDrainRefusesNewStreams) {
  Start();
  using grpc::health::v1::HealthCheckResponse;
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext watch_ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("readiness");
  auto watch = health->Watch(&watch_ctx, req);
  HealthCheckResponse hr;
  ASSERT_TRUE(watch->Read(&hr));
  EXPECT_EQ(hr.status(), HealthCheckResponse::NOT_SERVING);
  server_->SetReady(true);
  ASSERT_TRUE(watch->Read(&hr));
  EXPECT_EQ(hr.status(), HealthCheckResponse::SERVING);
  server_->BeginDrain();
  ASSERT_TRUE(watch->Read(&hr));
  EXPECT_EQ(hr.status(), HealthCheckResponse::NOT_SERVING);
  watch_ctx.TryCancel();
  watch->Finish();

  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ep::ProcessingResponse r;
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(EppServerTest, ServesTlsWithTheConfiguredCertificate) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("epp_tls_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "openssl is not available";
  std::ifstream in(cert);
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = pem.str();
  Start("  tls: {cert_file: " + cert + ", key_file: " + key + "}\n", "", "",
        grpc::SslCredentials(options));
  grpc::ClientContext ctx;
  auto stream = stub_->Process(&ctx);
  ASSERT_TRUE(stream->Write(Headers("/v1/chat/completions", false)));
  ASSERT_TRUE(stream->Write(Body(Chat("m", false), true)));
  ep::ProcessingResponse r;
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_FALSE(
      HeaderOf(r.request_headers().response().header_mutation(), "x-gateway-destination-endpoint")
          .empty());
  ctx.TryCancel();
  stream->Finish();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tokenway
