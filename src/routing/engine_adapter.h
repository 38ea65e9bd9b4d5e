// Engine adapters: map one model server's /metrics exposition to tokenway's EngineSignals.
//
// Each engine names the same quantities differently (shared reference gie-llmd §3, GIE's
// built-in engine configurations):
//   signal          vllm                          sglang
//   waiting         vllm:num_requests_waiting     sglang:num_queue_reqs
//   running         vllm:num_requests_running     sglang:num_running_reqs
//   kv_utilisation  vllm:kv_cache_usage_perc      sglang:token_usage
//                   (else vllm:gpu_cache_usage_perc, its name before vLLM v1)
//   block size      vllm:cache_config_info        sglang:cache_config_info
//                   label block_size              label page_size
//   LoRA            vllm:lora_requests_info{running_lora_adapters,waiting_lora_adapters,max_lora}
//
//   signal          trtllm-serve                       triton-tensorrt-llm
//   waiting         trtllm_num_requests_waiting        nv_trt_llm_request_metrics
//                                                        {request_type="waiting"}
//   running         trtllm_num_requests_running        nv_trt_llm_request_metrics
//                                                        {request_type="scheduled"}
//   kv_utilisation  trtllm_kv_cache_utilization        nv_trt_llm_kv_cache_block_metrics
//                                                        {kv_cache_block_type="fraction"}
//   block size      trtllm_kv_cache_tokens_per_block   nv_trt_llm_kv_cache_block_metrics
//                                                        {kv_cache_block_type="tokens_per"}
// Waiting and running series are summed across their other labels (one engine serving several
// models, or several TensorRT-LLM models in one Triton, has one queue per model); KV utilisation
// is the largest of its series. When several vllm:lora_requests_info samples exist, the one with
// the largest value (a timestamp) wins, as in GIE. Only vLLM reports LoRA adapters. A reading is
// valid only when waiting, running and KV utilisation were all present, finite and not negative;
// the block size is optional. Called by the engine scraper on the control thread; allocation is
// fine there.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

struct EndpointState;

enum class EngineKind { kVllm, kSglang, kTrtllmServe, kTritonTensorrtLlm };

// The names configuration uses (pools[].engine, pools[].endpoints[].engine), in EngineKind order.
inline constexpr std::string_view kEngineNames[] = {"vllm", "sglang", "trtllm-serve",
                                                    "triton-tensorrt-llm"};

// Parses one of kEngineNames; false for anything else.
bool ParseEngineKind(std::string_view name, EngineKind& out);
std::string_view EngineKindName(EngineKind kind);

// A decoded scrape; plain values, owned strings.
struct EngineReading {
  bool valid = false;
  double waiting = 0;
  double running = 0;
  double kv_utilisation = 0;
  uint32_t max_lora = 0;
  uint32_t block_size = 0;  // 0: the engine did not say
  std::vector<std::string> running_loras;
  std::vector<std::string> waiting_loras;
  uint32_t malformed_lines = 0;
};

// Decodes an exposition body of at most `max_bytes`; an oversized or unusable body gives an
// invalid reading.
EngineReading ReadEngineMetrics(EngineKind kind, std::string_view text, size_t max_bytes);

// Publishes a reading into the endpoint's EngineSignals (control thread). An invalid reading
// marks the signals invalid and counts a scrape failure.
void PublishEngineReading(const EngineReading& reading, EndpointState& state, int64_t now_ns);

}  // namespace tokenway
