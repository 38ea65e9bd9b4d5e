// PrefixIndex: an approximate map of which endpoints of a pool hold which prompt prefixes in their
// KV caches, for prefix-cache affinity. One index per pool, shared by every worker.
//
// Hashing: the flattened prompt (InspectedRequest::prompt_text, common/prompt_text.h) is cut into
// blocks whose size depends only on their position: the first kFirstTierBlocks blocks are
// `block_bytes` long (default 64 bytes, about 16 tokens of English text), then tiers of
// kTierBlocks blocks each double the size (128, 256, … bytes, at most kMaxBlockBytes), so past
// the first tier a block is between 1/31 and 1/16 of the prefix before it: a match is precise
// to a few percent of its length. A 432 KiB prompt is 155 blocks instead of 6,912, hashed at
// nearly xxh3's streaming speed, and two prompts that share a prefix still share the hash of
// every block that ends inside it. Only full blocks count. Block
// i's hash is XXH3_64bits_withSeed(block i, seed = hash of block i-1), block 0 seeded with
// XXH3_64bits(model name): a block hash identifies the whole prefix up to and including it, for
// that model, like an engine's chained block hashes. At most `max_blocks` blocks are hashed.
//
// Index: a fixed table of (block hash, endpoint) entries, set-associative: a block's entries
// live in the 8-entry bucket (one cache line) its hash selects, so the endpoints holding a block
// are found with one cache-line read. Each entry is one 64-bit word: 28 bits of tag from the
// hash, 20 bits of age (a 16.8 ms clock tick), 16 bits of endpoint id; 0 is an empty slot. An
// insert into a full bucket replaces its oldest entry (approximate LRU, like GIE's approximate
// prefix cache). The table holds `capacity` × endpoints entries (at most kMaxEntries), so
// `capacity` is the blocks remembered per endpoint on average; at most 8 endpoints are known
// per block. Score = bytes of the matched leading blocks / bytes of the request's blocks.
//
// Concurrency: no lock and no allocation after construction. Entries are read and written with
// relaxed atomic loads and compare-exchanges on their own words; a lost race at worst drops or
// duplicates one entry, which only makes the estimate a little less precise. The picker calls
// MatchAll and Insert on worker threads; a later KV-events feed can call Insert/Evict with exact
// engine events from its own thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace tokenway {

struct PrefixIndexConfig {
  uint32_t block_bytes = 64;   // first-tier block size; later tiers double it
  uint32_t capacity = 65536;   // (block, endpoint) entries per endpoint of the pool
  uint32_t max_blocks = 8192;  // blocks hashed per request
};

// The endpoints holding a request's leading blocks: every endpoint that holds block 0, with the
// number of leading blocks it holds. Endpoints not listed hold none.
struct PrefixMatch {
  static constexpr uint32_t kMax = 8;  // = the index's bucket size
  uint32_t count = 0;
  std::array<uint32_t, kMax> endpoint{};
  std::array<uint32_t, kMax> blocks{};
  uint32_t BlocksOf(uint32_t e) const {
    for (uint32_t i = 0; i < count; ++i)
      if (endpoint[i] == e) return blocks[i];
    return 0;
  }
};

class PrefixIndex {
 public:
  static constexpr uint32_t kFirstTierBlocks = 32;
  static constexpr uint32_t kTierBlocks = 16;
  static constexpr uint64_t kMaxBlockBytes = 1u << 20;
  static constexpr uint32_t kMaxEndpoints = 1u << 16;         // ids at or above are not indexed
  static constexpr uint64_t kMaxEntries = uint64_t{1} << 26;  // 512 MiB of table

  // `endpoints`: the pool's size; endpoint ids are below it. Reserves the whole table (pages
  // are only touched as entries are written). Control thread.
  PrefixIndex(PrefixIndexConfig config, uint32_t endpoints);
  // An index for a changed endpoint list that keeps what `previous` learned: entries of
  // previous's endpoint carried[i] become endpoint i's, entries of endpoints not carried are
  // dropped. The table keeps previous's geometry (each entry stays in its bucket), so the caller
  // builds a fresh index instead once the pool's size has drifted far from the one the table was
  // sized for (CarryFits). Control thread; `previous` may be in use by workers meanwhile.
  PrefixIndex(const PrefixIndex& previous, std::span<const int32_t> carried);
  // Whether a table sized for `previous` still suits `endpoints` endpoints (within a factor 2).
  static bool CarryFits(const PrefixIndex& previous, uint32_t endpoints);
  ~PrefixIndex();
  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;

  // Replaces `out` with the chained block hashes of `text` for `model`. Reuses out's storage.
  static void HashBlocks(std::string_view model, std::string_view text, uint32_t block_bytes,
                         uint32_t max_blocks, std::vector<uint64_t>& out);
  // Size of block `i` and bytes covered by the first `blocks` blocks, for `block_bytes`.
  static uint64_t BlockSize(uint32_t block_bytes, uint32_t i);
  static uint64_t CoveredBytes(uint32_t block_bytes, uint32_t blocks);

  // For every endpoint holding blocks[0], its count of leading blocks held: one walk over the
  // blocks that stops at the first block none of them holds. O(blocks walked × 8).
  PrefixMatch MatchAll(std::span<const uint64_t> blocks) const;
  // Leading blocks of `blocks` that `endpoint` holds.
  uint32_t Match(uint32_t endpoint, std::span<const uint64_t> blocks) const;
  // Records that `endpoint` holds `blocks` as of `now_ns` (MonotonicNanos). Entries it already
  // has are only rewritten when their age is a tick or more old; missing ones replace the
  // oldest entry of their bucket. Returns how many leading blocks it held before.
  uint32_t Insert(uint32_t endpoint, std::span<const uint64_t> blocks, int64_t now_ns);
  uint32_t Insert(uint32_t endpoint, std::span<const uint64_t> blocks);  // now
  // Forgets `blocks` on `endpoint` (engine eviction events).
  void Evict(uint32_t endpoint, std::span<const uint64_t> blocks);

  // Entries held for `endpoint`; scans the whole table (tests, admin view).
  uint64_t Size(uint32_t endpoint) const;
  uint64_t slots() const { return buckets_ * kWays; }
  const PrefixIndexConfig& config() const { return config_; }
  uint32_t endpoints() const { return endpoints_; }

 private:
  static constexpr uint32_t kWays = PrefixMatch::kMax;
  uint64_t* Bucket(uint64_t hash) const;

  void Allocate(uint64_t buckets);

  PrefixIndexConfig config_;
  uint32_t sized_for_;  // the endpoint count the table was sized for
  uint32_t endpoints_;
  uint64_t buckets_;
  void* memory_ = nullptr;     // calloc'd: zero pages are mapped lazily
  uint64_t* table_ = nullptr;  // buckets_ × kWays words, 64-byte aligned
};

}  // namespace tokenway
