#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/json_writer.h"

namespace tokenway::bench {
namespace {

std::string Fmt(const char* f, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string Ms(double seconds) {
  return Fmt("%.1f", seconds * 1e3);
}

void AppendSummaryJson(std::string& out, const Summary& s) {
  out += "{\"count\":";
  AppendJsonInt(out, s.count);
  for (auto [name, v] : {std::pair{"mean", s.mean},
                         {"p50", s.p50},
                         {"p90", s.p90},
                         {"p99", s.p99},
                         {"min", s.min},
                         {"max", s.max}}) {
    out += ",\"";
    out += name;
    out += "_ms\":";
    out += Fmt("%.4f", v * 1e3);
  }
  out += '}';
}

}  // namespace

RunSummary Summarize(const LoadResult& result, const LoadOptions& o, const Slo& slo,
                     const std::string& label, const std::string& workload) {
  RunSummary s;
  s.label = label;
  s.workload = workload;
  s.offered_rate = o.trace_arrivals ? 0 : o.rate;
  s.concurrency = o.rate > 0 || o.trace_arrivals ? 0 : o.concurrency;
  s.stream = o.stream;
  s.slo = slo;
  s.unfinished = result.unfinished;
  s.client_limited = result.client_limited;
  std::vector<double> ttft, tpot, e2e, itl;
  int64_t out_tokens = 0, in_tokens = 0, cached = 0, cached_prompt = 0, good = 0;
  for (const RequestRecord& r : result.records) {
    if (r.warmup) {
      ++s.warmup;
      continue;
    }
    ++s.measured;
    if (!r.ok()) {
      ++s.errors[static_cast<size_t>(r.error)];
      ++s.error_total;
      continue;
    }
    ++s.succeeded;
    if (r.usage_mismatch) ++s.usage_mismatch;
    out_tokens += r.output_tokens;
    in_tokens += r.input_tokens;
    if (r.cached_tokens >= 0) {
      cached += r.cached_tokens;
      cached_prompt += r.input_tokens;
    }
    if (r.ttft >= 0) ttft.push_back(r.ttft);
    if (r.tpot >= 0) tpot.push_back(r.tpot);
    if (r.e2e >= 0) e2e.push_back(r.e2e);
    RequestTiming t{true, o.stream ? r.ttft : r.e2e, r.tpot, r.max_itl, r.e2e};
    if (MeetsSlo(t, slo)) ++good;
  }
  itl.reserve(result.itl_us.size());
  for (uint32_t us : result.itl_us) itl.push_back(us / 1e6);
  s.duration_s = result.measure_end - result.measure_start;
  if (s.duration_s <= 0) s.duration_s = std::max(1e-9, result.wall_s - result.measure_start);
  s.request_rate = s.succeeded / s.duration_s;
  s.output_token_rate = out_tokens / s.duration_s;
  s.input_token_rate = in_tokens / s.duration_s;
  s.goodput = good / s.duration_s;
  s.slo_attainment = s.measured > 0 ? static_cast<double>(good) / s.measured : 0;
  s.ttft = bench::Summarize(ttft);
  s.tpot = bench::Summarize(tpot);
  s.itl = bench::Summarize(itl);
  s.e2e = bench::Summarize(e2e);
  s.ttft_sorted = std::move(ttft);
  if (cached_prompt > 0) s.cached_token_share = static_cast<double>(cached) / cached_prompt;
  return s;
}

std::string FormatTable(const std::vector<RunSummary>& runs) {
  std::string out;
  char line[512];
  snprintf(line, sizeof line,
           "%-16s %7s %6s %6s %8s %8s %8s %8s %7s %7s %7s %8s %8s %8s %8s %6s %6s\n", "config",
           "rate", "ok", "errors", "req/s", "out tok/s", "goodput", "ttft p50", "p90", "p99",
           "mean", "tpot p50", "p90", "itl p50", "e2e p50", "p99", "hit%");
  out += line;
  for (const auto& r : runs) {
    std::string rate =
        r.offered_rate > 0
            ? Fmt("%.2f", r.offered_rate)
            : (r.concurrency > 0 ? "c=" + std::to_string(r.concurrency) : std::string("trace"));
    std::string hit = r.prefix_hit_rate >= 0 ? Fmt("%.1f", r.prefix_hit_rate * 100) : "-";
    snprintf(line, sizeof line,
             "%-16s %7s %6lld %6lld %8.2f %9.1f %8.2f %8s %8s %7s %7s %8s %8s %8s %8s %6s %6s\n",
             r.label.substr(0, 16).c_str(), rate.c_str(), static_cast<long long>(r.succeeded),
             static_cast<long long>(r.error_total), r.request_rate, r.output_token_rate, r.goodput,
             Ms(r.ttft.p50).c_str(), Ms(r.ttft.p90).c_str(), Ms(r.ttft.p99).c_str(),
             Ms(r.ttft.mean).c_str(), Ms(r.tpot.p50).c_str(), Ms(r.tpot.p90).c_str(),
             Ms(r.itl.p50).c_str(), Ms(r.e2e.p50).c_str(), Ms(r.e2e.p99).c_str(), hit.c_str());
    out += line;
  }
  out += "(latencies in ms)\n";
  for (const auto& r : runs) {
    if (r.error_total == 0 && r.unfinished == 0) continue;
    out += r.label + " @ " +
           (r.offered_rate > 0 ? Fmt("%.2f req/s", r.offered_rate)
                               : "concurrency " + std::to_string(r.concurrency)) +
           ": errors";
    for (size_t k = 1; k < kErrorKinds; ++k) {
      if (r.errors[k]) {
        out += " " + std::string(ErrorKindName(static_cast<ErrorKind>(k))) + "=" +
               std::to_string(r.errors[k]);
      }
    }
    if (r.unfinished) out += " unfinished=" + std::to_string(r.unfinished);
    out += '\n';
  }
  return out;
}

std::string ToJson(const std::vector<RunSummary>& runs, const std::string& meta_json) {
  std::string out = "{\"meta\":";
  out += meta_json.empty() ? "{}" : meta_json;
  out += ",\"runs\":[";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunSummary& r = runs[i];
    if (i) out += ',';
    out += "\n{\"label\":";
    AppendJsonString(out, r.label);
    out += ",\"workload\":";
    AppendJsonString(out, r.workload);
    out += ",\"offered_rate\":" + Fmt("%.4f", r.offered_rate);
    out += ",\"concurrency\":" + std::to_string(r.concurrency);
    out += std::string(",\"stream\":") + (r.stream ? "true" : "false");
    out += ",\"slo\":";
    AppendJsonString(out, r.slo.ToString());
    out += ",\"measured\":" + std::to_string(r.measured);
    out += ",\"succeeded\":" + std::to_string(r.succeeded);
    out += ",\"failed\":" + std::to_string(r.error_total);
    out += ",\"warmup\":" + std::to_string(r.warmup);
    out += ",\"unfinished\":" + std::to_string(r.unfinished);
    out += ",\"client_limited\":" + std::to_string(r.client_limited);
    out += ",\"usage_mismatch\":" + std::to_string(r.usage_mismatch);
    out += ",\"errors\":{";
    for (size_t k = 1; k < kErrorKinds; ++k) {
      if (k > 1) out += ',';
      out += '"';
      out += ErrorKindName(static_cast<ErrorKind>(k));
      out += "\":" + std::to_string(r.errors[k]);
    }
    out += "},\"duration_s\":" + Fmt("%.4f", r.duration_s);
    out += ",\"request_rate\":" + Fmt("%.4f", r.request_rate);
    out += ",\"output_token_rate\":" + Fmt("%.3f", r.output_token_rate);
    out += ",\"input_token_rate\":" + Fmt("%.3f", r.input_token_rate);
    out += ",\"goodput\":" + Fmt("%.4f", r.goodput);
    out += ",\"slo_attainment\":" + Fmt("%.4f", r.slo_attainment);
    for (auto [name, s] :
         {std::pair{"ttft", &r.ttft}, {"tpot", &r.tpot}, {"itl", &r.itl}, {"e2e", &r.e2e}}) {
      out += ",\"";
      out += name;
      out += "\":";
      AppendSummaryJson(out, *s);
    }
    out += ",\"prefix_hit_rate\":" +
           (r.prefix_hit_rate >= 0 ? Fmt("%.6f", r.prefix_hit_rate) : std::string("null"));
    out += ",\"prefix_cache_queries\":" + Fmt("%.0f", r.prefix_queries);
    out += ",\"prefix_cache_hits\":" + Fmt("%.0f", r.prefix_hits);
    out += ",\"cached_token_share\":" +
           (r.cached_token_share >= 0 ? Fmt("%.6f", r.cached_token_share) : std::string("null"));
    out += ",\"adapter_loads\":" +
           (r.adapter_loads >= 0 ? Fmt("%.0f", r.adapter_loads) : std::string("null"));
    if (r.ttft_prediction_mape >= 0) {
      out += ",\"ttft_prediction_mape\":" + Fmt("%.4f", r.ttft_prediction_mape);
    }
    if (r.tpot_prediction_mape >= 0) {
      out += ",\"tpot_prediction_mape\":" + Fmt("%.4f", r.tpot_prediction_mape);
    }
    if (r.slo_refused > 0) out += ",\"slo_refused\":" + std::to_string(r.slo_refused);
    out += '}';
  }
  out += "\n]}\n";
  return out;
}

std::string ToMarkdown(const std::vector<RunSummary>& runs, const std::string& title,
                       const std::string& preamble) {
  std::string out = "# " + title + "\n\n" + preamble + "\n";
  out += "## Latency (ms)\n\n";
  out +=
      "| config | offered rate | TTFT p50 | p90 | p99 | mean | TPOT p50 | p90 | p99 | mean | "
      "ITL p50 | p90 | p99 | E2E p50 | p90 | p99 | mean |\n";
  out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  auto rate = [](const RunSummary& r) {
    return r.offered_rate > 0 ? Fmt("%.2f req/s", r.offered_rate)
                              : (r.concurrency > 0 ? "concurrency " + std::to_string(r.concurrency)
                                                   : std::string("trace"));
  };
  for (const auto& r : runs) {
    out += "| " + r.label + " | " + rate(r);
    for (const Summary* s : {&r.ttft, &r.tpot}) {
      out += " | " + Ms(s->p50) + " | " + Ms(s->p90) + " | " + Ms(s->p99) + " | " + Ms(s->mean);
    }
    out += " | " + Ms(r.itl.p50) + " | " + Ms(r.itl.p90) + " | " + Ms(r.itl.p99);
    out += " | " + Ms(r.e2e.p50) + " | " + Ms(r.e2e.p90) + " | " + Ms(r.e2e.p99) + " | " +
           Ms(r.e2e.mean) + " |\n";
  }
  out += "\n## Throughput, goodput, cache\n\n";
  out += "| config | offered rate | succeeded | failed | req/s | output tok/s | goodput req/s (" +
         (runs.empty() ? std::string() : runs[0].slo.ToString()) +
         ") | SLO attainment | prefix hit rate | cached-token share | adapter loads |\n";
  out += "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : runs) {
    out += "| " + r.label + " | " + rate(r) + " | " + std::to_string(r.succeeded) + " | " +
           std::to_string(r.error_total) + " | " + Fmt("%.2f", r.request_rate) + " | " +
           Fmt("%.1f", r.output_token_rate) + " | " + Fmt("%.2f", r.goodput) + " | " +
           Fmt("%.1f %%", r.slo_attainment * 100) + " | " +
           (r.prefix_hit_rate >= 0 ? Fmt("%.1f %%", r.prefix_hit_rate * 100) : "—") + " | " +
           (r.cached_token_share >= 0 ? Fmt("%.1f %%", r.cached_token_share * 100) : "—") + " | " +
           (r.adapter_loads >= 0 ? Fmt("%.0f", r.adapter_loads) : "—") + " |\n";
  }
  if (std::any_of(runs.begin(), runs.end(),
                  [](const RunSummary& r) { return r.ttft_prediction_mape >= 0; })) {
    out +=
        "\n## Latency predictions\n\n| config | offered rate | TTFT MAPE | TPOT MAPE | refused "
        "for their SLO |\n|---|---|---|---|---|\n";
    for (const auto& r : runs) {
      if (r.ttft_prediction_mape < 0) continue;
      out += "| " + r.label + " | " + rate(r) + " | " +
             Fmt("%.1f %%", r.ttft_prediction_mape * 100) + " | " +
             (r.tpot_prediction_mape >= 0 ? Fmt("%.1f %%", r.tpot_prediction_mape * 100) : "—") +
             " | " + std::to_string(r.slo_refused) + " |\n";
    }
  }
  out += "\n## Errors by kind\n\n| config | offered rate |";
  for (size_t k = 1; k < kErrorKinds; ++k) {
    out += " " + std::string(ErrorKindName(static_cast<ErrorKind>(k))) + " |";
  }
  out += " unfinished |\n|---|---|";
  for (size_t k = 1; k <= kErrorKinds; ++k) out += "---|";
  out += "\n";
  for (const auto& r : runs) {
    out += "| " + r.label + " | " + rate(r) + " |";
    for (size_t k = 1; k < kErrorKinds; ++k) out += " " + std::to_string(r.errors[k]) + " |";
    out += " " + std::to_string(r.unfinished) + " |\n";
  }
  return out;
}

