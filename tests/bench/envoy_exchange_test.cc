// EnvoyExchange against an in-process endpoint picker that answers the way GIE's EPP does (or
// breaks the protocol on purpose): the stand-in sends Envoy's message order, reads the pick from
// the header and the envoy.lb metadata and refuses them when they disagree, relays what the picker
// answers for the response, and reports immediate responses.
#include "bench/envoy_exchange.h"
#include "bench/epp_load.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "envoy/service/ext_proc/v3/external_processor.grpc.pb.h"

namespace tokenway::bench {
namespace {

namespace ext_proc = envoy::service::ext_proc::v3;

enum class Behaviour { kPick, kMismatchedMetadata, kNotFound };

// GIE's answer pattern: nothing until the request body ends, then the header answer and the body
// as streamed chunks (FULL_DUPLEX_STREAMED), or one answer per message (BUFFERED).
class FakePicker final : public ext_proc::ExternalProcessor::Service {
 public:
  Behaviour behaviour = Behaviour::kPick;
  std::string endpoint = "10.0.0.1:8000,10.0.0.2:8000";

  grpc::Status Process(grpc::ServerContext*,
                       grpc::ServerReaderWriter<ext_proc::ProcessingResponse,
                                                ext_proc::ProcessingRequest>* stream) override {
    ext_proc::ProcessingRequest m;
    bool buffered = false;
    std::string body;
    while (stream->Read(&m)) {
      Record(m);
      if (m.has_protocol_config()) {
        buffered = m.protocol_config().request_body_mode() ==
                   envoy::extensions::filters::http::ext_proc::v3::ProcessingMode::BUFFERED;
      }
      ext_proc::ProcessingResponse r;
      if (m.has_request_headers()) {
        if (buffered) {
          r.mutable_request_headers();
          stream->Write(r);
        }
      } else if (m.has_request_body()) {
        body += m.request_body().body();
        if (!m.request_body().end_of_stream()) continue;
        if (behaviour == Behaviour::kNotFound) {
          r.mutable_immediate_response()->mutable_status()->set_code(
              envoy::type::v3::StatusCode::NotFound);
          r.mutable_immediate_response()->set_body("{\"error\":{\"code\":\"model_not_found\"}}");
          stream->Write(r);
          continue;
        }
        ext_proc::CommonResponse* common = buffered
                                               ? r.mutable_request_body()->mutable_response()
                                               : r.mutable_request_headers()->mutable_response();
        auto* h = common->mutable_header_mutation()->add_set_headers()->mutable_header();
        h->set_key("x-gateway-destination-endpoint");
        h->set_raw_value(endpoint);
        common->set_clear_route_cache(true);
        auto& lb = (*r.mutable_dynamic_metadata()->mutable_fields())["envoy.lb"];
        (*lb.mutable_struct_value()->mutable_fields())["x-gateway-destination-endpoint"]
            .set_string_value(behaviour == Behaviour::kMismatchedMetadata ? "10.9.9.9:1"
                                                                          : endpoint);
        stream->Write(r);
        if (!buffered) {
          ext_proc::ProcessingResponse b;
          auto* sr = b.mutable_request_body()
                         ->mutable_response()
                         ->mutable_body_mutation()
                         ->mutable_streamed_response();
          sr->set_body(body);
          sr->set_end_of_stream(true);
          stream->Write(b);
        }
      } else if (m.has_response_headers()) {
        r.mutable_response_headers();
        stream->Write(r);
      } else if (m.has_response_body()) {
        if (buffered) {
          r.mutable_response_body();
        } else {
          auto* sr = r.mutable_response_body()
                         ->mutable_response()
                         ->mutable_body_mutation()
                         ->mutable_streamed_response();
          sr->set_body(m.response_body().body());
          sr->set_end_of_stream(m.response_body().end_of_stream());
        }
        stream->Write(r);
      }
    }
    return grpc::Status::OK;
  }

