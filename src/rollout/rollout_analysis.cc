#include "rollout/rollout_analysis.h"

#include <algorithm>
#include <chrono>

namespace tokenway {

namespace {

uint64_t Minus(uint64_t later, uint64_t earlier) {
  return later >= earlier ? later - earlier : later;
}

std::vector<uint64_t> BucketsDelta(const std::vector<uint64_t>& later,
                                   const std::vector<uint64_t>& earlier) {
  std::vector<uint64_t> out(later.size());
  uint64_t later_total = 0, earlier_total = 0;
  for (uint64_t c : later) later_total += c;
  for (uint64_t c : earlier) earlier_total += c;
  const bool reset = earlier.size() != later.size() || later_total < earlier_total;
  for (size_t i = 0; i < later.size(); ++i) {
    out[i] = reset ? later[i] : Minus(later[i], earlier[i]);
  }
  return out;
}

uint64_t Total(std::span<const uint64_t> counts) {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}

double Seconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A latency criterion: candidate p90 <= stable p90 × ratio + slack.
struct LatencyCheck {
  const char* name;
  double ratio;
  Duration slack;
  std::span<const double> bounds;
  std::span<const uint64_t> candidate;
  std::span<const uint64_t> stable;
  double* candidate_p90;
  double* stable_p90;
};

}  // namespace

VersionFigures FiguresDelta(const VersionFigures& later, const VersionFigures& earlier) {
  VersionFigures d;
  const bool reset = later.requests < earlier.requests;
  d.requests = reset ? later.requests : later.requests - earlier.requests;
  d.errors = reset ? later.errors : Minus(later.errors, earlier.errors);
  d.output_tokens = reset ? later.output_tokens : Minus(later.output_tokens, earlier.output_tokens);
  d.ttft_bounds = later.ttft_bounds;
  d.tpot_bounds = later.tpot_bounds;
  d.ttft = BucketsDelta(later.ttft, earlier.ttft);
  d.tpot = BucketsDelta(later.tpot, earlier.tpot);
  return d;
}

double HistogramQuantile(std::span<const double> bounds, std::span<const uint64_t> counts,
                         double q) {
  const uint64_t total = Total(counts);
  if (total == 0 || bounds.empty()) return -1;
  const double rank = q * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const uint64_t in = counts[i];
    if (in > 0 && static_cast<double>(below + in) >= rank) {
      if (i >= bounds.size()) return bounds.back();  // +Inf bucket
      const double lo = i == 0 ? 0.0 : bounds[i - 1];
      const double hi = bounds[i];
      const double frac = (rank - static_cast<double>(below)) / static_cast<double>(in);
      return lo + (hi - lo) * std::clamp(frac, 0.0, 1.0);
    }
    below += in;
  }
  return bounds.back();
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kFail:
      return "fail";
    case Verdict::kWait:
      break;
  }
  return "wait";
}