std::string SvgPlot(const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Series>& series) {
  const double W = 640, H = 400, L = 70, R = 150, T = 40, B = 50;
  double x0 = INFINITY, x1 = -INFINITY, y0 = 0, y1 = -INFINITY;
  for (const auto& s : series) {
    for (auto [x, y] : s.points) {
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y1 = std::max(y1, y);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (!(y1 > y0)) y1 = y0 + 1;
  y1 *= 1.05;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '<')
        o += "&lt;";
      else if (c == '>')
        o += "&gt;";
      else if (c == '&')
        o += "&amp;";
      else
        o += c;
    }
    return o;
  };
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                  "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  std::string o =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"400\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"640\" height=\"400\" fill=\"white\"/>\n";
  o += "<text x=\"" + Fmt("%.0f", W / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" +
       esc(title) + "</text>\n";
  o += "<line x1=\"" + Fmt("%.1f", L) + "\" y1=\"" + Fmt("%.1f", H - B) + "\" x2=\"" +
       Fmt("%.1f", W - R) + "\" y2=\"" + Fmt("%.1f", H - B) + "\" stroke=\"black\"/>\n";
  o += "<line x1=\"" + Fmt("%.1f", L) + "\" y1=\"" + Fmt("%.1f", T) + "\" x2=\"" + Fmt("%.1f", L) +
       "\" y2=\"" + Fmt("%.1f", H - B) + "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    o += "<text x=\"" + Fmt("%.1f", px(xv)) + "\" y=\"" + Fmt("%.1f", H - B + 16) +
         "\" text-anchor=\"middle\">" + Fmt("%.3g", xv) + "</text>\n";
    o += "<text x=\"" + Fmt("%.1f", L - 6) + "\" y=\"" + Fmt("%.1f", py(yv) + 4) +
         "\" text-anchor=\"end\">" + Fmt("%.3g", yv) + "</text>\n";
    o += "<line x1=\"" + Fmt("%.1f", L) + "\" y1=\"" + Fmt("%.1f", py(yv)) + "\" x2=\"" +
         Fmt("%.1f", W - R) + "\" y2=\"" + Fmt("%.1f", py(yv)) + "\" stroke=\"#ddd\"/>\n";
  }
  o += "<text x=\"" + Fmt("%.1f", (L + W - R) / 2) + "\" y=\"" + Fmt("%.1f", H - 12) +
       "\" text-anchor=\"middle\">" + esc(x_label) + "</text>\n";
  o += "<text transform=\"translate(16," + Fmt("%.1f", (T + H - B) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + esc(y_label) + "</text>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % 8];
    std::string pts;
    for (auto [x, y] : series[i].points) {
      pts += Fmt("%.1f", px(x)) + "," + Fmt("%.1f", py(y)) + " ";
    }
    o += "<polyline fill=\"none\" stroke=\"" + std::string(color) +
         "\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
    if (series[i].points.size() < 40) {
      for (auto [x, y] : series[i].points) {
        o += "<circle cx=\"" + Fmt("%.1f", px(x)) + "\" cy=\"" + Fmt("%.1f", py(y)) +
             "\" r=\"3\" fill=\"" + color + "\"/>\n";
      }
    }
    double ly = T + 10 + 18 * static_cast<double>(i);
    o += "<rect x=\"" + Fmt("%.1f", W - R + 12) + "\" y=\"" + Fmt("%.1f", ly - 8) +
         "\" width=\"12\" height=\"4\" fill=\"" + color + "\"/>\n";
    o += "<text x=\"" + Fmt("%.1f", W - R + 30) + "\" y=\"" + Fmt("%.1f", ly - 2) + "\">" +
         esc(series[i].name) + "</text>\n";
  }
  o += "</svg>\n";
  return o;
}

}  // namespace tokenway::bench
