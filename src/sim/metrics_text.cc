#include "sim/metrics_text.h"

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <utility>

namespace tokenway::sim {

bool ParseMetricsDialect(std::string_view name, MetricsDialect& out) {
  for (std::size_t i = 0; i < std::size(kMetricsDialectNames); ++i) {
    if (name == kMetricsDialectNames[i]) {
      out = static_cast<MetricsDialect>(i);
      return true;
    }
  }
  return false;
}

namespace {

class Exposition {
 public:
  explicit Exposition(std::string labels) : labels_(std::move(labels)) {}

  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_.push_back(' ');
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_.push_back(' ');
    out_ += type;
    out_.push_back('\n');
  }
  void Sample(std::string_view name, std::string_view extra_labels, double value) {
    out_ += name;
    out_.push_back('{');
    out_ += labels_;
    if (!extra_labels.empty()) {
      if (!labels_.empty()) out_.push_back(',');
      out_ += extra_labels;
    }
    out_ += "} ";
    AppendNumber(value);
    out_.push_back('\n');
  }
  void Gauge(std::string_view name, std::string_view help, double value) {
    Family(name, "gauge", help);
    Sample(name, "", value);
  }
  void Counter(std::string_view name, std::string_view help, double value) {
    Family(name, "counter", help);
    Sample(name, "", value);
  }
  void HistogramFamily(std::string_view name, std::string_view help, const Histogram& histogram) {
    Family(name, "histogram", help);
    const std::string bucket = std::string(name) + "_bucket";
    char le[64];
    const std::vector<uint64_t> cumulative = histogram.cumulative_counts();
    for (std::size_t i = 0; i < cumulative.size(); ++i) {
      // Prometheus clients print bounds like 0.005 and 1.0; %g keeps the short form.
      std::snprintf(le, sizeof le, "le=\"%s\"", FormatBound(histogram.upper_bounds()[i]).c_str());
      Sample(bucket, le, static_cast<double>(cumulative[i]));
    }
    Sample(bucket, "le=\"+Inf\"", static_cast<double>(histogram.count()));
    Sample(std::string(name) + "_count", "", static_cast<double>(histogram.count()));
    Sample(std::string(name) + "_sum", "", histogram.sum());
  }
  std::string& out() { return out_; }

 private:
  static std::string FormatBound(double bound) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", bound);
    std::string s = text;
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  }
  void AppendNumber(double value) {
    char text[40];
    std::snprintf(text, sizeof text, "%.17g", value);
    out_ += text;
  }
  std::string labels_;
  std::string out_;
};

std::string EscapeLabel(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out.push_back(',');
    out += name;
  }
  return out;
}

// Finished requests by reason, as vLLM and trtllm-serve both publish them.
void SuccessFamily(Exposition& x, const char* name, const EngineStats& s) {
  x.Family(name, "counter", "Count of successfully processed requests.");
  x.Sample(name, "finished_reason=\"stop\"", static_cast<double>(s.success_stop));
  x.Sample(name, "finished_reason=\"length\"", static_cast<double>(s.success_length));
  x.Sample(name, "finished_reason=\"abort\"", static_cast<double>(s.success_abort));
}

void RenderVllm(const Engine& engine, const MetricsContext& context, Exposition& x) {
  const EngineStats& s = engine.stats();
  x.Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
          static_cast<double>(engine.num_running()));
  x.Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
          static_cast<double>(engine.num_waiting()));
  x.Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
          engine.kv_usage());
  x.Counter("vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            static_cast<double>(s.prefix_cache_queries));
  x.Counter("vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            static_cast<double>(s.prefix_cache_hits));
  x.Counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine.",
            static_cast<double>(s.preemptions));
  x.Counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.",
            static_cast<double>(s.prompt_tokens));
  x.Counter("vllm:generation_tokens_total", "Number of generation tokens processed.",
            static_cast<double>(s.generation_tokens));
  x.Counter("tokenway_sim_lora_loads_total",
            "LoRA adapters loaded into a slot (simulator-only series, for benchmarks).",
            static_cast<double>(s.lora_loads));
  SuccessFamily(x, "vllm:request_success_total", s);
  x.HistogramFamily("vllm:time_to_first_token_seconds",
                    "Histogram of time to first token in seconds.", s.time_to_first_token);
  x.HistogramFamily("vllm:inter_token_latency_seconds",
                    "Histogram of inter-token latency in seconds.", s.inter_token_latency);
  x.HistogramFamily("vllm:e2e_request_latency_seconds",
                    "Histogram of e2e request latency in seconds.", s.e2e_request_latency);
  x.HistogramFamily("vllm:request_queue_time_seconds",
                    "Histogram of time spent in WAITING phase for request.", s.request_queue_time);

  // No model_name/engine labels on these two, as in vLLM.
  std::string& out = x.out();
  char number[64];
  out += "# HELP vllm:lora_requests_info Running stats on lora requests.\n";
  out += "# TYPE vllm:lora_requests_info gauge\n";
  out += "vllm:lora_requests_info{max_lora=\"" + std::to_string(engine.config().max_loras) +
         "\",running_lora_adapters=\"" + EscapeLabel(Join(engine.RunningAdapters())) +
         "\",waiting_lora_adapters=\"" + EscapeLabel(Join(engine.WaitingAdapters())) + "\"} ";
  std::snprintf(number, sizeof number, "%.17g\n", context.wall_clock_seconds);
  out += number;
  out += "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n";
  out += "# TYPE vllm:cache_config_info gauge\n";
  out += "vllm:cache_config_info{block_size=\"" + std::to_string(engine.kv_pool().block_size()) +
         "\",cache_dtype=\"auto\",enable_prefix_caching=\"True\",engine=\"0\","
         "gpu_memory_utilization=\"0.9\",num_gpu_blocks=\"" +
         std::to_string(engine.kv_pool().num_blocks()) + "\"} 1.0\n";
}

