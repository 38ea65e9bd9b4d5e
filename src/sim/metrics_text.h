// Prometheus text exposition (format 0.0.4) of one simulated engine, in vLLM's metric names or,
// with the sglang dialect, SGLang's. Called by GET /metrics on the endpoint's event loop.
#pragma once

#include <string>
#include <string_view>

#include "sim/engine.h"

namespace tokenway::sim {

enum class MetricsDialect { kVllm, kSglang };

struct MetricsContext {
  std::string_view model_name;
  double wall_clock_seconds = 0;  // value of vllm:lora_requests_info (vLLM sets current time)
};

std::string RenderMetrics(const Engine& engine, MetricsDialect dialect,
                          const MetricsContext& context);

}  // namespace tokenway::sim
