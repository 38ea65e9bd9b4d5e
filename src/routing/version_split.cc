#include "routing/version_split.h"

#include <xxhash.h>
#include <cmath>
#include <limits>

namespace tokenway {

std::shared_ptr<VersionWeight> VersionWeights::Cell(const std::string& alias,
                                                    const std::string& version, double configured) {
  std::lock_guard lock(mu_);
  auto& cell = cells_[{alias, version}];
  if (!cell) cell = std::make_shared<VersionWeight>();
  cell->configured.store(configured, std::memory_order_relaxed);
  if (!cell->overridden.load(std::memory_order_relaxed)) {
    cell->weight.store(configured, std::memory_order_relaxed);
  }
  return cell;
}

bool VersionWeights::Set(const std::string& alias, const std::string& version, double weight) {
  if (!(weight >= 0) || !std::isfinite(weight)) return false;
  std::lock_guard lock(mu_);
  auto it = cells_.find({alias, version});
  if (it == cells_.end()) return false;
  it->second->overridden.store(true, std::memory_order_relaxed);
  it->second->weight.store(weight, std::memory_order_relaxed);
  return true;
}

bool VersionWeights::Reset(const std::string& alias, const std::string& version) {
  std::lock_guard lock(mu_);
  auto it = cells_.find({alias, version});
  if (it == cells_.end()) return false;
  VersionWeight& cell = *it->second;
  cell.overridden.store(false, std::memory_order_relaxed);
  cell.weight.store(cell.configured.load(std::memory_order_relaxed), std::memory_order_relaxed);
  return true;
}

std::optional<double> VersionWeights::Weight(const std::string& alias,
                                             const std::string& version) const {
  std::lock_guard lock(mu_);
  auto it = cells_.find({alias, version});
  if (it == cells_.end()) return std::nullopt;
  return it->second->weight.load(std::memory_order_relaxed);
}

std::vector<VersionWeights::Entry> VersionWeights::All() const {
  std::lock_guard lock(mu_);
  std::vector<Entry> out;
  out.reserve(cells_.size());
  for (const auto& [key, cell] : cells_) {
    out.push_back({key.first, key.second, cell->weight.load(std::memory_order_relaxed),
                   cell->configured.load(std::memory_order_relaxed),
                   cell->overridden.load(std::memory_order_relaxed)});
  }
  return out;
}

uint64_t StickyKeyHash(std::string_view key) {
  return XXH3_64bits(key.data(), key.size());
}

uint64_t VersionSeed(std::string_view version) {
  return XXH3_64bits_withSeed(version.data(), version.size(), 0x76657273696f6e73ULL);
}

namespace {

// splitmix64's finaliser: a well-mixed 64-bit value from key hash and seed.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

int PickVersion(uint64_t key_hash, std::span<const double> weights,
                std::span<const uint64_t> seeds) {
  int best = -1;
  double best_score = std::numeric_limits<double>::infinity();
  const size_t n = std::min(weights.size(), seeds.size());
  for (size_t i = 0; i < n; ++i) {
    const double w = weights[i];
    if (!(w > 0) || !std::isfinite(w)) continue;
    // u in (0, 1]: 53 bits of the mixed hash.
    const double u = (static_cast<double>(Mix(key_hash ^ seeds[i]) >> 11) + 1.0) * 0x1.0p-53;
    const double score = -std::log(u) / w;
    if (best < 0 || score < best_score) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  return best;
}

bool InShare(uint64_t id_hash, double percent) {
  if (percent <= 0) return false;
  if (percent >= 100) return true;
  const double u = static_cast<double>(Mix(id_hash ^ 0x73686164ULL) >> 11) * 0x1.0p-53;
  return u * 100.0 < percent;
}

}  // namespace tokenway