void RenderSglang(const Engine& engine, const MetricsContext& context, Exposition& x) {
  const EngineStats& s = engine.stats();
  x.Gauge("sglang:num_running_reqs", "The number of running requests.",
          static_cast<double>(engine.num_running()));
  x.Gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.",
          static_cast<double>(engine.num_waiting()));
  x.Gauge("sglang:token_usage", "The token usage.", engine.kv_usage());
  x.Gauge("sglang:num_used_tokens", "The number of used tokens.",
          engine.kv_usage() *
              static_cast<double>(engine.kv_pool().num_blocks() * engine.kv_pool().block_size()));
  x.Gauge("sglang:cache_hit_rate", "The prefix cache hit rate.",
          s.prefix_cache_queries == 0 ? 0.0
                                      : static_cast<double>(s.prefix_cache_hits) /
                                            static_cast<double>(s.prefix_cache_queries));
  x.Counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.",
            static_cast<double>(s.prompt_tokens));
  x.Counter("sglang:generation_tokens_total", "Number of generation tokens processed.",
            static_cast<double>(s.generation_tokens));
  x.Counter("sglang:num_requests_total", "Number of requests processed.",
            static_cast<double>(s.success_stop + s.success_length + s.success_abort));
  x.HistogramFamily("sglang:time_to_first_token_seconds",
                    "Histogram of time to first token in seconds.", s.time_to_first_token);
  x.HistogramFamily("sglang:inter_token_latency_seconds",
                    "Histogram of inter-token latency in seconds.", s.inter_token_latency);
  x.HistogramFamily("sglang:e2e_request_latency_seconds",
                    "Histogram of End-to-end request latency in seconds", s.e2e_request_latency);
  x.HistogramFamily("sglang:queue_time_seconds", "Histogram of queueing time in seconds.",
                    s.request_queue_time);
  std::string& out = x.out();
  out += "# HELP sglang:cache_config_info Information of the cache configuration\n";
  out += "# TYPE sglang:cache_config_info gauge\n";
  out += "sglang:cache_config_info{model_name=\"" + EscapeLabel(context.model_name) +
         "\",page_size=\"" + std::to_string(engine.kv_pool().block_size()) +
         "\",max_total_num_tokens=\"" +
         std::to_string(engine.kv_pool().num_blocks() * engine.kv_pool().block_size()) +
         "\"} 1.0\n";
}

// trtllm-serve's Prometheus families (tensorrt_llm/metrics/collector.py and the iteration
// stats it republishes), with the labels trtllm-serve sets: model_name and engine_type.
void RenderTrtllmServe(const Engine& engine, Exposition& x) {
  const EngineStats& s = engine.stats();
  const KvBlockPool& kv = engine.kv_pool();
  const double finished = static_cast<double>(s.success_stop + s.success_length + s.success_abort);
  SuccessFamily(x, "trtllm_request_success_total", s);
  x.HistogramFamily("trtllm_e2e_request_latency_seconds",
                    "Histogram of end to end request latency in seconds.", s.e2e_request_latency);
  x.HistogramFamily("trtllm_time_to_first_token_seconds",
                    "Histogram of time to first token in seconds.", s.time_to_first_token);
  x.HistogramFamily("trtllm_time_per_output_token_seconds",
                    "Histogram of time per output token in seconds.", s.inter_token_latency);
  x.HistogramFamily("trtllm_request_queue_time_seconds",
                    "Histogram of time spent in WAITING phase for request.", s.request_queue_time);
  x.Gauge("trtllm_kv_cache_hit_rate", "KV cache hit rate",
          s.prefix_cache_queries == 0 ? 0.0
                                      : static_cast<double>(s.prefix_cache_hits) /
                                            static_cast<double>(s.prefix_cache_queries));
  x.Gauge("trtllm_kv_cache_utilization", "KV cache utilization", engine.kv_usage());
  x.Counter("trtllm_num_requests_completed_total", "Number of completed requests", finished);
  x.Gauge("trtllm_num_requests_running", "Number of active requests",
          static_cast<double>(engine.num_running()));
  x.Gauge("trtllm_num_requests_waiting", "Number of queued requests",
          static_cast<double>(engine.num_waiting()));
  x.Gauge("trtllm_max_num_active_requests", "Maximum number of active requests",
          static_cast<double>(engine.config().profile.max_num_seqs));
  x.Gauge("trtllm_kv_cache_max_blocks", "Maximum KV cache blocks",
          static_cast<double>(kv.num_blocks()));
  x.Gauge("trtllm_kv_cache_free_blocks", "Free KV cache blocks",
          static_cast<double>(kv.num_free_blocks()));
  x.Gauge("trtllm_kv_cache_used_blocks", "Used KV cache blocks",
          static_cast<double>(kv.num_blocks() - kv.num_free_blocks()));
  x.Gauge("trtllm_kv_cache_tokens_per_block", "Tokens per KV cache block",
          static_cast<double>(kv.block_size()));
}

