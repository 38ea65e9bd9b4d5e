// Prometheus text exposition (format 0.0.4) of one simulated engine in the metric names of one
// real engine: vLLM, SGLang, trtllm-serve (TensorRT-LLM's OpenAI server) or Triton with the
// TensorRT-LLM backend (docs/simulator.md lists the series). Called by GET /metrics on the
// endpoint's event loop.
#pragma once

#include <string>
#include <string_view>

#include "sim/engine.h"

namespace tokenway::sim {

enum class MetricsDialect { kVllm, kSglang, kTrtllmServe, kTritonTensorrtLlm };

// The --dialect names, in MetricsDialect order; the same words as the gateway's engine names.
inline constexpr std::string_view kMetricsDialectNames[] = {"vllm", "sglang", "trtllm-serve",
                                                            "triton-tensorrt-llm"};

// Parses one of kMetricsDialectNames; false for anything else.
bool ParseMetricsDialect(std::string_view name, MetricsDialect& out);

struct MetricsContext {
  std::string_view model_name;
  double wall_clock_seconds = 0;  // vllm:lora_requests_info value, Triton's timestamp gauge
};

std::string RenderMetrics(const Engine& engine, MetricsDialect dialect,
                          const MetricsContext& context);

}  // namespace tokenway::sim
