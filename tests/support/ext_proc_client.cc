// ext_proc_client: a scripted Envoy stand-in for the endpoint-picker integration tests.
//
//   ext_proc_client --target 127.0.0.1:9002 [--script steps.json]   (else the script is stdin)
//
// The script is a JSON array of steps (or {"steps": [...]}); each step prints what happened as
// one JSON line on stdout, so a Python test reads the results line by line. Steps ("op"):
//
//   envoy       one whole request as Envoy carries it (src/bench/envoy_exchange.h): "body"
//               (object or string), "path", "method", "authority", "headers" {name: value},
//               "request_body_mode"/"response_body_mode" FULL_DUPLEX_STREAMED | BUFFERED,
//               "chunk_size", "subset" [ip:port...] (absent: no hint), "no_upstream" with
//               "events" and "stream" (what to fabricate), "timeout_ms", "repeat" N. Prints
//               {"event":"exchange", "outcome", "served", "destinations", "status", "body",
//               "immediate_status", ...} per request.
//   health      grpc.health.v1 Check of "service" → {"event":"health","status":"SERVING",...}
//   open        opens a raw Process stream; every answer prints {"event":"response", "index",
//               "kind", "set_headers", "body", "end_of_stream", "status", "dynamic_metadata"}
//               and its end {"event":"end"}.
//   send        one ProcessingRequest on the raw stream: "message" (protobuf JSON), or
//               shorthands "request_headers"/"response_headers"/"request_trailers"/
//               "response_trailers" {name: value}, "request_body"/"response_body" text,
//               "end_of_stream", "protocol_config" (protobuf JSON), "subset", "served".
//   send_raw    bytes that are not a ProcessingRequest: "hex" or "text".
//   wait        until "responses" answers arrived in total (or "end": true: the stream ended),
//               at most "timeout_ms" → {"event":"waited","responses","ended"}
//   sleep       "ms"
//   cancel      resets the raw stream; writes_done half-closes it; finish waits for its status
//               → {"event":"finish","code","message"} (a stream left open at the end is
//               cancelled and finished).
//
// Exit status: 0 after the script ran (whatever the server answered), 2 on a bad script.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <climits>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "bench/envoy_exchange.h"
#include "common/json_writer.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "http/ext_proc_call.h"