// Triton Inference Server with the TensorRT-LLM backend: Triton's per-model nv_inference_*
// counters and the backend's nv_trt_llm_* gauges, for a model repository entry named
// "tensorrt_llm" (Triton's label names, sorted as Triton prints them).
void RenderTritonTensorrtLlm(const Engine& engine, const MetricsContext& context, Exposition& x) {
  const EngineStats& s = engine.stats();
  const KvBlockPool& kv = engine.kv_pool();
  const double done = static_cast<double>(s.success_stop + s.success_length);
  const char* model = "model=\"tensorrt_llm\",version=\"1\"";
  x.Family("nv_inference_request_success", "counter",
           "Number of successful inference requests, all batch sizes");
  x.Sample("nv_inference_request_success", model, done);
  x.Family("nv_inference_count", "counter",
           "Number of inferences performed (does not include cached requests)");
  x.Sample("nv_inference_count", model, done);
  x.Family("nv_inference_pending_request_count", "gauge",
           "Instantaneous number of pending requests awaiting execution per-model.");
  x.Sample("nv_inference_pending_request_count", model, 0);
  x.Family("nv_trt_llm_request_metrics", "gauge", "TRT LLM request metrics");
  const std::pair<const char*, double> requests[] = {
      {"scheduled", static_cast<double>(engine.num_running())},
      {"max", static_cast<double>(engine.config().profile.max_num_seqs)},
      {"active", static_cast<double>(engine.num_running())},
      {"waiting", static_cast<double>(engine.num_waiting())},
  };
  for (const auto& [type, value] : requests) {
    x.Sample("nv_trt_llm_request_metrics",
             std::string("model=\"tensorrt_llm\",request_type=\"") + type + "\",version=\"1\"",
             value);
  }
  x.Family("nv_trt_llm_kv_cache_block_metrics", "gauge", "TRT LLM KV cache block metrics");
  const std::pair<const char*, double> blocks[] = {
      {"tokens_per", static_cast<double>(kv.block_size())},
      {"used", static_cast<double>(kv.num_blocks() - kv.num_free_blocks())},
      {"free", static_cast<double>(kv.num_free_blocks())},
      {"max", static_cast<double>(kv.num_blocks())},
      {"fraction", engine.kv_usage()},
  };
  for (const auto& [type, value] : blocks) {
    x.Sample(
        "nv_trt_llm_kv_cache_block_metrics",
        std::string("kv_cache_block_type=\"") + type + "\",model=\"tensorrt_llm\",version=\"1\"",
        value);
  }
  x.Family("nv_trt_llm_general_metrics", "gauge", "General TRT LLM metrics");
  x.Sample("nv_trt_llm_general_metrics",
           "general_type=\"iteration_counter\",model=\"tensorrt_llm\",version=\"1\"",
           static_cast<double>(s.steps));
  x.Sample("nv_trt_llm_general_metrics",
           "general_type=\"timestamp\",model=\"tensorrt_llm\",version=\"1\"",
           static_cast<double>(static_cast<int64_t>(context.wall_clock_seconds)));
}

}  // namespace

std::string RenderMetrics(const Engine& engine, MetricsDialect dialect,
                          const MetricsContext& context) {
  const std::string model = EscapeLabel(context.model_name);
  switch (dialect) {
    case MetricsDialect::kSglang: {
      Exposition x("model_name=\"" + model + "\"");
      RenderSglang(engine, context, x);
      return std::move(x.out());
    }
    case MetricsDialect::kTrtllmServe: {
      Exposition x("model_name=\"" + model + "\",engine_type=\"trtllm\"");
      RenderTrtllmServe(engine, x);
      return std::move(x.out());
    }
    case MetricsDialect::kTritonTensorrtLlm: {
      Exposition x("");  // every sample names its own labels, in Triton's order
      RenderTritonTensorrtLlm(engine, context, x);
      return std::move(x.out());
    }
    case MetricsDialect::kVllm:
      break;
  }
  Exposition x("engine=\"0\",model_name=\"" + model + "\"");
  RenderVllm(engine, context, x);
  return std::move(x.out());
}

}  // namespace tokenway::sim
