#include "routing/engine_adapter.h"

#include <algorithm>
#include <cmath>

#include "routing/endpoint_state.h"
#include "routing/prometheus_parser.h"

namespace tokenway {

bool ParseEngineKind(std::string_view name, EngineKind& out) {
  if (name == "vllm") {
    out = EngineKind::kVllm;
    return true;
  }
  if (name == "sglang") {
    out = EngineKind::kSglang;
    return true;
  }
  return false;
}

std::string_view EngineKindName(EngineKind kind) {
  return kind == EngineKind::kSglang ? "sglang" : "vllm";
}

namespace {

struct Names {
  std::string_view waiting, running, kv;
};

constexpr Names kVllmNames{"vllm:num_requests_waiting", "vllm:num_requests_running",
                           "vllm:kv_cache_usage_perc"};
constexpr Names kSglangNames{"sglang:num_queue_reqs", "sglang:num_running_reqs",
                             "sglang:token_usage"};

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

}  // namespace

EngineReading ReadEngineMetrics(EngineKind kind, std::string_view text, size_t max_bytes) {
  const Names& names = kind == EngineKind::kSglang ? kSglangNames : kVllmNames;
  EngineReading r;
  bool has_waiting = false, has_running = false, has_kv = false, finite = true;
  double lora_stamp = -1;
  auto result = ParsePrometheusText(text, max_bytes, [&](const PrometheusSample& s) {
    if (s.name == names.waiting) {
      has_waiting = true;
      finite = finite && std::isfinite(s.value);
      r.waiting += s.value;
    } else if (s.name == names.running) {
      has_running = true;
      finite = finite && std::isfinite(s.value);
      r.running += s.value;
    } else if (s.name == names.kv) {
      has_kv = true;
      finite = finite && std::isfinite(s.value);
      r.kv_utilisation = std::max(r.kv_utilisation, s.value);
    } else if (kind == EngineKind::kVllm && s.name == "vllm:lora_requests_info") {
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
    } else if (kind == EngineKind::kVllm && s.name == "vllm:cache_config_info") {
      std::string_view v;
      if (FindPrometheusLabel(s.labels, "block_size", v)) r.block_size = ToCount(v);
    }
  });
  r.malformed_lines = result.malformed;
  r.valid = result.ok && has_waiting && has_running && has_kv && finite && r.waiting >= 0 &&
            r.running >= 0 && r.kv_utilisation >= 0;
  r.kv_utilisation = std::clamp(r.kv_utilisation, 0.0, 1.0);
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
