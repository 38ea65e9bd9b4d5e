// SemanticIndex: the semantic response cache's vectors for one tenant and served model — each a
// prompt's lexical vector (semantic/text_vector.h, folded to a small dense dimension and
// L2-normalised) with the exact key of the stored answer it leads to and a hash of the request's
// other parameters, which must match too (a similar prompt asked with other settings is not the
// same question).
//
// Search is an exact scan while the index is small and an approximate one (HNSW, hnswlib from
// Debian's libhnswlib-dev, inner product) once it holds `exact_below` vectors or more; every
// vector goes into both from the start, so the switch costs nothing. Like the in-process store,
// the index is behind one mutex that workers only try-lock: busy is a miss or a skipped add.
// The admin thread's purge clears it. An entry the store evicted leaves its vector behind; the
// lookup then finds no answer under the key, which is a miss. The index stops growing at
// `max_entries` (counted).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "cache/cache_key.h"

namespace hnswlib {
template <typename T>
class HierarchicalNSW;
class InnerProductSpace;
}  // namespace hnswlib

namespace tokenway {

class SemanticIndex {
 public:
  SemanticIndex(uint32_t dimension, uint32_t exact_below, uint32_t max_entries);
  ~SemanticIndex();
  SemanticIndex(const SemanticIndex&) = delete;
  SemanticIndex& operator=(const SemanticIndex&) = delete;

  enum class Result : uint8_t { kFound, kNone, kBusy };
  // Worker: the most similar vector with the same `params` and a similarity of at least
  // `threshold`; its key and similarity.
  Result Find(std::span<const float> query, uint64_t params, float threshold, CacheKey& key,
              float& similarity);
  enum class Add : uint8_t { kAdded, kFull, kBusy };
  // Worker: files `vector` (dimension() floats, normalised) for `key`.
  Add Insert(std::span<const float> vector, uint64_t params, const CacheKey& key);
  // Admin thread: forgets every vector (waits for the lock).
  size_t Clear();

  uint32_t dimension() const { return dimension_; }
  size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  // Under the lock.
  Result ScanExact(std::span<const float> query, uint64_t params, float threshold, CacheKey& key,
                   float& similarity) const;
  Result SearchApproximate(std::span<const float> query, uint64_t params, float threshold,
                           CacheKey& key, float& similarity) const;

  const uint32_t dimension_;
  const uint32_t exact_below_;
  const uint32_t max_entries_;
  std::mutex mu_;
  std::vector<float> vectors_;  // size() × dimension_
  std::vector<CacheKey> keys_;
  std::vector<uint64_t> params_;
  std::unique_ptr<hnswlib::InnerProductSpace> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph_;
  size_t graph_capacity_ = 0;
  std::atomic<size_t> size_{0};
};

}  // namespace tokenway
