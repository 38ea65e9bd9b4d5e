// ConsistentPrefixScorer (`consistent-prefix`): prefix affinity that every gateway replica
// computes the same way, with bounded load, and without a shared store.
//
// The request's affinity key is the chained hash of its leading prompt blocks (the hash of block
// min(blocks, affinity.blocks) − 1, which identifies the whole prefix up to it for that model;
// routing/prefix_index.h). The endpoints are ranked for that key by rendezvous hashing
// (highest Mix(key ^ XXH3(endpoint URL)) first), so every replica with the same endpoints ranks
// them alike. The first endpoint in that order whose load is under the bound scores 1, every
// other 0 (consistent hashing with bounded loads): a prefix group stays on one endpoint until
// that endpoint carries more than ceil((1 + epsilon) × (total load + 1) / candidates), then
// spills to the next endpoint of its order, which every replica also picks. Load is what the
// engine reports (waiting + running, plus the requests this replica sent since that scrape) while
// the engine's signals are fresh, else this replica's in-flight count; the engine's counts are
// the same for every replica, so replicas also agree on when to spill. Requests with no full
// prompt block score 0 everywhere.
//
// Called by the SchedulerPicker on worker threads, concurrently. URL hashes are computed once
// per endpoint on first use and kept in a table indexed by the pool's endpoint index (one
// scorer per pool and Runtime, so an index names one URL for the scorer's life); no lock, no
// allocation after construction.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "routing/scheduler_config.h"
#include "routing/scorer.h"

namespace tokenway {

class ConsistentPrefixScorer final : public Scorer {
 public:
  // `endpoints`: the pool's size; candidate indices are below it.
  ConsistentPrefixScorer(const AffinityConfig& config, uint32_t endpoints);

  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  // The first kNominated endpoints of the key's rendezvous order: the bounded-load choice is
  // among them unless all of them are over the bound.
  void Nominate(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                Nominations& out) const override;
  std::string_view name() const override { return "consistent-prefix"; }

  static constexpr uint32_t kNominated = 4;

 private:
  // The affinity key, or 0 when the request has no full block.
  uint64_t Key(const ScoringContext& ctx) const;
  // Rendezvous weight of `c` for `key`.
  uint64_t Weight(uint64_t key, const PickCandidate& c) const {
    uint64_t h = c.index < endpoints_ ? url_hash_[c.index].load(std::memory_order_relaxed) : 0;
    if (h == 0) [[unlikely]]
      h = UrlHash(c);
    return Mix(key ^ h);
  }
  // Computes (and for pool endpoints keeps) the hash of c's URL.
  uint64_t UrlHash(const PickCandidate& c) const;
  static uint64_t Mix(uint64_t x) {  // splitmix64 finaliser: a well-spread weight per pair
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }

  AffinityConfig config_;
  uint32_t endpoints_;
  std::unique_ptr<std::atomic<uint64_t>[]> url_hash_;  // by endpoint index; 0: not yet computed
};

}  // namespace tokenway
