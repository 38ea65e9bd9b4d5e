// LoRA adapter slots of one simulated engine: at most max_loras adapters are resident on the
// GPU at once. A request for an adapter that is not resident waits until a slot is free or holds
// an adapter with no running requests (which is then swapped out); loading costs time.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway::sim {

class LoraSlots {
 public:
  explicit LoraSlots(int max_loras) : max_loras_(max_loras) {}

  int max_loras() const { return max_loras_; }
  bool IsResident(std::string_view adapter) const;
  // True when Acquire(adapter) would succeed now.
  bool CanAcquire(std::string_view adapter) const;
  // Adds a running request for `adapter`, loading it into a slot (swapping out an idle adapter
  // when all slots are taken). Returns whether a load happened; nullopt when no slot is
  // available (the caller keeps the request waiting).
  std::optional<bool> Acquire(std::string_view adapter);
  // Removes a running request for `adapter`; the adapter stays resident, idle.
  void Release(std::string_view adapter);
  // Removes `adapter` from its slot if it has no running requests (unload API).
  void Evict(std::string_view adapter);
  // Adapters with at least one running request, in slot order.
  std::vector<std::string> RunningAdapters() const;
  uint64_t loads() const { return loads_; }

 private:
  struct Slot {
    std::string adapter;
    int running = 0;
    uint64_t last_used = 0;
  };
  int max_loras_;
  std::vector<Slot> slots_;
  uint64_t use_clock_ = 0;
  uint64_t loads_ = 0;
};

}  // namespace tokenway::sim
