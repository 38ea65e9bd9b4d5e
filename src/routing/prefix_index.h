// PrefixIndex: an approximate map of which endpoint of a pool holds which prompt blocks in its
// KV cache, for prefix-cache affinity.
//
// Hashing: the flattened prompt (InspectedRequest::prompt_text, common/prompt_text.h) is cut into
// fixed blocks of `block_bytes` bytes (default 64 bytes, about 16 tokens of English text); only
// full blocks count. Block i's hash is XXH3_64bits_withSeed(block i, seed = hash of block i-1),
// block 0 seeded with XXH3_64bits(model name): a block hash therefore identifies the whole prefix
// up to and including it, for that model, like an engine's chained block hashes. At most
// `max_blocks` blocks are hashed per request (bounding work on 100k-token prompts).
//
// Index: per endpoint a bounded LRU set of block hashes (`capacity` entries). The scheduler
// picker calls Insert() for the endpoint a request is routed to (a guess that the engine will
// cache those blocks); a later KV-events feed can call Insert()/Evict() with exact engine events
// instead. Score = leading blocks found / blocks of the request.
//
// Concurrency: one small std::mutex per endpoint, held only while probing or updating that
// endpoint's set (microseconds: a few hash lookups per block). Workers picking for different
// endpoints never contend, and there is no pool-wide lock; an uncontended std::mutex costs one
// atomic exchange, and unlike a spinlock it does not burn a shared core if a holder is
// descheduled. Called on worker threads (Match, Insert) and, later, a KV-events thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tokenway {

struct PrefixIndexConfig {
  uint32_t block_bytes = 64;
  uint32_t capacity = 65536;   // block hashes remembered per endpoint
  uint32_t max_blocks = 8192;  // blocks hashed per request (8192 × 64 B = 512 KiB of prompt)
};

class PrefixIndex {
 public:
  PrefixIndex(PrefixIndexConfig config, uint32_t endpoints);
  // An index for a changed endpoint list that keeps what `previous` learned: endpoint i shares
  // previous's set `carried[i]` (the same object, so requests still on the old snapshot keep
  // teaching it), or starts empty when carried[i] < 0. The configuration must be the same.
  PrefixIndex(const PrefixIndex& previous, std::span<const int32_t> carried);

  // Appends the chained block hashes of `text` for `model` to `out` (cleared first).
  static void HashBlocks(std::string_view model, std::string_view text, uint32_t block_bytes,
                         uint32_t max_blocks, std::vector<uint64_t>& out);

  // Leading blocks of `blocks` that `endpoint` holds.
  uint32_t Match(uint32_t endpoint, std::span<const uint64_t> blocks) const;
  // Records that `endpoint` holds `blocks` (most recently used); evicts the least recently used
  // hashes beyond capacity.
  void Insert(uint32_t endpoint, std::span<const uint64_t> blocks);
  // Forgets `blocks` on `endpoint` (engine eviction events).
  void Evict(uint32_t endpoint, std::span<const uint64_t> blocks);
  uint32_t Size(uint32_t endpoint) const;
  const PrefixIndexConfig& config() const { return config_; }
  uint32_t endpoints() const { return static_cast<uint32_t>(sets_.size()); }

 private:
  // LRU over a fixed node array: a doubly linked list by index plus a hash → node map.
  struct LruSet {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, uint32_t> where;
    std::vector<uint64_t> hash;
    std::vector<uint32_t> prev, next;
    uint32_t head = kNone, tail = kNone;  // head = most recent
    std::vector<uint32_t> free_nodes;
  };
  static constexpr uint32_t kNone = UINT32_MAX;
  void Unlink(LruSet& s, uint32_t node) const;
  void PushFront(LruSet& s, uint32_t node) const;

  PrefixIndexConfig config_;
  static std::shared_ptr<LruSet> NewSet(uint32_t capacity);
  std::vector<std::shared_ptr<LruSet>> sets_;
};

}  // namespace tokenway
