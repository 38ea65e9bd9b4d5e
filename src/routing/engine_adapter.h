// Engine adapters: map one model server's /metrics exposition to tokenway's EngineSignals.
//
// vLLM and SGLang name the same quantities differently (docs: shared reference gie-llmd §3):
//   signal            vLLM                                         SGLang
//   waiting           vllm:num_requests_waiting                    sglang:num_queue_reqs
//   running           vllm:num_requests_running                    sglang:num_running_reqs
//   kv_utilisation    vllm:kv_cache_usage_perc (0..1)              sglang:token_usage (0..1)
//   LoRA              vllm:lora_requests_info{running_lora_adapters,waiting_lora_adapters,max_lora}
//   block size        vllm:cache_config_info{block_size}
// Series carrying a model_name label are summed across models (one engine, one queue). When
// several vllm:lora_requests_info samples exist, the one with the largest value (a timestamp)
// wins, as in GIE. A reading is valid only when waiting, running and KV usage were all present
// and finite. Called by the engine scraper on the control thread; allocation is fine there.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

struct EndpointState;

enum class EngineKind { kVllm, kSglang };

// Parses "vllm" / "sglang"; false for anything else.
bool ParseEngineKind(std::string_view name, EngineKind& out);
std::string_view EngineKindName(EngineKind kind);

// A decoded scrape; plain values, owned strings.
struct EngineReading {
  bool valid = false;
  double waiting = 0;
  double running = 0;
  double kv_utilisation = 0;
  uint32_t max_lora = 0;
  uint32_t block_size = 0;
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
