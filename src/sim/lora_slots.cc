#include "sim/lora_slots.h"

namespace tokenway::sim {

bool LoraSlots::IsResident(std::string_view adapter) const {
  for (const auto& slot : slots_) {
    if (slot.adapter == adapter) return true;
  }
  return false;
}

bool LoraSlots::CanAcquire(std::string_view adapter) const {
  if (IsResident(adapter) || static_cast<int>(slots_.size()) < max_loras_) return true;
  for (const auto& slot : slots_) {
    if (slot.running == 0) return true;
  }
  return false;
}

std::optional<bool> LoraSlots::Acquire(std::string_view adapter) {
  ++use_clock_;
  for (auto& slot : slots_) {
    if (slot.adapter == adapter) {
      ++slot.running;
      slot.last_used = use_clock_;
      return false;
    }
  }
  if (static_cast<int>(slots_.size()) < max_loras_) {
    slots_.push_back(Slot{std::string(adapter), 1, use_clock_});
    ++loads_;
    return true;
  }
  Slot* victim = nullptr;
  for (auto& slot : slots_) {
    if (slot.running == 0 && (victim == nullptr || slot.last_used < victim->last_used)) {
      victim = &slot;
    }
  }
  if (victim == nullptr) return std::nullopt;
  *victim = Slot{std::string(adapter), 1, use_clock_};
  ++loads_;
  return true;
}

void LoraSlots::Release(std::string_view adapter) {
  for (auto& slot : slots_) {
    if (slot.adapter == adapter && slot.running > 0) {
      --slot.running;
      return;
    }
  }
}

void LoraSlots::Evict(std::string_view adapter) {
  for (auto it = slots_.begin(); it != slots_.end(); ++it) {
    if (it->adapter == adapter && it->running == 0) {
      slots_.erase(it);
      return;
    }
  }
}

std::vector<std::string> LoraSlots::RunningAdapters() const {
  std::vector<std::string> names;
  for (const auto& slot : slots_) {
    if (slot.running > 0) names.push_back(slot.adapter);
  }
  return names;
}

}  // namespace tokenway::sim
