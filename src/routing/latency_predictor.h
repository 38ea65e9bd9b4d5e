// LatencyPredictor: online models, one per endpoint, of the time to first token (TTFT) and the
// time per output token (TPOT) a request would see there, learned from what the gateway observes
// — the part of the prompt the endpoint has not cached, the prefill work the gateway has sent it
// and not yet seen start answering, its decode load, and its scraped queue and KV cache when
// they are fresh. The `predicted-latency` scorer reads them at every pick; the request path
// (gateway/phases/settle.cc) and the fleet simulator teach them with each finished stream.
//
// Each model is exponentially weighted ridge regression over a handful of features: the
// sufficient statistics (XᵀWX, XᵀWy) decay by `forget` per sample and the coefficients are
// re-solved (Cholesky, d ≤ 7) after each one. Learning takes a per-model try-lock and drops the
// sample when another worker holds it (never waits); predictions read the published
// coefficients, relaxed atomics, without a lock — a reader may mix two consecutive fits, which is
// harmless. A prediction is a dot product per model: tens of nanoseconds.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "tokenway/picker.h"

namespace tokenway {

struct EndpointState;

// What the gateway sees of an endpoint when it considers a request for it. Computed the same way
// at pick time (to predict) and at dispatch (to learn), before the request's own counters are
// added.
struct LatencyFeatures {
  static constexpr size_t kTtft = 7;
  static constexpr size_t kTpot = 5;
  // 1, uncached prompt tokens (k), prefill tokens sent and not yet answered (k), running
  // sequences, waiting sequences, decode tokens outstanding (k), uncached k × running.
  std::array<double, kTtft> ttft{};
  // 1, running sequences, decode tokens outstanding (k), prefill tokens outstanding (k), KV use.
  std::array<double, kTpot> tpot{};
};

// `prompt_tokens`: the request's estimated prompt tokens; `cached_fraction`: the part the
// gateway's prefix index believes the endpoint holds (0..1). Engine signals count only when
// fresh at `now_ns`; otherwise the gateway's own in-flight count stands in for the running batch.
LatencyFeatures ComputeLatencyFeatures(const EndpointState& state, double prompt_tokens,
                                       double cached_fraction, int64_t now_ns,
                                       int64_t stale_after_ns);

// One endpoint's models. Lives in EndpointState (survives reloads).
class LatencyModel {
 public:
  static constexpr double kForget = 0.995;  // per-sample decay: an effective window of ~200
  static constexpr double kRidge = 1e-3;

  // Predictions in seconds (at least 0.1 ms and 0.01 ms: a linear fit can extrapolate below
  // zero). Meaningful once Trained() (TTFT) and TpotTrained().
  double PredictTtft(const LatencyFeatures& f) const;
  double PredictTpot(const LatencyFeatures& f) const;
  // Samples learned (acquire: a reader that sees the count sees the coefficients it counts).
  uint64_t samples() const { return samples_.load(std::memory_order_acquire); }
  uint64_t tpot_samples() const { return tpot_samples_.load(std::memory_order_acquire); }
  bool Trained(uint64_t min_samples) const { return samples() >= min_samples; }
  bool TpotTrained(uint64_t min_samples) const { return tpot_samples() >= min_samples; }

  // One finished request: its features at dispatch, its TTFT and (when it produced two tokens or
  // more, else < 0) its TPOT, in seconds. Returns false when the sample was dropped (another
  // thread was learning, or the values were not finite and positive).
  bool Learn(const LatencyFeatures& f, double ttft_s, double tpot_s);

 private:
  template <size_t D>
  struct Fit {
    double a[D][D] = {};  // decayed XᵀX
    double b[D] = {};     // decayed Xᵀy
    uint64_t n = 0;
  };
  template <size_t D>
  static bool Update(Fit<D>& fit, const std::array<double, D>& x, double y,
                     std::array<std::atomic<double>, D>& out);

  std::atomic<bool> busy_{false};
  std::atomic<uint64_t> samples_{0};
  std::atomic<uint64_t> tpot_samples_{0};
  std::array<std::atomic<double>, LatencyFeatures::kTtft> ttft_coef_{};
  std::array<std::atomic<double>, LatencyFeatures::kTpot> tpot_coef_{};
  Fit<LatencyFeatures::kTtft> ttft_fit_;  // guarded by busy_
  Fit<LatencyFeatures::kTpot> tpot_fit_;
};

}  // namespace tokenway
