// Engine adapters against recorded-style expositions and hostile bodies. vllm_metrics.txt and
// sglang_metrics.txt were recorded from tokenway-sim (--dialect vllm / sglang) with the load gauges
// and LoRA labels edited to non-zero values; vllm_v0_metrics.txt, trtllm_serve_metrics.txt and
// triton_trtllm_metrics.txt follow the engines' own output (vLLM V0 with gpu_cache_usage_perc,
// trtllm-serve's prometheus_client families with _created gauges, Triton's nv_inference_* and
// nv_trt_llm_* families for an ensemble of four models).
#include "routing/engine_adapter.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "routing/endpoint_state.h"

namespace tokenway {
namespace {

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(TOKENWAY_SOURCE_DIR) + "/tests/routing/testdata/" + name);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

TEST(EngineAdapterTest, RecordedVllm) {
  std::string text = ReadTestdata("vllm_metrics.txt");
  ASSERT_FALSE(text.empty());
  EngineReading r = ReadEngineMetrics(EngineKind::kVllm, text, 1 << 20);
  ASSERT_TRUE(r.valid);
  EXPECT_EQ(r.waiting, 3);
  EXPECT_EQ(r.running, 5);
  EXPECT_DOUBLE_EQ(r.kv_utilisation, 0.42);
  EXPECT_EQ(r.max_lora, 4u);
  EXPECT_EQ(r.block_size, 16u);
  EXPECT_EQ(r.running_loras, (std::vector<std::string>{"sql-lora", "chat-lora"}));
  EXPECT_EQ(r.waiting_loras, (std::vector<std::string>{"x-lora"}));
  EXPECT_EQ(r.malformed_lines, 0u);

  EndpointState s("http://e:1");
  PublishEngineReading(r, s, 1000);
  EXPECT_TRUE(s.engine.Fresh(1500, 1000));
  EXPECT_FALSE(s.engine.Fresh(5000, 1000));
  EXPECT_EQ(s.engine.waiting.load(), 3);
  EXPECT_EQ(s.engine.running.load(), 5);
  EXPECT_FLOAT_EQ(s.engine.kv_utilisation.load(), 0.42f);
  EXPECT_TRUE(s.engine.LoraRunning(LoraNameHash("chat-lora")));
  EXPECT_FALSE(s.engine.LoraRunning(LoraNameHash("x-lora")));
  EXPECT_TRUE(s.engine.LoraWaiting(LoraNameHash("x-lora")));
}

TEST(EngineAdapterTest, RecordedSglang) {
  std::string text = ReadTestdata("sglang_metrics.txt");
  EngineReading r = ReadEngineMetrics(EngineKind::kSglang, text, 1 << 20);
  ASSERT_TRUE(r.valid);
  EXPECT_EQ(r.waiting, 7);
  EXPECT_EQ(r.running, 2);
  EXPECT_DOUBLE_EQ(r.kv_utilisation, 0.25);
  EXPECT_EQ(r.block_size, 16u);  // sglang:cache_config_info{page_size="16"}
  EXPECT_TRUE(r.running_loras.empty());
  // The wrong dialect finds none of its series: unknown, not zero load.
  EXPECT_FALSE(ReadEngineMetrics(EngineKind::kVllm, text, 1 << 20).valid);
}

TEST(EngineAdapterTest, LatestLoraInfoSampleWins) {
  std::string text =
      "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n"
      "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"new\","
      "waiting_lora_adapters=\"\"} 20\n"
      "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"old\","
      "waiting_lora_adapters=\"\"} 10\n";
  EngineReading r = ReadEngineMetrics(EngineKind::kVllm, text, 1 << 20);
  ASSERT_TRUE(r.valid);
  EXPECT_EQ(r.running_loras, (std::vector<std::string>{"new"}));
}

TEST(EngineAdapterTest, HostileBodiesAreInvalidAndCounted) {
  const char* bodies[] = {
      "",  // missing series
      "vllm:num_requests_waiting NaN\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0\n",
      "vllm:num_requests_waiting -4\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0\n",
      "vllm:num_requests_waiting 1\nvllm:num_requests_running 1\n",  // no KV
      "\x01\x02garbage{{{\n",
  };
  EndpointState s("http://e:1");
  for (const char* body : bodies) {
    EngineReading r = ReadEngineMetrics(EngineKind::kVllm, body, 1 << 20);
    EXPECT_FALSE(r.valid) << body;
    PublishEngineReading(r, s, 1);
  }
  EXPECT_FALSE(s.engine.valid.load());
  EXPECT_EQ(s.engine.scrape_failures_total.load(), 5u);
  // Oversized: rejected whole even though the series are there.
  std::string ok =
      "vllm:num_requests_waiting 1\nvllm:num_requests_running 1\n"
      "vllm:kv_cache_usage_perc 0.5\n";
  EXPECT_TRUE(ReadEngineMetrics(EngineKind::kVllm, ok, 1024).valid);
  EXPECT_FALSE(ReadEngineMetrics(EngineKind::kVllm, ok, 10).valid);
}

TEST(EngineAdapterTest, RecordedVllmV0UsesGpuCacheUsage) {
  std::string text = ReadTestdata("vllm_v0_metrics.txt");
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.find("vllm:kv_cache_usage_perc"), std::string::npos);
  EngineReading r = ReadEngineMetrics(EngineKind::kVllm, text, 1 << 20);
  ASSERT_TRUE(r.valid);
  EXPECT_EQ(r.waiting, 1);
  EXPECT_EQ(r.running, 9);
  EXPECT_DOUBLE_EQ(r.kv_utilisation, 0.3125);
  EXPECT_EQ(r.block_size, 16u);
  EXPECT_EQ(r.max_lora, 0u);
  // The negative prefix-cache hit rates V0 reports are not signals we read.
  EXPECT_EQ(r.malformed_lines, 0u);
}

