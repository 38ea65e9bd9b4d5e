#include "bench/report.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "bench/metrics_scrape.h"

namespace tokenway::bench {
namespace {

RequestRecord Ok(double start, double ttft, double e2e, int64_t out) {
  RequestRecord r;
  r.start = start;
  r.ttft = ttft;
  r.e2e = e2e;
  r.output_tokens = out;
  r.stream_tokens = out;
  r.input_tokens = 100;
  r.cached_tokens = 50;
  r.tpot = (e2e - ttft) / (out - 1);
  r.status = 200;
  return r;
}

TEST(ReportTest, SummarizeCountsAddUp) {
  LoadResult lr;
  lr.records.push_back(Ok(0.5, 0.1, 1.0, 10));  // warm-up
  lr.records.back().warmup = true;
  lr.records.push_back(Ok(1.0, 0.2, 1.2, 11));
  lr.records.push_back(Ok(1.5, 2.0, 3.0, 11));  // misses ttft SLO
  RequestRecord bad;
  bad.start = 2;
  bad.error = ErrorKind::kHttp5xx;
  bad.status = 500;
  lr.records.push_back(bad);
  bad.error = ErrorKind::kTruncatedStream;
  lr.records.push_back(bad);
  lr.itl_us = {1000, 2000, 3000};
  lr.measure_start = 1;
  lr.measure_end = 3;
  lr.wall_s = 3.5;
  LoadOptions o;
  o.rate = 2;
  auto slo = ParseSlo("ttft=1s");
  RunSummary s = Summarize(lr, o, *slo, "rr", "sharegpt");
  EXPECT_EQ(s.warmup, 1);
  EXPECT_EQ(s.measured, 4);
  EXPECT_EQ(s.succeeded, 2);
  EXPECT_EQ(s.error_total, 2);
  EXPECT_EQ(s.errors[static_cast<size_t>(ErrorKind::kHttp5xx)], 1);
  EXPECT_EQ(s.errors[static_cast<size_t>(ErrorKind::kTruncatedStream)], 1);
  EXPECT_DOUBLE_EQ(s.duration_s, 2);
  EXPECT_DOUBLE_EQ(s.request_rate, 1);
  EXPECT_DOUBLE_EQ(s.goodput, 0.5);
  EXPECT_DOUBLE_EQ(s.slo_attainment, 0.25);
  EXPECT_DOUBLE_EQ(s.output_token_rate, 11);
  EXPECT_DOUBLE_EQ(s.ttft.p50, 1.1);
  EXPECT_DOUBLE_EQ(s.itl.p50, 0.002);
  EXPECT_DOUBLE_EQ(s.cached_token_share, 0.5);

  std::string json = ToJson({s}, "{\"date\":\"x\"}");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  simdjson::dom::element run = doc["runs"].at(0);
  EXPECT_EQ(int64_t(run["measured"]), 4);
  EXPECT_EQ(int64_t(run["errors"]["http_5xx"]), 1);
  EXPECT_EQ(std::string_view(run["slo"]), "ttft=1s");
  EXPECT_TRUE(run["prefix_hit_rate"].is_null());

  std::string md = ToMarkdown({s}, "t", "pre");
  EXPECT_NE(md.find("| rr | 2.00 req/s |"), std::string::npos) << md;
  std::string table = FormatTable({s});
  EXPECT_NE(table.find("http_5xx=1"), std::string::npos) << table;
}

TEST(ReportTest, PrefixCacheCounters) {
  auto c = ParsePrefixCacheCounters(
      "# HELP vllm:prefix_cache_queries_total x\n"
      "vllm:prefix_cache_queries_total{model_name=\"m\",engine=\"0\"} 1000\n"
      "vllm:prefix_cache_hits_total{model_name=\"m\",engine=\"0\"} 250.0\n"
      "vllm:prefix_cache_queries_total_other 7\n"
      "vllm:prefix_cache_hits_total{model_name=\"m\",engine=\"1\"} 50\n"
      "vllm:prefix_cache_queries 3\n"
      "tokenway_sim_lora_loads_total{engine=\"0\",model_name=\"m\"} 12\n");
  EXPECT_DOUBLE_EQ(c.queries, 1000);
  EXPECT_DOUBLE_EQ(c.hits, 300);
  EXPECT_DOUBLE_EQ(c.lora_loads, 12);
}

TEST(ReportTest, UrlsAndBodies) {
  auto t = ParseHttpUrl("http://127.0.0.1:8080", "/v1/chat/completions");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, 8080);
  EXPECT_EQ(t->path, "/v1/chat/completions");
  auto m = ParseHttpUrl("http://localhost:9/metrics", "/x");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->path, "/metrics");
  EXPECT_EQ(m->host, "127.0.0.1");
  EXPECT_FALSE(ParseHttpUrl("https://x", "/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://x:99999", "/").ok());
  EXPECT_EQ(WithStream("{\"a\":1}", true),
            "{\"a\":1,\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
  EXPECT_EQ(WithStream("{\"a\":1}", false), "{\"a\":1,\"stream\":false}");
}

TEST(ReportTest, SvgPlot) {
  std::string svg = SvgPlot("t<1>", "x", "y", {{"a", {{1, 2}, {2, 3}}}, {"b", {}}});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("polyline"), std::string::npos);
  EXPECT_NE(svg.find("t&lt;1&gt;"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace tokenway::bench
