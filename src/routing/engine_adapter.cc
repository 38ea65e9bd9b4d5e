#include "routing/engine_adapter.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "routing/endpoint_state.h"
#include "routing/prometheus_parser.h"

namespace tokenway {

bool ParseEngineKind(std::string_view name, EngineKind& out) {
  for (size_t i = 0; i < std::size(kEngineNames); ++i) {
    if (name == kEngineNames[i]) {
      out = static_cast<EngineKind>(i);
      return true;
    }
  }
  return false;
}

std::string_view EngineKindName(EngineKind kind) {
  return kEngineNames[static_cast<size_t>(kind)];
}

namespace {

// One series: a metric name, narrowed to the samples whose label `label` equals `value` when
// `label` is set (GIE writes these as family{label=value}).
struct SeriesSpec {
  std::string_view name;
  std::string_view label;
  std::string_view value;
};

constexpr SeriesSpec Series(std::string_view name, std::string_view label = {},
                            std::string_view value = {}) {
  return SeriesSpec{name, label, value};
}

// Where an engine reports its KV block size, in tokens: a label of an info series, or (label
// empty) a gauge's value.
struct BlockSizeSpec {
  SeriesSpec series;
  std::string_view label;
};

struct EngineSpec {
  SeriesSpec waiting;
  SeriesSpec running;
  SeriesSpec kv;
  SeriesSpec kv_fallback;  // read only when `kv` is absent; name empty: none
  BlockSizeSpec block_size;
  bool lora;  // vllm:lora_requests_info
};

// In EngineKind order.
constexpr EngineSpec kEngineSpecs[] = {
    {Series("vllm:num_requests_waiting"), Series("vllm:num_requests_running"),
     Series("vllm:kv_cache_usage_perc"), Series("vllm:gpu_cache_usage_perc"),
     BlockSizeSpec{Series("vllm:cache_config_info"), "block_size"}, true},
    {Series("sglang:num_queue_reqs"), Series("sglang:num_running_reqs"),
     Series("sglang:token_usage"), Series(""),
     BlockSizeSpec{Series("sglang:cache_config_info"), "page_size"}, false},
    {Series("trtllm_num_requests_waiting"), Series("trtllm_num_requests_running"),
     Series("trtllm_kv_cache_utilization"), Series(""),
     BlockSizeSpec{Series("trtllm_kv_cache_tokens_per_block"), ""}, false},
    {Series("nv_trt_llm_request_metrics", "request_type", "waiting"),
     Series("nv_trt_llm_request_metrics", "request_type", "scheduled"),
     Series("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "fraction"), Series(""),
     BlockSizeSpec{Series("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "tokens_per"),
                   ""},
     false},
};
static_assert(std::size(kEngineSpecs) == std::size(kEngineNames));

bool Matches(const PrometheusSample& s, const SeriesSpec& spec) {
  if (spec.name.empty() || s.name != spec.name) return false;
  if (spec.label.empty()) return true;
  std::string_view v;
  return FindPrometheusLabel(s.labels, spec.label, v) && v == spec.value;
}

// One signal accumulated over the samples of its series.
struct Gauge {
  bool seen = false;
  bool usable = true;  // every sample finite and not negative
  double value = 0;

  void Observe(double v, bool sum) {
    usable = usable && std::isfinite(v) && v >= 0;
    value = !seen ? v : sum ? value + v : std::max(value, v);
    seen = true;
  }
  bool ok() const { return seen && usable; }
};

void SplitAdapters(std::string_view list, std::vector<std::string>& out) {
  out.clear();
  while (!list.empty() && out.size() < 64) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

uint32_t ToCount(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    if (v > 1000000) return 0;
  }
  return static_cast<uint32_t>(v);
}

// A block size written as a gauge value ("64" or "64.0"); 0 when it is not a sensible count.
uint32_t ToCount(double v) {
  if (!std::isfinite(v) || v < 1 || v > 1000000 || v != std::floor(v)) return 0;
  return static_cast<uint32_t>(v);
}

}  // namespace

EngineReading ReadEngineMetrics(EngineKind kind, std::string_view text, size_t max_bytes) {
  const EngineSpec& spec = kEngineSpecs[static_cast<size_t>(kind)];
  EngineReading r;
  Gauge waiting, running, kv, kv_fallback;
  double lora_stamp = -1;
  auto result = ParsePrometheusText(text, max_bytes, [&](const PrometheusSample& s) {
    if (Matches(s, spec.waiting)) {
      waiting.Observe(s.value, true);
    } else if (Matches(s, spec.running)) {
      running.Observe(s.value, true);
    } else if (Matches(s, spec.kv)) {
      kv.Observe(s.value, false);
    } else if (Matches(s, spec.kv_fallback)) {
      kv_fallback.Observe(s.value, false);
    } else if (Matches(s, spec.block_size.series)) {
      if (spec.block_size.label.empty()) {
        r.block_size = ToCount(s.value);
      } else if (std::string_view v; FindPrometheusLabel(s.labels, spec.block_size.label, v)) {
        r.block_size = ToCount(v);
      }
    } else if (spec.lora && s.name == "vllm:lora_requests_info") {
      if (!(s.value > lora_stamp)) return;
      lora_stamp = s.value;
      std::string_view v;
      if (FindPrometheusLabel(s.labels, "max_lora", v)) r.max_lora = ToCount(v);
      if (FindPrometheusLabel(s.labels, "running_lora_adapters", v)) {
        SplitAdapters(v, r.running_loras);
      }
      if (FindPrometheusLabel(s.labels, "waiting_lora_adapters", v)) {
        SplitAdapters(v, r.waiting_loras);
      }
    }
  });
  const Gauge& usage = kv.seen ? kv : kv_fallback;
  r.malformed_lines = result.malformed;
  r.waiting = waiting.value;
  r.running = running.value;
  r.kv_utilisation = std::clamp(usage.value, 0.0, 1.0);
  r.valid = result.ok && waiting.ok() && running.ok() && usage.ok();
  return r;
}

namespace {

void StoreSet(const std::vector<std::string>& names, std::atomic<uint64_t>* set,
              std::atomic<uint32_t>& count) {
  uint32_t n = static_cast<uint32_t>(std::min<size_t>(names.size(), EngineSignals::kMaxLoras));
  for (uint32_t i = 0; i < n; ++i) set[i].store(LoraNameHash(names[i]), std::memory_order_relaxed);
  count.store(n, std::memory_order_relaxed);
}

int32_t ToGauge(double v) {
  return v > 1e9 ? 1000000000 : static_cast<int32_t>(std::lround(v));
}

}  // namespace

void PublishEngineReading(const EngineReading& reading, EndpointState& state, int64_t now_ns) {
  EngineSignals& e = state.engine;
  e.scrapes_total.fetch_add(1, std::memory_order_relaxed);
  if (!reading.valid) {
    e.valid.store(false, std::memory_order_relaxed);
    e.scrape_failures_total.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  e.waiting.store(ToGauge(reading.waiting), std::memory_order_relaxed);
  e.running.store(ToGauge(reading.running), std::memory_order_relaxed);
  e.kv_utilisation.store(static_cast<float>(reading.kv_utilisation), std::memory_order_relaxed);
  e.max_lora.store(reading.max_lora, std::memory_order_relaxed);
  e.block_size.store(reading.block_size, std::memory_order_relaxed);
  StoreSet(reading.running_loras, e.running_lora, e.running_lora_count);
  StoreSet(reading.waiting_loras, e.waiting_lora, e.waiting_lora_count);
  e.updated_at_ns.store(now_ns, std::memory_order_relaxed);
  e.valid.store(true, std::memory_order_relaxed);
}

}  // namespace tokenway
