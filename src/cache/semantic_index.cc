#include "cache/semantic_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <exception>
#include <queue>

namespace tokenway {

namespace {

constexpr size_t kGraphM = 16;
constexpr size_t kEfConstruction = 64;
constexpr size_t kEfSearch = 32;
constexpr size_t kInitialCapacity = 1024;
// Approximate search returns this many candidates; the first with matching parameters wins.
constexpr size_t kCandidates = 8;

// Eight independent partial sums: without them each addition waits for the previous one
// (floating-point addition is not reassociated without -ffast-math) and the scan runs at one
// multiply-add per four cycles instead of vector speed.
float DotDense(const float* a, const float* b, size_t n) {
  float acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (float x : acc) s += x;
  return s;
}

}  // namespace

SemanticIndex::SemanticIndex(uint32_t dimension, uint32_t exact_below, uint32_t max_entries)
    : dimension_(dimension), exact_below_(exact_below), max_entries_(max_entries) {}

SemanticIndex::~SemanticIndex() = default;

SemanticIndex::Result SemanticIndex::ScanExact(std::span<const float> query, uint64_t params,
                                               float threshold, CacheKey& key,
                                               float& similarity) const {
  float best = -2;
  size_t best_i = 0;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (params_[i] != params) continue;
    const float s = DotDense(query.data(), vectors_.data() + i * dimension_, dimension_);
    if (s > best) {
      best = s;
      best_i = i;
    }
  }
  if (best < threshold) return Result::kNone;
  key = keys_[best_i];
  similarity = best;
  return Result::kFound;
}

SemanticIndex::Result SemanticIndex::SearchApproximate(std::span<const float> query,
                                                       uint64_t params, float threshold,
                                                       CacheKey& key, float& similarity) const {
  std::priority_queue<std::pair<float, hnswlib::labeltype>> found;
  try {
    found = graph_->searchKnn(query.data(), kCandidates);
  } catch (const std::exception&) {
    return Result::kNone;  // hnswlib reports trouble by throwing; nothing crosses this boundary
  }
  // A max-heap by distance (1 - inner product): pop to the nearest.
  std::vector<std::pair<float, hnswlib::labeltype>> ordered;
  while (!found.empty()) {
    ordered.push_back(found.top());
    found.pop();
  }
  for (auto it = ordered.rbegin(); it != ordered.rend(); ++it) {
    const size_t i = static_cast<size_t>(it->second);
    if (params_[i] != params) continue;
    const float s = 1.0f - it->first;
    if (s < threshold) return Result::kNone;
    key = keys_[i];
    similarity = s;
    return Result::kFound;
  }
  return Result::kNone;
}

SemanticIndex::Result SemanticIndex::Find(std::span<const float> query, uint64_t params,
                                          float threshold, CacheKey& key, float& similarity) {
  if (query.size() != dimension_) return Result::kNone;
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return Result::kBusy;
  if (keys_.empty()) return Result::kNone;
  if (keys_.size() < exact_below_ || !graph_) {
    return ScanExact(query, params, threshold, key, similarity);
  }
  return SearchApproximate(query, params, threshold, key, similarity);
}

SemanticIndex::Add SemanticIndex::Insert(std::span<const float> vector, uint64_t params,
                                         const CacheKey& key) {
  if (vector.size() != dimension_) return Add::kFull;
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return Add::kBusy;
  if (keys_.size() >= max_entries_) return Add::kFull;
  const size_t label = keys_.size();
  vectors_.insert(vectors_.end(), vector.begin(), vector.end());
  keys_.push_back(key);
  params_.push_back(params);
  try {
    if (!graph_) {
      space_ = std::make_unique<hnswlib::InnerProductSpace>(dimension_);
      graph_capacity_ = std::min<size_t>(kInitialCapacity, max_entries_);
      graph_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), graph_capacity_,
                                                                 kGraphM, kEfConstruction);
      graph_->setEf(kEfSearch);
    }
    if (label >= graph_capacity_) {
      graph_capacity_ = std::min<size_t>(graph_capacity_ * 2, max_entries_);
      graph_->resizeIndex(graph_capacity_);
    }
    graph_->addPoint(vectors_.data() + label * dimension_, label);
  } catch (const std::exception&) {
    // Out of memory in the graph: exact scans keep working over the vectors.
    graph_.reset();
  }
  size_.store(keys_.size(), std::memory_order_relaxed);
  return Add::kAdded;
}

size_t SemanticIndex::Clear() {
  std::lock_guard lock(mu_);
  const size_t n = keys_.size();
  vectors_.clear();
  keys_.clear();
  params_.clear();
  graph_.reset();
  space_.reset();
  graph_capacity_ = 0;
  size_.store(0, std::memory_order_relaxed);
  return n;
}

}  // namespace tokenway