TEST(EngineAdapterTest, CurrentKvNameWinsOverTheOldOne) {
  const std::string core = "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n";
  EngineReading both =
      ReadEngineMetrics(EngineKind::kVllm,
                        core +
                            "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.2\n"
                            "vllm:gpu_cache_usage_perc NaN\n",
                        1 << 20);
  ASSERT_TRUE(both.valid);
  EXPECT_DOUBLE_EQ(both.kv_utilisation, 0.2);
  EXPECT_FALSE(
      ReadEngineMetrics(EngineKind::kVllm, core + "vllm:gpu_cache_usage_perc NaN\n", 1 << 20)
          .valid);
  // The fallback is vLLM's own old name; other engines do not read it.
  EXPECT_FALSE(ReadEngineMetrics(EngineKind::kSglang,
                                 "sglang:num_queue_reqs 0\nsglang:num_running_reqs 0\n"
                                 "vllm:gpu_cache_usage_perc 0.5\n",
                                 1 << 20)
                   .valid);
}

TEST(EngineAdapterTest, RecordedTrtllmServe) {
  std::string text = ReadTestdata("trtllm_serve_metrics.txt");
  ASSERT_FALSE(text.empty());
  EngineReading r = ReadEngineMetrics(EngineKind::kTrtllmServe, text, 1 << 20);
  ASSERT_TRUE(r.valid);
  EXPECT_EQ(r.waiting, 4);
  EXPECT_EQ(r.running, 6);
  EXPECT_DOUBLE_EQ(r.kv_utilisation, 0.375);
  EXPECT_EQ(r.block_size, 32u);  // trtllm_kv_cache_tokens_per_block 32.0
  EXPECT_EQ(r.max_lora, 0u);
  EXPECT_EQ(r.malformed_lines, 0u);
  for (EngineKind other :
       {EngineKind::kVllm, EngineKind::kSglang, EngineKind::kTritonTensorrtLlm}) {
    EXPECT_FALSE(ReadEngineMetrics(other, text, 1 << 20).valid) << EngineKindName(other);
  }
}