AnalysisResult Analyse(const RolloutAnalysisConfig& config, const VersionFigures& candidate,
                       const VersionFigures& stable) {
  AnalysisResult r;
  r.candidate_requests = candidate.requests;
  r.stable_requests = stable.requests;
  if (candidate.requests > 0) {
    r.candidate_error_rate =
        static_cast<double>(candidate.errors) / static_cast<double>(candidate.requests);
  }
  if (stable.requests > 0) {
    r.stable_error_rate = static_cast<double>(stable.errors) / static_cast<double>(stable.requests);
  }
  const uint64_t min = config.min_samples;
  std::string fail, missing;
  auto add = [](std::string& to, const std::string& what) {
    if (!to.empty()) to += "; ";
    to += what;
  };

  // Errors. The absolute limit needs only the candidate's samples; the delta needs both.
  const bool candidate_enough = candidate.requests >= min;
  if (config.max_error_rate > 0) {
    if (!candidate_enough) {
      add(missing,
          "candidate requests " + std::to_string(candidate.requests) + " < " + std::to_string(min));
    } else if (r.candidate_error_rate > config.max_error_rate) {
      add(fail, "candidate error rate " + Fmt(r.candidate_error_rate) + " > " +
                    Fmt(config.max_error_rate));
    }
  }
  if (config.max_error_rate_delta >= 0) {
    if (!candidate_enough || stable.requests < min) {
      add(missing, "requests candidate " + std::to_string(candidate.requests) + ", stable " +
                       std::to_string(stable.requests) + " (need " + std::to_string(min) + ")");
    } else if (r.candidate_error_rate > r.stable_error_rate + config.max_error_rate_delta) {
      add(fail, "candidate error rate " + Fmt(r.candidate_error_rate) + " > stable " +
                    Fmt(r.stable_error_rate) + " + " + Fmt(config.max_error_rate_delta));
    }
  }

  LatencyCheck checks[] = {
      {"ttft p90", config.max_ttft_p90_ratio, config.ttft_p90_slack, candidate.ttft_bounds,
       candidate.ttft, stable.ttft, &r.candidate_ttft_p90, &r.stable_ttft_p90},
      {"tpot p90", config.max_tpot_p90_ratio, config.tpot_p90_slack, candidate.tpot_bounds,
       candidate.tpot, stable.tpot, &r.candidate_tpot_p90, &r.stable_tpot_p90},
  };
  for (const LatencyCheck& c : checks) {
    *c.candidate_p90 = HistogramQuantile(c.bounds, c.candidate, 0.9);
    *c.stable_p90 = HistogramQuantile(c.bounds, c.stable, 0.9);
    if (c.ratio <= 0) continue;
    const uint64_t nc = Total(c.candidate), ns = Total(c.stable);
    if (nc < min || ns < min) {
      add(missing, std::string(c.name) + " samples candidate " + std::to_string(nc) + ", stable " +
                       std::to_string(ns) + " (need " + std::to_string(min) + ")");
      continue;
    }
    const double limit = *c.stable_p90 * c.ratio + Seconds(c.slack);
    if (*c.candidate_p90 > limit) {
      add(fail, std::string("candidate ") + c.name + " " + Fmt(*c.candidate_p90) + "s > " +
                    Fmt(limit) + "s (stable " + Fmt(*c.stable_p90) + "s × " + Fmt(c.ratio) +
                    (c.slack.count() > 0 ? " + slack" : "") + ")");
    }
  }

  const uint64_t candidate_ok = candidate.requests - std::min(candidate.errors, candidate.requests);
  const uint64_t stable_ok = stable.requests - std::min(stable.errors, stable.requests);
  if (candidate_ok > 0) {
    r.candidate_output_tokens =
        static_cast<double>(candidate.output_tokens) / static_cast<double>(candidate_ok);
  }
  if (stable_ok > 0) {
    r.stable_output_tokens =
        static_cast<double>(stable.output_tokens) / static_cast<double>(stable_ok);
  }
  if (config.min_output_tokens_ratio > 0) {
    if (candidate_ok < min || stable_ok < min) {
      add(missing, "successful requests candidate " + std::to_string(candidate_ok) + ", stable " +
                       std::to_string(stable_ok) + " (need " + std::to_string(min) + ")");
    } else if (r.candidate_output_tokens <
               r.stable_output_tokens * config.min_output_tokens_ratio) {
      add(fail, "candidate output tokens per request " + Fmt(r.candidate_output_tokens) +
                    " < stable " + Fmt(r.stable_output_tokens) + " × " +
                    Fmt(config.min_output_tokens_ratio));
    }
  }

  if (!fail.empty()) {
    r.verdict = Verdict::kFail;
    r.reason = std::move(fail);
  } else if (!missing.empty()) {
    r.verdict = Verdict::kWait;
    r.reason = "too few samples: " + missing;
  } else {
    r.verdict = Verdict::kPass;
  }
  return r;
}

}  // namespace tokenway
