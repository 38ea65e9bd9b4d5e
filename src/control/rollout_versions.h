// VersionsRolloutBackend: the rollout controller's view of model versions — each version's
// figures summed over the workers' WorkerMetrics, and its run-time split weight in the
// process-wide VersionWeights (routing/version_split.h).
//
// Created by the gateway at start; called by the RolloutController on the control thread only.
// It reads the current Runtime through `runtime` to find a version's metric slot, so a version
// that a reload removed reads as unknown.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "control/runtime.h"
#include "rollout/rollout_controller.h"
#include "telemetry/metrics.h"

namespace tokenway {

class VersionsRolloutBackend : public RolloutBackend {
 public:
  VersionsRolloutBackend(VersionWeights& weights,
                         std::function<std::shared_ptr<const Runtime>()> runtime,
                         std::vector<WorkerMetrics*> workers);

  bool ReadFigures(std::string_view model, std::string_view version, VersionFigures& out) override;
  void SetWeight(std::string_view model, std::string_view version, uint32_t percent) override;
  void ResetWeight(std::string_view model, std::string_view version) override;

 private:
  VersionWeights& weights_;
  std::function<std::shared_ptr<const Runtime>()> runtime_;
  std::vector<WorkerMetrics*> workers_;
};

}  // namespace tokenway