TEST(EngineAdapterTest, RecordedTritonTensorrtLlm) {
  std::string text = ReadTestdata("triton_trtllm_metrics.txt");
  ASSERT_FALSE(text.empty());
  EngineReading r = ReadEngineMetrics(EngineKind::kTritonTensorrtLlm, text, 1 << 20);
  ASSERT_TRUE(r.valid);
  // Only request_type="waiting" and "scheduled" count: not context, active or max.
  EXPECT_EQ(r.waiting, 2);
  EXPECT_EQ(r.running, 3);
  // Only kv_cache_block_type="fraction": not used/free/max block counts.
  EXPECT_DOUBLE_EQ(r.kv_utilisation, 0.6);
  EXPECT_EQ(r.block_size, 64u);
  EXPECT_EQ(r.malformed_lines, 0u);
  EXPECT_FALSE(ReadEngineMetrics(EngineKind::kTrtllmServe, text, 1 << 20).valid);
}

TEST(EngineAdapterTest, TritonSumsQueuesAcrossTensorrtLlmModels) {
  std::string text =
      "nv_trt_llm_request_metrics{model=\"llama\",request_type=\"waiting\",version=\"1\"} 2\n"
      "nv_trt_llm_request_metrics{model=\"mistral\",request_type=\"waiting\",version=\"1\"} 5\n"
      "nv_trt_llm_request_metrics{model=\"llama\",request_type=\"scheduled\",version=\"1\"} 1\n"
      "nv_trt_llm_request_metrics{model=\"mistral\",request_type=\"scheduled\",version=\"1\"} 4\n"
      "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"llama\","
      "version=\"1\"} 0.25\n"
      "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"mistral\","
      "version=\"1\"} 0.7\n";
  EngineReading r = ReadEngineMetrics(EngineKind::kTritonTensorrtLlm, text, 1 << 20);
  ASSERT_TRUE(r.valid);
  EXPECT_EQ(r.waiting, 7);
  EXPECT_EQ(r.running, 5);
  EXPECT_DOUBLE_EQ(r.kv_utilisation, 0.7);
  EXPECT_EQ(r.block_size, 0u);  // optional: not reported here
}

// For every engine: its core series with one of them removed, broken or out of range must give
// an invalid reading, never a reading of zero load.
struct HostileCase {
  EngineKind kind;
  std::string waiting, running, kv;  // complete, valid sample lines
};

