#include "sim/cached_block_table.h"

#include <utility>

namespace tokenway::sim {

int32_t CachedBlockTable::Find(uint64_t hash, int32_t missing) const {
  if (size_ == 0) return missing;
  for (std::size_t i = Home(hash);; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.block == kEmpty) return missing;
    if (slot.hash == hash) return slot.block;
  }
}

void CachedBlockTable::Prefetch(uint64_t hash) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[Home(hash)]);
}

bool CachedBlockTable::Insert(uint64_t hash, int32_t block) {
  if ((size_ + 1) * 2 > slots_.size()) Grow();
  std::size_t i = Home(hash);
  for (; slots_[i].block != kEmpty; i = (i + 1) & mask_) {
    if (slots_[i].hash == hash) return false;
  }
  slots_[i] = Slot{hash, block};
  ++size_;
  return true;
}

void CachedBlockTable::Erase(uint64_t hash) {
  if (size_ == 0) return;
  std::size_t hole = Home(hash);
  for (;; hole = (hole + 1) & mask_) {
    if (slots_[hole].block == kEmpty) return;
    if (slots_[hole].hash == hash) break;
  }
  // Backward shift: move every later entry of the run whose home is not after the hole into it.
  for (std::size_t j = (hole + 1) & mask_; slots_[j].block != kEmpty; j = (j + 1) & mask_) {
    const std::size_t home = Home(slots_[j].hash);
    // The entry at j may move to the hole when its home is cyclically outside (hole, j].
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = Slot{};
  --size_;
}

void CachedBlockTable::Grow() {
  const std::size_t capacity = slots_.empty() ? 16 : slots_.size() * 2;
  std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(capacity));
  mask_ = capacity - 1;
  shift_ = 64 - __builtin_ctzll(capacity);
  size_ = 0;
  for (const Slot& slot : old) {
    if (slot.block == kEmpty) continue;
    std::size_t i = Home(slot.hash);
    while (slots_[i].block != kEmpty) i = (i + 1) & mask_;
    slots_[i] = slot;
    ++size_;
  }
}

}  // namespace tokenway::sim
