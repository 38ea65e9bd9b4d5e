#include "routing/latency_predictor.h"

#include <algorithm>
#include <cmath>

#include "routing/endpoint_state.h"

namespace tokenway {

LatencyFeatures ComputeLatencyFeatures(const EndpointState& state, double prompt_tokens,
                                       double cached_fraction, int64_t now_ns,
                                       int64_t stale_after_ns) {
  LatencyFeatures f;
  const double uncached =
      std::max(0.0, prompt_tokens) * (1.0 - std::clamp(cached_fraction, 0.0, 1.0)) / 1000.0;
  const double prefill = static_cast<double>(std::max<int64_t>(
                             0, state.prefill_tokens.load(std::memory_order_relaxed))) /
                         1000.0;
  const double decode = static_cast<double>(std::max<int64_t>(
                            0, state.decode_tokens.load(std::memory_order_relaxed))) /
                        1000.0;
  double running = std::max(0, state.in_flight.load(std::memory_order_relaxed));
  double waiting = 0;
  double kv = 0;
  const EngineSignals& e = state.engine;
  if (e.Fresh(now_ns, stale_after_ns)) {
    running = std::max(0, e.running.load(std::memory_order_relaxed));
    waiting = std::max(0, e.waiting.load(std::memory_order_relaxed)) +
              std::max(0, state.sent_since_scrape.load(std::memory_order_relaxed));
    kv =
        std::clamp(static_cast<double>(e.kv_utilisation.load(std::memory_order_relaxed)), 0.0, 1.0);
  }
  f.ttft = {1.0, uncached, prefill, running, waiting, decode, uncached * running};
  f.tpot = {1.0, running, decode, prefill, kv};
  return f;
}

namespace {

template <size_t D>
double Dot(const std::array<std::atomic<double>, D>& c, const std::array<double, D>& x) {
  double y = 0;
  for (size_t i = 0; i < D; ++i) y += c[i].load(std::memory_order_relaxed) * x[i];
  return y;
}

}  // namespace

// A linear fit can extrapolate below zero; no engine answers faster than these.
constexpr double kMinTtft = 1e-4;
constexpr double kMinTpot = 1e-5;

double LatencyModel::PredictTtft(const LatencyFeatures& f) const {
  return std::max(kMinTtft, Dot(ttft_coef_, f.ttft));
}

double LatencyModel::PredictTpot(const LatencyFeatures& f) const {
  return std::max(kMinTpot, Dot(tpot_coef_, f.tpot));
}

template <size_t D>
bool LatencyModel::Update(Fit<D>& fit, const std::array<double, D>& x, double y,
                          std::array<std::atomic<double>, D>& out) {
  constexpr int n = static_cast<int>(D);
  // Weighted by 1/y²: the fit minimises relative, not absolute, error, so short latencies
  // count as much as long ones.
  const double w = 1.0 / (y * y);
  for (int i = 0; i < n; ++i) {
    fit.b[i] = kForget * fit.b[i] + w * x[i] * y;
    for (int j = 0; j <= i; ++j) fit.a[i][j] = kForget * fit.a[i][j] + w * x[i] * x[j];
  }
  ++fit.n;
  // Cholesky of (A + ridge·I), lower triangle; a feature that never varied (a column of zeros)
  // keeps a zero coefficient through the ridge.
  double l[D][D] = {};
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j <= i; ++j) {
      double s = fit.a[i][j] + (i == j ? kRidge : 0.0);
      for (int k = 0; k < j; ++k) s -= l[i][k] * l[j][k];
      if (i == j) {
        if (!(s > 0)) return false;
        l[i][i] = std::sqrt(s);
      } else {
        l[i][j] = s / l[j][j];
      }
    }
  }
  double z[D];
  for (int i = 0; i < n; ++i) {
    double s = fit.b[i];
    for (int k = 0; k < i; ++k) s -= l[i][k] * z[k];
    z[i] = s / l[i][i];
  }
  double theta[D];
  for (int i = n - 1; i >= 0; --i) {
    double s = z[i];
    for (int k = i + 1; k < n; ++k) s -= l[k][i] * theta[k];
    theta[i] = s / l[i][i];
  }
  for (int i = 0; i < n; ++i) {
    if (!std::isfinite(theta[i])) return false;
  }
  for (int i = 0; i < n; ++i) out[i].store(theta[i], std::memory_order_relaxed);
  return true;
}

bool LatencyModel::Learn(const LatencyFeatures& f, double ttft_s, double tpot_s) {
  if (!(std::isfinite(ttft_s) && ttft_s > 0)) return false;
  for (double v : f.ttft) {
    if (!std::isfinite(v)) return false;
  }
  for (double v : f.tpot) {
    if (!std::isfinite(v)) return false;
  }
  if (busy_.exchange(true, std::memory_order_acquire)) return false;
  const bool ttft = Update(ttft_fit_, f.ttft, ttft_s, ttft_coef_);
  const bool tpot =
      std::isfinite(tpot_s) && tpot_s > 0 && Update(tpot_fit_, f.tpot, tpot_s, tpot_coef_);
  busy_.store(false, std::memory_order_release);
  if (ttft) samples_.fetch_add(1, std::memory_order_release);
  if (tpot) tpot_samples_.fetch_add(1, std::memory_order_release);
  return ttft;
}

}  // namespace tokenway
