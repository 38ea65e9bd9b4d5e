// Fuzzes the Prometheus text parser and every engine adapter: never crash, never hang, views stay
// inside the input, and a reading is never valid with non-finite or negative load.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "routing/engine_adapter.h"
#include "routing/prometheus_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const char* lo = text.data();
  const char* hi = text.data() + text.size();
  auto inside = [&](std::string_view v) {
    return v.empty() || (v.data() >= lo && v.data() + v.size() <= hi);
  };
  tokenway::ParsePrometheusText(text, 1 << 20, [&](const tokenway::PrometheusSample& s) {
    if (!inside(s.name) || !inside(s.labels) || s.name.empty()) std::abort();
    std::string_view v;
    if (tokenway::FindPrometheusLabel(s.labels, "le", v) && !inside(v)) std::abort();
  });
  for (std::string_view name : tokenway::kEngineNames) {
    tokenway::EngineKind kind;
    if (!tokenway::ParseEngineKind(name, kind)) std::abort();
    tokenway::EngineReading r = tokenway::ReadEngineMetrics(kind, text, 1 << 20);
    if (r.valid && (!std::isfinite(r.waiting) || r.waiting < 0 || !std::isfinite(r.running) ||
                    r.running < 0 || !(r.kv_utilisation >= 0) || r.kv_utilisation > 1)) {
      std::abort();
    }
  }
  return 0;
}
