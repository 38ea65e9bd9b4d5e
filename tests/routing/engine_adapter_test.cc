// Engine adapters against expositions recorded from tokenway-sim (--dialect vllm / sglang, with
// the load gauges and LoRA labels edited to non-zero values), and hostile bodies.
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

TEST(EngineAdapterTest, EngineKindNames) {
  EngineKind k;
  EXPECT_TRUE(ParseEngineKind("sglang", k));
  EXPECT_EQ(EngineKindName(k), "sglang");
  EXPECT_FALSE(ParseEngineKind("trtllm", k));
}

}  // namespace
}  // namespace tokenway