  std::vector<std::string> subset_hints() {
    std::lock_guard<std::mutex> l(mu_);
    return subset_;
  }
  std::vector<std::string> served() {
    std::lock_guard<std::mutex> l(mu_);
    return served_;
  }
  std::vector<std::string> header_keys() {
    std::lock_guard<std::mutex> l(mu_);
    return header_keys_;
  }

 private:
  void Record(const ext_proc::ProcessingRequest& m) {
    std::lock_guard<std::mutex> l(mu_);
    const auto& fm = m.metadata_context().filter_metadata();
    if (auto it = fm.find("envoy.lb.subset_hint"); it != fm.end() && m.has_request_headers()) {
      for (const auto& v :
           it->second.fields().at("x-gateway-destination-endpoint-subset").list_value().values()) {
        subset_.push_back(v.string_value());
      }
    }
    if (auto it = fm.find("envoy.lb"); it != fm.end()) {
      served_.push_back(
          it->second.fields().at("x-gateway-destination-endpoint-served").string_value());
    }
    if (m.has_request_headers()) {
      for (const auto& h : m.request_headers().headers().headers()) {
        header_keys_.push_back(h.key() + "=" + h.raw_value());
      }
    }
  }
  std::mutex mu_;
  std::vector<std::string> subset_, served_, header_keys_;
};

class EnvoyExchangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&picker_);
    server_ = b.BuildAndStart();
    ASSERT_GT(port_, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
  }
  void TearDown() override { server_->Shutdown(); }
  int port() const { return port_; }

  EnvoyResult Run(EnvoyOptions o, std::string* relayed = nullptr) {
    boost::asio::io_context io(1);
    UpstreamPool pool(io);
    EnvoyRequest req;
    req.headers = {{"Content-Type", "application/json"}, {"X-Request-Id", "r-1"}};
    req.body = body_;
    EnvoyResult result;
    auto start = std::chrono::steady_clock::now();
    boost::asio::co_spawn(io,
                          RunEnvoyExchange(
                              *stub_, pool, req, o,
                              [relayed](std::string_view piece, int64_t) {
                                if (relayed) relayed->append(piece);
                              },
                              [start] {
                                return std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::steady_clock::now() - start)
                                    .count();
                              }),
                          [&](std::exception_ptr e, EnvoyResult r) {
                            ASSERT_FALSE(e);
                            result = std::move(r);
                          });
    io.run();
    return result;
  }

  FakePicker picker_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::string body_ = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"" +
                      std::string(100, 'x') + "\"}],\"stream\":true}";
};

TEST_F(EnvoyExchangeTest, FullDuplexPicksForwardsAndRelaysEveryChunk) {
  EnvoyOptions o;
  o.no_upstream = true;
  o.fabricated_events = 5;
  o.chunk_size = 7;  // the body in many request_body messages
  o.subset_hint = std::vector<std::string>{"10.0.0.1:8000", "10.0.0.2:8000"};
  std::string relayed;
  EnvoyResult r = Run(o, &relayed);
  ASSERT_EQ(r.outcome, EnvoyResult::Outcome::kCompleted) << r.error;
  EXPECT_EQ(r.destinations, (std::vector<std::string>{"10.0.0.1:8000", "10.0.0.2:8000"}));
  EXPECT_EQ(r.served, "10.0.0.1:8000");
  EXPECT_EQ(r.forwarded_body, body_);
  EXPECT_EQ(r.response_chunks_sent, 6);  // 5 token events + the usage/[DONE] event
  EXPECT_EQ(r.response_chunks_received, 6);
  EXPECT_EQ(relayed, r.relayed_body);
  EXPECT_NE(relayed.find("data: [DONE]"), std::string::npos);
  EXPECT_GE(r.pick_ns, r.headers_sent_ns);
  EXPECT_EQ(r.grpc_code, 0);
  EXPECT_EQ(picker_.subset_hints(), *o.subset_hint);
  // Every response-side message told the picker where the request went.
  std::vector<std::string> served = picker_.served();
  EXPECT_EQ(served.size(), 7u);
  for (const auto& s : served) EXPECT_EQ(s, "10.0.0.1:8000");
  // Envoy's headers: lower-case keys, pseudo-headers, content-length of the body.
  auto keys = picker_.header_keys();
  for (const char* want : {":method=POST", ":path=/v1/chat/completions", ":scheme=http",
                           "content-type=application/json", "x-request-id=r-1"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), want), keys.end()) << want;
  }
  EXPECT_NE(std::find(keys.begin(), keys.end(), "content-length=" + std::to_string(body_.size())),
            keys.end());
}

