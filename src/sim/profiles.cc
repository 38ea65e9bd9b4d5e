#include "sim/profiles.h"

#include <algorithm>

namespace tokenway::sim {
namespace {

std::vector<HardwareProfile> BuildProfiles() {
  std::vector<HardwareProfile> profiles;

  // H100-80GB SXM, Llama-3.1-8B BF16: fitted to vLLM 0.11 measurements (reference §3.6).
  HardwareProfile h100;
  h100.name = "h100-8b";
  h100.description = "1x H100-80GB, Llama-3.1-8B BF16 (fitted: 7.1 ms/token at batch 1)";
  profiles.push_back(h100);

  // A100-80GB SXM: 2.04 TB/s HBM (0.61x H100), 312 TFLOPS BF16 (0.32x). Same efficiency as the
  // H100 fit: weights 6.0 ms * 3.35/2.04, compute 0.032 ms * 989/312, KV bandwidth 2.7 * 2.04/3.35.
  // vLLM's batch defaults for A100 are 2048 tokens / 256 seqs. Same memory => same KV pool.
  HardwareProfile a100 = h100;
  a100.name = "a100-8b";
  a100.description = "1x A100-80GB, Llama-3.1-8B BF16 (H100 fit scaled by bandwidth/FLOPS)";
  a100.weights_ms = 9.85;
  a100.compute_ms_per_token = 0.101;
  a100.kv_bandwidth_bytes_per_s = 1.64e12;
  a100.max_num_seqs = 256;
  a100.max_num_batched_tokens = 2048;
  profiles.push_back(a100);

  // L4 24GB: 0.3 TB/s GDDR6 (0.09x H100), 121 TFLOPS BF16 (0.12x). KV pool: 24 GiB * 0.9 -
  // 15 GiB weights - ~2 GiB activations ~= 4.6 GiB => ~37k tokens. max-model-len capped at 32k.
  HardwareProfile l4 = h100;
  l4.name = "l4-8b";
  l4.description = "1x L4-24GB, Llama-3.1-8B BF16 (H100 fit scaled; small KV pool)";
  l4.weights_ms = 67.0;
  l4.compute_ms_per_token = 0.262;
  l4.kv_bandwidth_bytes_per_s = 0.242e12;
  l4.kv_pool_tokens = 37000;
  l4.max_num_seqs = 256;
  l4.max_num_batched_tokens = 2048;
  l4.max_model_len = 32768;
  profiles.push_back(l4);

  // H200-141GB: 4.8 TB/s (1.43x H100), same compute. KV pool: 141 GB (131.3 GiB) * 0.9 -
  // 15 GiB weights - ~4.9 GiB other ~= 98.3 GiB => ~805k tokens.
  HardwareProfile h200 = h100;
  h200.name = "h200-8b";
  h200.description = "1x H200-141GB, Llama-3.1-8B BF16 (H100 fit scaled by bandwidth)";
  h200.weights_ms = 4.19;
  h200.kv_bandwidth_bytes_per_s = 3.87e12;
  h200.kv_pool_tokens = 805000;
  profiles.push_back(h200);

  // 4x H100 tensor parallel, Llama-3.1-70B BF16: per-GPU weights 35.3 GB => 10.5 ms at
  // 3.35 TB/s, measured-ish 17-20 ms ITL at batch 1 (reference §3.7) => weights 15.5 ms +
  // all-reduce/overhead 2.5 ms. 70B needs 8.8x the FLOPs of 8B spread over 4 GPUs => 0.070 ms per
  // token. KV 320 KiB/token spread over 4 GPUs' bandwidth (4 * 2.7 TB/s). KV pool ~430k tokens.
  HardwareProfile h100x4 = h100;
  h100x4.name = "h100x4-70b";
  h100x4.description = "4x H100-80GB TP4, Llama-3.1-70B BF16 (derived from roofline + Vidur)";
  h100x4.weights_ms = 15.5;
  h100x4.compute_ms_per_token = 0.070;
  h100x4.kv_bytes_per_token = 327680.0;
  h100x4.kv_bandwidth_bytes_per_s = 10.8e12;
  h100x4.overhead_ms = 2.5;
  h100x4.kv_pool_tokens = 430000;
  h100x4.lora_load_ms = 40.0;
  profiles.push_back(h100x4);
  return profiles;
}

const std::vector<HardwareProfile>& AllProfiles() {
  static const std::vector<HardwareProfile> profiles = BuildProfiles();
  return profiles;
}

}  // namespace

double HardwareProfile::StepMs(int64_t tokens_in_step, int64_t context_tokens) const {
  const double linear_ms =
      std::max(weights_ms, compute_ms_per_token * static_cast<double>(tokens_in_step));
  const double attention_ms =
      static_cast<double>(context_tokens) * kv_bytes_per_token / kv_bandwidth_bytes_per_s * 1000.0;
  return linear_ms + attention_ms + overhead_ms;
}

std::optional<HardwareProfile> FindProfile(std::string_view name) {
  for (const auto& profile : AllProfiles()) {
    if (profile.name == name) return profile;
  }
  return std::nullopt;
}

std::vector<std::string> ProfileNames() {
  std::vector<std::string> names;
  for (const auto& profile : AllProfiles()) names.push_back(profile.name);
  return names;
}

}  // namespace tokenway::sim
