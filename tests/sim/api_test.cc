#include "sim/api.h"

#include <gtest/gtest.h>

#include "sim/faults.h"
#include "sim/metrics_text.h"

namespace tokenway::sim {
namespace {

TEST(ApiTest, ChatMessagesAreFlattenedWithTheSharedTemplate) {
  auto parsed = ParseGenerationRequest(
      ApiKind::kChat,
      R"({"model":"m","messages":[{"role":"system","content":"Be brief."},)"
      R"({"role":"user","content":[{"type":"text","text":"Hi "},{"type":"image_url"},)"
      R"({"type":"text","text":"there"}]}],"max_tokens":5,"stream":true,)"
      R"("stream_options":{"include_usage":true},"stop":["x","y"],"ignore_eos":true})");
  ASSERT_TRUE(std::holds_alternative<GenerationSpec>(parsed));
  const auto& spec = std::get<GenerationSpec>(parsed);
  EXPECT_EQ(spec.prompt_text, "system: Be brief.\nuser: Hi there\n");
  EXPECT_EQ(spec.max_tokens, 5);
  EXPECT_TRUE(spec.stream);
  EXPECT_TRUE(spec.include_usage);
  EXPECT_TRUE(spec.ignore_eos);
  EXPECT_EQ(spec.stop, (std::vector<std::string>{"x", "y"}));
}

TEST(ApiTest, MaxCompletionTokensWinsForChat) {
  auto parsed = ParseGenerationRequest(
      ApiKind::kChat, R"({"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":5,)"
                      R"("max_completion_tokens":7})");
  ASSERT_TRUE(std::holds_alternative<GenerationSpec>(parsed));
  EXPECT_EQ(std::get<GenerationSpec>(parsed).max_tokens, 7);
}

TEST(ApiTest, CompletionPromptListIsJoinedWithNewlines) {
  auto parsed = ParseGenerationRequest(ApiKind::kCompletion,
                                       R"({"model":"m","prompt":["a","b"],"stop":"z"})");
  ASSERT_TRUE(std::holds_alternative<GenerationSpec>(parsed));
  EXPECT_EQ(std::get<GenerationSpec>(parsed).prompt_text, "a\nb");
  EXPECT_FALSE(std::get<GenerationSpec>(parsed).max_tokens.has_value());
}

TEST(ApiTest, BadInputIsRejectedWith400) {
  for (const char* body :
       {"{", "[]", R"({"messages":[]})", R"({"model":1,"messages":[]})",
        R"({"model":"m","messages":"hi"})",
        R"({"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":"5"})",
        R"({"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":0})",
        R"({"model":"m","messages":[{"role":"user","content":"a"}],"stream":"yes"})",
        R"({"model":"m","messages":[{"role":"user","content":"a"}],"stop":[1]})",
        R"({"model":"m","messages":[{"role":"user","content":5}]})"}) {
    auto parsed = ParseGenerationRequest(ApiKind::kChat, body);
    ASSERT_TRUE(std::holds_alternative<ApiError>(parsed)) << body;
    EXPECT_EQ(std::get<ApiError>(parsed).status, 400) << body;
  }
}

TEST(ApiTest, JsonStringsAreEscaped) {
  std::string out;
  AppendJsonString(out,
                   "a\"b\\c\nd\x01"
                   "e \xC3\xA9");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\u0001e \xC3\xA9\"");
  out.clear();
  AppendJsonString(out, "");
  EXPECT_EQ(out, "\"\"");
}

TEST(ApiTest, ErrorJsonHasVllmShape) {
  EXPECT_EQ(ErrorJson(404, "The model `x` does not exist."),
            R"({"object":"error","message":"The model `x` does not exist.","type":"NotFoundError",)"
            R"("param":null,"code":404})");
}

TEST(ApiTest, ChunksCarryUsageAndFinishReason) {
  ResponseIdentity identity{ApiKind::kChat, "chatcmpl-1", 7, "m\"q"};
  EXPECT_EQ(ContentChunk(identity, " ka", "length"),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m\"q",)"
            R"("choices":[{"index":0,"delta":{"content":" ka"},"logprobs":null,)"
            R"("finish_reason":"length","stop_reason":null}]})");
  EXPECT_NE(UsageChunk(identity, {10, 2, 0})
                .find(R"("choices":[],"usage":{"prompt_tokens":10,"total_tokens":12,)"
                      R"("completion_tokens":2,"prompt_tokens_details":{"cached_tokens":0}})"),
            std::string::npos);
}

TEST(FaultConfigTest, PostReplacesOnlyNamedFieldsAndResetClears) {
  FaultConfig faults;
  EXPECT_EQ(faults.ApplyJson(R"({"error_rate":0.5,"health_fail":true})"), "");
  EXPECT_EQ(faults.ApplyJson(R"({"stall_after_tokens":3})"), "");
  EXPECT_DOUBLE_EQ(faults.error_rate, 0.5);
  EXPECT_TRUE(faults.health_fail);
  EXPECT_EQ(faults.stall_after_tokens, 3);
  EXPECT_NE(faults.ApplyJson(R"({"error_rate":2})"), "");
  EXPECT_NE(faults.ApplyJson(R"({"bogus":1})"), "");
  EXPECT_DOUBLE_EQ(faults.error_rate, 0.5);
  EXPECT_EQ(faults.ApplyJson(R"({"reset":true})"), "");
  EXPECT_EQ(faults.ToJson(), FaultConfig{}.ToJson());
}

TEST(MetricsTextTest, ExposesVllmNamesAndBuckets) {
  EngineConfig config;
  config.profile = *FindProfile("h100-8b");
  Engine engine(config);
  const std::string text = RenderMetrics(engine, MetricsDialect::kVllm, {"m", 1.5});
  for (const char* name :
       {"vllm:num_requests_running{", "vllm:num_requests_waiting{", "vllm:kv_cache_usage_perc{",
        "vllm:prefix_cache_queries_total{", "vllm:prefix_cache_hits_total{",
        "vllm:prompt_tokens_total{", "vllm:generation_tokens_total{",
        "vllm:request_success_total{engine=\"0\",model_name=\"m\",finished_reason=\"stop\"}",
        "vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"m\",le=\"0.001\"} 0",
        "vllm:inter_token_latency_seconds_bucket{", "vllm:e2e_request_latency_seconds_bucket{",
        "vllm:request_queue_time_seconds_bucket{engine=\"0\",model_name=\"m\",le=\"7680.0\"} 0",
        "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"\",waiting_lora_adapters="
        "\"\"} 1.5",
        "vllm:cache_config_info{block_size=\"16\"", "num_gpu_blocks=\"26306\""}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  const std::string sglang = RenderMetrics(engine, MetricsDialect::kSglang, {"m", 1.5});
  EXPECT_NE(sglang.find("sglang:num_queue_reqs{model_name=\"m\"} 0"), std::string::npos);
  EXPECT_EQ(sglang.find("vllm:"), std::string::npos);
}

}  // namespace
}  // namespace tokenway::sim