TEST(EngineAdapterTest, MissingOrMalformedCoreSeriesAreInvalidForEveryEngine) {
  const HostileCase cases[] = {
      {EngineKind::kVllm, "vllm:num_requests_waiting{model_name=\"m\"} 1",
       "vllm:num_requests_running{model_name=\"m\"} 2",
       "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5"},
      {EngineKind::kSglang, "sglang:num_queue_reqs{model_name=\"m\"} 1",
       "sglang:num_running_reqs{model_name=\"m\"} 2", "sglang:token_usage{model_name=\"m\"} 0.5"},
      {EngineKind::kTrtllmServe, "trtllm_num_requests_waiting{model_name=\"m\"} 1",
       "trtllm_num_requests_running{model_name=\"m\"} 2",
       "trtllm_kv_cache_utilization{model_name=\"m\"} 0.5"},
      {EngineKind::kTritonTensorrtLlm,
       "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"waiting\"} 1",
       "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"scheduled\"} 2",
       "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\","
       "model=\"tensorrt_llm\"} 0.5"},
  };
  auto with_value = [](std::string line, const std::string& value) {
    return line.substr(0, line.rfind(' ') + 1) + value;
  };
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(std::string(EngineKindName(c.kind)));
    const std::string lines[3] = {c.waiting, c.running, c.kv};
    auto body = [&](int replaced, const std::string& replacement) {
      std::string out = "# HELP x y\n";
      for (int i = 0; i < 3; ++i) out += (i == replaced ? replacement : lines[i]) + "\n";
      return out;
    };
    EngineReading ok = ReadEngineMetrics(c.kind, body(-1, ""), 1 << 20);
    ASSERT_TRUE(ok.valid);
    EXPECT_EQ(ok.waiting, 1);
    EXPECT_EQ(ok.running, 2);
    EXPECT_DOUBLE_EQ(ok.kv_utilisation, 0.5);
    for (int i = 0; i < 3; ++i) {
      SCOPED_TRACE(lines[i]);
      EXPECT_FALSE(ReadEngineMetrics(c.kind, body(i, ""), 1 << 20).valid);  // missing
      EXPECT_FALSE(ReadEngineMetrics(c.kind, body(i, with_value(lines[i], "NaN")), 1 << 20).valid);
      EXPECT_FALSE(ReadEngineMetrics(c.kind, body(i, with_value(lines[i], "+Inf")), 1 << 20).valid);
      EXPECT_FALSE(ReadEngineMetrics(c.kind, body(i, with_value(lines[i], "-1")), 1 << 20).valid);
      // A truncated line is malformed, so the series is missing.
      EngineReading cut =
          ReadEngineMetrics(c.kind, body(i, lines[i].substr(0, lines[i].size() / 2)), 1 << 20);
      EXPECT_FALSE(cut.valid);
      EXPECT_GE(cut.malformed_lines, 1u);
    }
  }
  // A Triton sample with the right family but another label value is not the series.
  EXPECT_FALSE(
      ReadEngineMetrics(EngineKind::kTritonTensorrtLlm,
                        "nv_trt_llm_request_metrics{request_type=\"active\"} 1\n"
                        "nv_trt_llm_request_metrics{request_type=\"scheduled\"} 2\n"
                        "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\"} 0.5\n",
                        1 << 20)
          .valid);
}

TEST(EngineAdapterTest, BlockSizeIsOptionalAndSane) {
  const std::string core =
      "trtllm_num_requests_waiting 0\ntrtllm_num_requests_running 0\n"
      "trtllm_kv_cache_utilization 0\n";
  for (const char* bad : {"NaN", "-64", "0", "12.5", "1e9"}) {
    EngineReading r = ReadEngineMetrics(
        EngineKind::kTrtllmServe, core + "trtllm_kv_cache_tokens_per_block " + bad + "\n", 1 << 20);
    EXPECT_TRUE(r.valid) << bad;
    EXPECT_EQ(r.block_size, 0u) << bad;
  }
  EXPECT_EQ(ReadEngineMetrics(EngineKind::kSglang,
                              "sglang:num_queue_reqs 0\nsglang:num_running_reqs 0\n"
                              "sglang:token_usage 0\n"
                              "sglang:cache_config_info{page_size=\"x\"} 1\n",
                              1 << 20)
                .block_size,
            0u);
}

TEST(EngineAdapterTest, EngineKindNames) {
  EngineKind k;
  for (std::string_view name : kEngineNames) {
    ASSERT_TRUE(ParseEngineKind(name, k)) << name;
    EXPECT_EQ(EngineKindName(k), name);
  }
  EXPECT_TRUE(ParseEngineKind("triton-tensorrt-llm", k));
  EXPECT_EQ(k, EngineKind::kTritonTensorrtLlm);
  EXPECT_TRUE(ParseEngineKind("trtllm-serve", k));
  EXPECT_EQ(k, EngineKind::kTrtllmServe);
  EXPECT_FALSE(ParseEngineKind("trtllm", k));
  EXPECT_FALSE(ParseEngineKind("triton", k));
  EXPECT_FALSE(ParseEngineKind("VLLM", k));
}

}  // namespace
}  // namespace tokenway
