// RoutingPolicy: how a simulated gateway replica chooses an engine for one request — the seam
// where the simulator's policies plug in.
//
// PickerPolicy runs a pool's real Picker (a simple policy or the SchedulerPicker with its
// filters, scorers and prefix index) over the replica's own EndpointState view, exactly as the
// gateway's route phase does, with the virtual clock passed in PickContext::now_ns. Policies that
// exist only in simulation (OraclePolicy, which reads the engines' true state) implement the same
// interface. Called by FleetSimulator on its single thread, once per request at dispatch time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/request_inspector.h"
#include "sim/engine.h"
#include "tokenway/picker.h"

namespace tokenway::fleetsim {

// One engine of the simulated fleet and its step in progress.
struct SimulatedEngine {
  std::unique_ptr<sim::Engine> engine;
  double speed = 1;            // engine seconds per virtual second
  int64_t step_end_ns = -1;    // virtual end of the step in progress; -1: idle
  int64_t max_waiting = 4096;  // waiting requests beyond which a request is answered 503
};

// What a policy may know about the request being routed.
struct PolicyRequest {
  const InspectedRequest* inspected =
      nullptr;  // model and flattened prompt (what the gateway sees)
  const std::vector<uint32_t>* tokens = nullptr;  // the prompt's token ids (what the engine sees)
  std::string_view adapter;                       // LoRA adapter, empty for the base model
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  RequestSlo slo;                // the pool's objective (requests carry no headers here)
  PickReport* report = nullptr;  // where a picker reports its decision (optional)
};

class RoutingPolicy {
 public:
  virtual ~RoutingPolicy() = default;
  // Chooses one of `candidates` (never empty; the eligible endpoints of the pool, index =
  // position in the pool) at virtual time `now_ns`; returns the chosen candidate's pool index.
  // `random` is a fresh draw from the replica's seeded generator. kRefused: the request is refused
  // (a sheddable request no endpoint is predicted to serve within its objective).
  static constexpr uint32_t kRefused = UINT32_MAX;
  virtual uint32_t Choose(const PolicyRequest& request, std::span<const PickCandidate> candidates,
                          uint64_t random, int64_t now_ns) = 0;
  virtual std::string_view name() const = 0;
};

// The gateway's own picker, as the route phase calls it.
class PickerPolicy final : public RoutingPolicy {
 public:
  explicit PickerPolicy(Picker& picker) : picker_(picker) {}
  uint32_t Choose(const PolicyRequest& request, std::span<const PickCandidate> candidates,
                  uint64_t random, int64_t now_ns) override;
  std::string_view name() const override { return picker_.name(); }

 private:
  Picker& picker_;
  FallbackList fallbacks_;
};

}  // namespace tokenway::fleetsim
