// Hardware profiles: the constants of the simulator's step-time model and KV pool size for one
// accelerator serving one model. docs/simulator.md ("Profiles") derives every number.
//
// Step time (ms) = max(weights_ms, compute_ms_per_token * tokens_in_step)
//                + sum(context tokens of scheduled sequences) * kv_bytes_per_token / kv_bandwidth
//                + overhead_ms
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway::sim {

struct HardwareProfile {
  std::string name;
  std::string description;
  double weights_ms = 6.0;               // floor: reading the weights once per step
  double compute_ms_per_token = 0.032;   // linear layers once compute-bound
  double kv_bytes_per_token = 131072.0;  // KV bytes read per context token per step
  double kv_bandwidth_bytes_per_s = 2.7e12;
  double overhead_ms = 1.1;  // lm_head, sampling, scheduler
  int64_t kv_pool_tokens = 420900;
  int block_size = 16;
  int max_num_seqs = 1024;
  int max_num_batched_tokens = 8192;
  int64_t max_model_len = 131072;
  double lora_load_ms = 20.0;

  // Step duration in engine milliseconds for a step that schedules `tokens_in_step` tokens over
  // sequences whose context lengths sum to `context_tokens`.
  double StepMs(int64_t tokens_in_step, int64_t context_tokens) const;
};

// Profile by name (h100-8b, a100-8b, l4-8b, h200-8b, h100x4-70b); nullopt when unknown.
std::optional<HardwareProfile> FindProfile(std::string_view name);
std::vector<std::string> ProfileNames();

}  // namespace tokenway::sim