namespace {

namespace asio = boost::asio;
namespace pb = google::protobuf;
using namespace tokenway;
using namespace tokenway::bench;
using Clock = std::chrono::steady_clock;
namespace ext_proc = envoy::service::ext_proc::v3;

void Emit(const std::string& line) {
  fwrite(line.data(), 1, line.size(), stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

const pb::Value* Field(const pb::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second;
}
std::string Str(const pb::Struct& s, const std::string& key, std::string def = {}) {
  const pb::Value* v = Field(s, key);
  return v && v->has_string_value() ? v->string_value() : def;
}
double Num(const pb::Struct& s, const std::string& key, double def) {
  const pb::Value* v = Field(s, key);
  return v && v->kind_case() == pb::Value::kNumberValue ? v->number_value() : def;
}
bool Bool(const pb::Struct& s, const std::string& key, bool def = false) {
  const pb::Value* v = Field(s, key);
  return v && v->kind_case() == pb::Value::kBoolValue ? v->bool_value() : def;
}
std::string ToJson(const pb::Message& m) {
  std::string out;
  pb::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  if (!pb::util::MessageToJsonString(m, &out, opts).ok()) return "null";
  return out;
}
std::string ValueText(const pb::Value& v) {
  if (v.has_string_value()) return v.string_value();
  return ToJson(v);
}
void AddHeaders(envoy::config::core::v3::HeaderMap* map, const pb::Value* v) {
  if (!v || !v->has_struct_value()) return;
  for (const auto& [k, val] : v->struct_value().fields()) {
    auto* h = map->add_headers();
    h->set_key(k);
    h->set_raw_value(ValueText(val));
  }
}
void AppendHeaderObject(
    JsonWriter& w, const pb::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>& set) {
  w.BeginObject();
  for (const auto& opt : set) w.Key(opt.header().key()).String(HeaderValueText(opt.header()));
  w.EndObject();
}

// What a Python test wants to see of one answer, next to the protobuf JSON.
std::string DescribeResponse(int index, const ext_proc::ProcessingResponse& m) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject().Key("event").String("response").Key("index").Int(index);
  auto common = [&](const char* kind, const ext_proc::CommonResponse& c) {
    w.Key("kind").String(kind);
    w.Key("status").String(ext_proc::CommonResponse::ResponseStatus_Name(c.status()));
    w.Key("set_headers");
    AppendHeaderObject(w, c.header_mutation().set_headers());
    w.Key("remove_headers").BeginArray();
    for (const auto& h : c.header_mutation().remove_headers()) w.String(h);
    w.EndArray();
    w.Key("clear_route_cache").Bool(c.clear_route_cache());
    const auto& bm = c.body_mutation();
    if (bm.has_streamed_response()) {
      w.Key("body").String(bm.streamed_response().body());
      w.Key("end_of_stream").Bool(bm.streamed_response().end_of_stream());
      w.Key("streamed").Bool(true);
    } else if (bm.has_body()) {
      w.Key("body").String(bm.body());
      w.Key("streamed").Bool(false);
    }
  };
  switch (m.response_case()) {
    case ext_proc::ProcessingResponse::kRequestHeaders:
      common("request_headers", m.request_headers().response());
      break;
    case ext_proc::ProcessingResponse::kResponseHeaders:
      common("response_headers", m.response_headers().response());
      break;
    case ext_proc::ProcessingResponse::kRequestBody:
      common("request_body", m.request_body().response());
      break;
    case ext_proc::ProcessingResponse::kResponseBody:
      common("response_body", m.response_body().response());
      break;
    case ext_proc::ProcessingResponse::kRequestTrailers:
      w.Key("kind").String("request_trailers");
      break;
    case ext_proc::ProcessingResponse::kResponseTrailers:
      w.Key("kind").String("response_trailers");
      break;
    case ext_proc::ProcessingResponse::kImmediateResponse: {
      const auto& ir = m.immediate_response();
      w.Key("kind").String("immediate_response");
      w.Key("status").Int(static_cast<int>(ir.status().code()));
      w.Key("body").String(ir.body());
      w.Key("details").String(ir.details());
      w.Key("set_headers");
      AppendHeaderObject(w, ir.headers().set_headers());
      break;
    }
    case ext_proc::ProcessingResponse::kStreamedImmediateResponse:
      w.Key("kind").String("streamed_immediate_response");
      break;
    case ext_proc::ProcessingResponse::RESPONSE_NOT_SET:
      w.Key("kind").String("none");
      break;
  }
  w.Key("dynamic_metadata").Raw(m.has_dynamic_metadata() ? ToJson(m.dynamic_metadata()) : "null");
  w.Key("message").Raw(ToJson(m));
  w.EndObject();
  return out;
}

std::string DescribeExchange(const EnvoyResult& r) {
  std::string out;
  JsonWriter w(out);
  const char* outcome = r.outcome == EnvoyResult::Outcome::kCompleted   ? "completed"
                        : r.outcome == EnvoyResult::Outcome::kImmediate ? "immediate"
                                                                        : "failed";
  w.BeginObject().Key("event").String("exchange").Key("outcome").String(outcome);
  w.Key("error").String(r.error);
  w.Key("destination_header").String(r.destination_header);
  w.Key("destination_metadata").String(r.destination_metadata);
  w.Key("destinations").BeginArray();
  for (const auto& d : r.destinations) w.String(d);
  w.EndArray();
  w.Key("served").String(r.served);
  w.Key("request_header_mutations").BeginObject();
  for (const auto& [k, v] : r.request_header_mutations) w.Key(k).String(v);
  w.EndObject();
  w.Key("forwarded_body").String(r.forwarded_body);
  w.Key("status").Int(r.outcome == EnvoyResult::Outcome::kImmediate ? r.immediate_status
                                                                    : r.upstream_status);
  w.Key("immediate_status").Int(r.immediate_status);
  w.Key("immediate_body").String(r.immediate_body);
  w.Key("immediate_headers").BeginObject();
  for (const auto& [k, v] : r.immediate_headers) w.Key(k).String(v);
  w.EndObject();
  w.Key("upstream_status").Int(r.upstream_status);
  w.Key("content_type").String(r.upstream_content_type);
  w.Key("body").String(r.relayed_body);
  w.Key("response_chunks_sent").Int(r.response_chunks_sent);
  w.Key("response_chunks_received").Int(r.response_chunks_received);
  w.Key("grpc_code").Int(r.grpc_code);
  w.Key("grpc_message").String(r.grpc_message);
  w.Key("decision_us")
      .Int(r.pick_ns >= 0 && r.headers_sent_ns >= 0 ? (r.pick_ns - r.headers_sent_ns) / 1000 : -1);
  w.EndObject();
  return out;
}

class Script {
 public:
  Script(asio::io_context& io, std::string target) : io_(io), target_(std::move(target)) {
    channel_ = grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
  }

  asio::awaitable<int> Run(const pb::ListValue& steps) {
    UpstreamPool pool(io_);
    int rc = 0;
    for (const auto& step : steps.values()) {
      if (!step.has_struct_value()) {
        Error("a step is not an object");
        rc = 2;
        break;
      }
      const pb::Struct& s = step.struct_value();
      std::string op = Str(s, "op");
      if (op == "envoy") {
        co_await Envoy(s, pool);
      } else if (op == "health") {
        Health(s);
      } else if (op == "open") {
        Open(s);
      } else if (op == "send") {
        co_await Send(s);
      } else if (op == "send_raw") {
        co_await SendRaw(s);
      } else if (op == "wait") {
        co_await Wait(s);
      } else if (op == "sleep") {
        co_await Sleep(std::chrono::milliseconds(static_cast<int64_t>(Num(s, "ms", 0))));
      } else if (op == "cancel") {
        if (call_) call_->Cancel();
        Emit("{\"event\":\"cancelled\"}");
      } else if (op == "writes_done") {
        if (call_) co_await call_->WritesDone();
        Emit("{\"event\":\"writes_done\"}");
      } else if (op == "finish") {
        co_await Finish();
      } else {
        Error("unknown op '" + op + "'");
        rc = 2;
        break;
      }
    }
    if (call_ && !finished_) {
      call_->Cancel();
      co_await Finish();
    }
    pool.CloseAll();
    co_return rc;
  }

 private:
  static void Error(const std::string& why) {
    std::string out = "{\"event\":\"script_error\",\"error\":";
    AppendJsonString(out, why);
    Emit(out + "}");
  }

  asio::awaitable<void> Sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(io_);
    t.expires_after(d);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  asio::awaitable<void> Envoy(const pb::Struct& s, UpstreamPool& pool) {
    EnvoyRequest req;
    req.method = Str(s, "method", req.method);
    req.path = Str(s, "path", req.path);
    req.authority = Str(s, "authority", req.authority);
    req.headers.emplace_back("content-type", "application/json");
    if (const pb::Value* h = Field(s, "headers"); h && h->has_struct_value()) {
      for (const auto& [k, v] : h->struct_value().fields()) {
        if (k == "content-type") req.headers.erase(req.headers.begin());
        req.headers.emplace_back(k, ValueText(v));
      }
    }
    if (const pb::Value* b = Field(s, "body")) req.body = ValueText(*b);
    EnvoyOptions o;
    auto mode = [](const std::string& m) {
      return m == "BUFFERED" ? BodyMode::kBuffered : BodyMode::kFullDuplexStreamed;
    };
    o.request_body_mode = mode(Str(s, "request_body_mode", "FULL_DUPLEX_STREAMED"));
    o.response_body_mode = mode(Str(s, "response_body_mode", "FULL_DUPLEX_STREAMED"));
    o.chunk_size = static_cast<size_t>(std::max(1.0, Num(s, "chunk_size", 16384)));
    if (const pb::Value* sub = Field(s, "subset"); sub && sub->has_list_value()) {
      o.subset_hint.emplace();
      for (const auto& e : sub->list_value().values()) o.subset_hint->push_back(ValueText(e));
    }
    o.no_upstream = Bool(s, "no_upstream");
    o.fabricated_events = static_cast<int>(Num(s, "events", 10));
    o.fabricated_stream = Bool(s, "stream", true);
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(Num(s, "timeout_ms", 30000)));
    const int repeat = std::max(1, static_cast<int>(Num(s, "repeat", 1)));
    const auto start = Clock::now();
    auto now = [start] {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    };
    for (int i = 0; i < repeat; ++i) {
      EnvoyResult r = co_await RunEnvoyExchange(*stub_, pool, req, o, nullptr, now);
      Emit(DescribeExchange(r));
    }
  }

  void Health(const pb::Struct& s) {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(Num(s, "timeout_ms", 5000))));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(Str(s, "service"));
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status st = stub->Check(&ctx, req, &resp);
    std::string out;
    JsonWriter w(out);
    w.BeginObject().Key("event").String("health").Key("service").String(req.service());
    w.Key("code").Int(st.error_code()).Key("message").String(st.error_message());
    w.Key("status").String(
        st.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) : "");
    w.EndObject();
    Emit(out);
  }

  void Open(const pb::Struct& s) {
    if (call_ && !finished_) {
      call_->Cancel();
      asio::co_spawn(io_, call_->Finish(), asio::detached);
    }
    call_ = ExtProcCall::Start(
        *stub_, io_, std::chrono::milliseconds(static_cast<int64_t>(Num(s, "timeout_ms", 30000))));
    finished_ = false;
    responses_ = 0;
    ended_ = false;
    asio::co_spawn(io_, ReadAll(call_), asio::detached);
    Emit("{\"event\":\"opened\"}");
  }

  asio::awaitable<void> ReadAll(std::shared_ptr<ExtProcCall> call) {
    for (;;) {
      ExtProcCall::ReadResult r = co_await call->Read();
      if (call != call_) co_return;
      if (r.outcome == ExtProcCall::ReadOutcome::kEnd) break;
      if (r.outcome == ExtProcCall::ReadOutcome::kMalformed) {
        Emit("{\"event\":\"malformed_response\",\"index\":" + std::to_string(responses_++) + "}");
        continue;
      }
      Emit(DescribeResponse(responses_++, r.message));
    }
    ended_ = true;
    Emit("{\"event\":\"end\",\"responses\":" + std::to_string(responses_) + "}");
  }

  asio::awaitable<void> Send(const pb::Struct& s) {
    if (!call_) {
      Error("send before open");
      co_return;
    }
    ext_proc::ProcessingRequest m;
    if (const pb::Value* msg = Field(s, "message")) {
      if (!pb::util::JsonStringToMessage(ToJson(*msg), &m).ok()) {
        Error("'message' is not a ProcessingRequest");
        co_return;
      }
    }
    const bool eos = Bool(s, "end_of_stream");
    if (const pb::Value* v = Field(s, "request_headers")) {
      AddHeaders(m.mutable_request_headers()->mutable_headers(), v);
      m.mutable_request_headers()->set_end_of_stream(eos);
    } else if (const pb::Value* v = Field(s, "response_headers")) {
      AddHeaders(m.mutable_response_headers()->mutable_headers(), v);
      m.mutable_response_headers()->set_end_of_stream(eos);
    } else if (const pb::Value* v = Field(s, "request_trailers")) {
      AddHeaders(m.mutable_request_trailers()->mutable_trailers(), v);
    } else if (const pb::Value* v = Field(s, "response_trailers")) {
      AddHeaders(m.mutable_response_trailers()->mutable_trailers(), v);
    } else if (const pb::Value* v = Field(s, "request_body")) {
      m.mutable_request_body()->set_body(ValueText(*v));
      m.mutable_request_body()->set_end_of_stream(eos);
    } else if (const pb::Value* v = Field(s, "response_body")) {
      m.mutable_response_body()->set_body(ValueText(*v));
      m.mutable_response_body()->set_end_of_stream(eos);
    }
    if (const pb::Value* pc = Field(s, "protocol_config")) {
      if (!pb::util::JsonStringToMessage(ToJson(*pc), m.mutable_protocol_config()).ok()) {
        Error("'protocol_config' is not a ProtocolConfiguration");
        co_return;
      }
    }
    if (const pb::Value* sub = Field(s, "subset"); sub && sub->has_list_value()) {
      auto& ns =
          (*m.mutable_metadata_context()->mutable_filter_metadata())[std::string(kSubsetNamespace)];
      *(*ns.mutable_fields())[std::string(kSubsetKey)].mutable_list_value() = sub->list_value();
    }
    if (std::string served = Str(s, "served"); !served.empty()) {
      auto& ns =
          (*m.mutable_metadata_context()->mutable_filter_metadata())[std::string(kLbNamespace)];
      (*ns.mutable_fields())[std::string(kServedKey)].set_string_value(served);
    }
    bool ok = co_await call_->Write(m);
    Emit(std::string("{\"event\":\"sent\",\"ok\":") + (ok ? "true" : "false") + "}");
  }

  asio::awaitable<void> SendRaw(const pb::Struct& s) {
    if (!call_) {
      Error("send_raw before open");
      co_return;
    }
    std::string bytes = Str(s, "text");
    std::string hex = Str(s, "hex");
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    bool ok = co_await call_->WriteRaw(bytes);
    Emit(std::string("{\"event\":\"sent\",\"ok\":") + (ok ? "true" : "false") + "}");
  }

  asio::awaitable<void> Wait(const pb::Struct& s) {
    const bool until_end = Bool(s, "end");
    const int want = until_end ? INT_MAX : static_cast<int>(Num(s, "responses", 1e9));
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(Num(s, "timeout_ms", 5000)));
    while (Clock::now() < deadline && !ended_ && responses_ < want) {
      co_await Sleep(std::chrono::milliseconds(2));
    }
    Emit("{\"event\":\"waited\",\"responses\":" + std::to_string(responses_) +
         ",\"ended\":" + (ended_ ? "true" : "false") + "}");
  }

  asio::awaitable<void> Finish() {
    if (!call_) {
      Error("finish before open");
      co_return;
    }
    grpc::Status st = co_await call_->Finish();
    finished_ = true;
    while (!ended_) co_await Sleep(std::chrono::milliseconds(1));
    std::string out =
        "{\"event\":\"finish\",\"code\":" + std::to_string(st.error_code()) + ",\"message\":";
    AppendJsonString(out, st.error_message());
    Emit(out + "}");
  }

  asio::io_context& io_;
  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::shared_ptr<ExtProcCall> call_;
  bool finished_ = false, ended_ = false;
  int responses_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string target, script_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--target" && i + 1 < argc) {
      target = argv[++i];
    } else if (a == "--script" && i + 1 < argc) {
      script_path = argv[++i];
    } else {
      fprintf(stderr, "usage: ext_proc_client --target host:port [--script steps.json]\n");
      return 2;
    }
  }
  if (target.empty()) {
    fprintf(stderr, "ext_proc_client: --target is required\n");
    return 2;
  }
  std::string text;
  if (script_path.empty()) {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream f(script_path);
    if (!f) {
      fprintf(stderr, "ext_proc_client: cannot read %s\n", script_path.c_str());
      return 2;
    }
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') text = "{\"steps\":" + text + "}";
  pb::Struct doc;
  if (!pb::util::JsonStringToMessage(text, &doc).ok()) {
    fprintf(stderr, "ext_proc_client: the script is not JSON\n");
    return 2;
  }
  const pb::Value* steps = Field(doc, "steps");
  if (!steps || !steps->has_list_value()) {
    fprintf(stderr, "ext_proc_client: the script has no steps\n");
    return 2;
  }
  asio::io_context io(1);
  Script script(io, target);
  int rc = 0;
  asio::co_spawn(io, script.Run(steps->list_value()),
                 [&rc](std::exception_ptr e, int r) { rc = e ? 2 : r; });
  io.run();
  return rc;
}