TEST_F(EnvoyExchangeTest, BufferedModeTakesThePickFromTheBodyAnswer) {
  EnvoyOptions o;
  o.request_body_mode = BodyMode::kBuffered;
  o.response_body_mode = BodyMode::kBuffered;
  o.no_upstream = true;
  o.fabricated_events = 3;
  EnvoyResult r = Run(o);
  ASSERT_EQ(r.outcome, EnvoyResult::Outcome::kCompleted) << r.error;
  EXPECT_EQ(r.served, "10.0.0.1:8000");
  EXPECT_EQ(r.forwarded_body, body_);
  EXPECT_EQ(r.response_chunks_sent, 1);
  EXPECT_NE(r.relayed_body.find("data: [DONE]"), std::string::npos);
}

TEST_F(EnvoyExchangeTest, HeaderAndMetadataThatDisagreeFailTheExchange) {
  picker_.behaviour = Behaviour::kMismatchedMetadata;
  EnvoyOptions o;
  o.no_upstream = true;
  EnvoyResult r = Run(o);
  EXPECT_EQ(r.outcome, EnvoyResult::Outcome::kFailed);
  EXPECT_NE(r.error.find("disagree"), std::string::npos) << r.error;
  EXPECT_EQ(r.response_chunks_sent, 0);
}

TEST_F(EnvoyExchangeTest, ImmediateResponseEndsTheExchange) {
  picker_.behaviour = Behaviour::kNotFound;
  EnvoyOptions o;
  o.no_upstream = true;
  EnvoyResult r = Run(o);
  EXPECT_EQ(r.outcome, EnvoyResult::Outcome::kImmediate) << r.error;
  EXPECT_EQ(r.immediate_status, 404);
  EXPECT_NE(r.immediate_body.find("model_not_found"), std::string::npos);
  EXPECT_TRUE(r.served.empty());
}

TEST_F(EnvoyExchangeTest, AnUnreachablePickerFailsWithoutHanging) {
  auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  stub_ = std::make_unique<grpc::GenericStub>(channel);
  EnvoyOptions o;
  o.timeout = std::chrono::milliseconds(2000);
  EnvoyResult r = Run(o);
  EXPECT_EQ(r.outcome, EnvoyResult::Outcome::kFailed);
  EXPECT_NE(r.grpc_code, 0);
}

TEST_F(EnvoyExchangeTest, LoadModeCountsPicksDecisionsAndChunks) {
  EppLoadOptions o;
  o.epp = "127.0.0.1:" + std::to_string(port());
  o.load.concurrency = 4;
  o.load.requests = 40;
  o.load.threads = 2;
  o.load.stream = true;
  o.load.target.path = "/v1/chat/completions";
  o.envoy.no_upstream = true;
  o.envoy.fabricated_events = 3;
  o.epp_pid = static_cast<int>(getpid());
  std::vector<WorkloadRequest> workload(5);
  for (auto& w : workload) w.body = "{\"model\":\"m\",\"messages\":[]}";
  EppLoadResult r = RunEppLoad(o, workload, nullptr);
  EXPECT_EQ(r.picks, 40);
  EXPECT_EQ(r.decision_s.size(), 40u);
  EXPECT_EQ(r.response_chunks, 40 * 4);
  EXPECT_TRUE(r.failures.empty());
  EXPECT_EQ(r.served.at("10.0.0.1:8000"), 40);
  EXPECT_GE(r.cpu_s, 0);
  int64_t ok = 0;
  for (const auto& rec : r.load.records) {
    if (rec.ok() && !rec.warmup) ++ok;
    EXPECT_EQ(rec.output_tokens, 3);
  }
  EXPECT_EQ(ok, 40);
}

}  // namespace
}  // namespace tokenway::bench
