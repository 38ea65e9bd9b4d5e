#include "telemetry/span.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cctype>
#include <map>
#include <regex>
#include <string>

#include "common/duration.h"

namespace tokenway {
namespace {

TraceContext Context(bool parent) {
  TraceContext t;
  TraceParent p;
  EXPECT_TRUE(ParseTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", p));
  t.trace_id = p.trace_id;
  t.parent_id = p.parent_id;
  t.span_id = {0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8};
  t.flags = 1;
  t.active = true;
  t.has_parent = parent;
  return t;
}

// Encodes `s` as a whole export request and parses it back.
simdjson::dom::element Export(const SpanRecord& s, std::string& body,
                              simdjson::dom::parser& parser) {
  body.clear();
  AppendOtlpExportRequestHead(body, "tokenway-test");
  AppendOtlpSpan(body, s);
  body.push_back(',');
  AppendOtlpSpan(body, s);
  AppendOtlpExportRequestTail(body);
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(body).get(doc), simdjson::SUCCESS) << body;
  return doc;
}

// Every object key in the document is lowerCamelCase (attribute keys are values, not keys).
void ExpectCamelCase(simdjson::dom::element e) {
  if (e.is_object()) {
    for (auto field : simdjson::dom::object(e)) {
      std::string key(field.key);
      ASSERT_FALSE(key.empty());
      EXPECT_TRUE(std::islower(static_cast<unsigned char>(key[0]))) << key;
      for (char c : key) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << key;
      ExpectCamelCase(field.value);
    }
  } else if (e.is_array()) {
    for (auto v : simdjson::dom::array(e)) ExpectCamelCase(v);
  }
}

struct Attr {
  std::string type;  // stringValue, intValue, ...
  simdjson::dom::element value;
};

std::map<std::string, Attr> Attributes(simdjson::dom::element span) {
  std::map<std::string, Attr> out;
  for (auto a : span["attributes"].get_array()) {
    std::string key(a["key"].get_string().value());
    for (auto f : a["value"].get_object()) out[key] = {std::string(f.key), f.value};
  }
  return out;
}

SpanRecord Sample(const TraceContext& t, const PickScores& scores) {
  SpanRecord s;
  s.trace = &t;
  s.trace_state = "congo=t61rcWkgMzE";
  s.operation = "chat";
  s.request_model = "meta-llama/Llama-3.1-8B-Instruct";
  s.response_model = "served \"model\"";
  s.provider = "vllm";
  s.endpoint_url = "http://10.1.2.80:8000";
  s.pool = "p";
  s.request_id = "req-1";
  s.start_unix_ns = 1735689600000000000;
  s.end_unix_ns = 1735689601250000000;
  s.status = 200;
  s.input_tokens = 100;
  s.output_tokens = 180;
  s.cached_tokens = 64;
  s.max_tokens = 256;
  s.stream = true;
  s.time_to_first_chunk_s = 0.125;
  s.retries = 1;
  s.priority = 2;
  s.queue_time_ms = 1.5;
  s.semantic_route = "code";
  s.route_confidence = 0.875;
  s.scores = &scores;
  return s;
}

TEST(SpanTest, EncodesOtlpJsonAsTheSpecRequires) {
  TraceContext t = Context(true);
  PickScores scores;
  scores.filled = true;
  scores.total = 2.5;
  scores.count = 2;
  scores.names[0] = "queue-depth";
  scores.values[0] = 1.0;
  scores.names[1] = "kv-cache";
  scores.values[1] = 0.5;
  SpanRecord s = Sample(t, scores);
  std::string body;
  simdjson::dom::parser parser;
  auto doc = Export(s, body, parser);
  ExpectCamelCase(doc);

  auto rs = doc["resourceSpans"].at(0);
  auto res_attr = rs["resource"]["attributes"].at(0);
  EXPECT_EQ(std::string_view(res_attr["key"]), "service.name");
  EXPECT_EQ(std::string_view(res_attr["value"]["stringValue"]), "tokenway-test");
  auto spans = rs["scopeSpans"].at(0)["spans"].get_array();
  ASSERT_EQ(spans.size(), 2u);
  simdjson::dom::element span = spans.at(0).value();
  EXPECT_EQ(std::string_view(span["traceId"]), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(std::string_view(span["spanId"]), "53995c3f42cd8ad8");
  EXPECT_EQ(std::string_view(span["parentSpanId"]), "b7ad6b7169203331");
  EXPECT_EQ(std::string_view(span["traceState"]), "congo=t61rcWkgMzE");
  EXPECT_EQ(std::string_view(span["name"]), "chat meta-llama/Llama-3.1-8B-Instruct");
  // Enums are integers; int64 values are decimal strings.
  EXPECT_TRUE(span["kind"].is_int64());
  EXPECT_EQ(int64_t(span["kind"]), 3);
  EXPECT_TRUE(span["startTimeUnixNano"].is_string());
  EXPECT_EQ(std::string_view(span["startTimeUnixNano"]), "1735689600000000000");
  EXPECT_EQ(std::string_view(span["endTimeUnixNano"]), "1735689601250000000");
  EXPECT_TRUE(span["status"].is_object());
  EXPECT_EQ(span["status"]["code"].error(), simdjson::NO_SUCH_FIELD);  // UNSET

  auto a = Attributes(span);
  EXPECT_EQ(std::string_view(a["gen_ai.operation.name"].value), "chat");
  EXPECT_EQ(std::string_view(a["gen_ai.provider.name"].value), "vllm");
  EXPECT_EQ(std::string_view(a["gen_ai.response.model"].value), "served \"model\"");
  EXPECT_EQ(a["gen_ai.usage.input_tokens"].type, "intValue");
  EXPECT_EQ(std::string_view(a["gen_ai.usage.input_tokens"].value), "100");
  EXPECT_EQ(std::string_view(a["gen_ai.usage.output_tokens"].value), "180");
  EXPECT_EQ(std::string_view(a["gen_ai.usage.cache_read.input_tokens"].value), "64");
  EXPECT_EQ(std::string_view(a["gen_ai.request.max_tokens"].value), "256");
  EXPECT_EQ(a["gen_ai.request.stream"].type, "boolValue");
  EXPECT_EQ(double(a["gen_ai.response.time_to_first_chunk"].value), 0.125);
  EXPECT_EQ(std::string_view(a["server.address"].value), "10.1.2.80");
  EXPECT_EQ(std::string_view(a["server.port"].value), "8000");
  EXPECT_EQ(std::string_view(a["tokenway.endpoint"].value), "http://10.1.2.80:8000");
  EXPECT_EQ(std::string_view(a["tokenway.retries"].value), "1");
  EXPECT_EQ(std::string_view(a["tokenway.priority"].value), "2");
  EXPECT_EQ(double(a["tokenway.queue_time_ms"].value), 1.5);
  EXPECT_EQ(std::string_view(a["tokenway.route"].value), "code");
  EXPECT_EQ(double(a["tokenway.route.confidence"].value), 0.875);
  EXPECT_EQ(double(a["tokenway.score.total"].value), 2.5);
  EXPECT_EQ(double(a["tokenway.score.queue_depth"].value), 1.0);
  EXPECT_EQ(double(a["tokenway.score.kv_cache"].value), 0.5);
  EXPECT_EQ(std::string_view(a["http.response.status_code"].value), "200");
  EXPECT_EQ(a.count("error.type"), 0u);
}

TEST(SpanTest, ErrorsCarryErrorTypeAndStatusCode2) {
  TraceContext t = Context(false);
  PickScores none;
  SpanRecord s = Sample(t, none);
  s.status = 502;
  s.error_code = "upstream_connect_failed";
  s.response_model = {};
  s.input_tokens = -1;
  s.output_tokens = -1;
  std::string body;
  simdjson::dom::parser parser;
  simdjson::dom::element span =
      Export(s, body, parser)["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].at(0).value();
  EXPECT_EQ(span["parentSpanId"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(int64_t(span["status"]["code"]), 2);
  EXPECT_EQ(std::string_view(span["status"]["message"]), "upstream_connect_failed");
  auto a = Attributes(span);
  EXPECT_EQ(std::string_view(a["error.type"].value), "upstream_connect_failed");
  EXPECT_EQ(a.count("gen_ai.usage.input_tokens"), 0u);
  EXPECT_EQ(a.count("gen_ai.response.model"), 0u);
  EXPECT_EQ(a.count("tokenway.score.total"), 0u);
}

TEST(SpanTest, MonotonicToUnixIsNearTheWallClock) {
  int64_t unix_now = MonotonicToUnixNanos(MonotonicNanos());
  int64_t wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  EXPECT_LT(std::llabs(unix_now - wall), 1000000000LL);
}

}  // namespace
}  // namespace tokenway
