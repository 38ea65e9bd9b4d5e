#include "control/rollout_versions.h"

#include "common/log.h"

namespace tokenway {

namespace {

std::vector<uint64_t> Buckets(const HistogramTotals& h, size_t bounds) {
  // One count per finite bound, then +Inf.
  return std::vector<uint64_t>(h.buckets.begin(), h.buckets.begin() + bounds + 1);
}

}  // namespace

VersionsRolloutBackend::VersionsRolloutBackend(
    VersionWeights& weights, std::function<std::shared_ptr<const Runtime>()> runtime,
    std::vector<WorkerMetrics*> workers)
    : weights_(weights), runtime_(std::move(runtime)), workers_(std::move(workers)) {}

bool VersionsRolloutBackend::ReadFigures(std::string_view model, std::string_view version,
                                         VersionFigures& out) {
  std::shared_ptr<const Runtime> rt = runtime_();
  const ModelRoute* route = rt->FindModel(model);
  if (!route) return false;
  const RouteVersion* v = route->FindVersion(version);
  if (!v) return false;
  const VersionTotals t = SumVersion(std::span<WorkerMetrics* const>(workers_), v->metrics_slot);
  out.requests = t.requests;
  out.errors = t.errors;
  out.output_tokens = t.output_tokens;
  out.ttft_bounds = kGenAiTtftBuckets;
  out.ttft = Buckets(t.time_to_first_token, kGenAiTtftBuckets.size());
  out.tpot_bounds = kGenAiTpotBuckets;
  out.tpot = Buckets(t.time_per_output_token, kGenAiTpotBuckets.size());
  return true;
}

void VersionsRolloutBackend::SetWeight(std::string_view model, std::string_view version,
                                       uint32_t percent) {
  const std::string alias(model), name(version);
  const auto current = weights_.Weight(alias, name);
  if (current && *current == static_cast<double>(percent)) return;
  if (!weights_.Set(alias, name, static_cast<double>(percent))) {
    LogWarn("rollout " + alias + ": version '" + name +
            "' is not configured; its weight cannot be set");
  }
}

void VersionsRolloutBackend::ResetWeight(std::string_view model, std::string_view version) {
  weights_.Reset(std::string(model), std::string(version));
}

}  // namespace tokenway
