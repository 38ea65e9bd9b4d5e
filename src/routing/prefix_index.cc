#include "routing/prefix_index.h"

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "common/duration.h"

namespace tokenway {

namespace {

// Entry word: tag (28 bits) | age (20 bits) | endpoint (16 bits); 0 = empty.
constexpr int kTagShift = 36;
constexpr int kAgeShift = 16;
constexpr uint64_t kAgeMask = (uint64_t{1} << 20) - 1;
constexpr uint64_t kOwnerMask = (uint64_t{1} << 16) - 1;
constexpr int kTickShift = 24;                   // one age tick = 2^24 ns ≈ 16.8 ms
constexpr uint64_t kAgeHalf = kAgeMask / 2 + 1;  // ≈ 2.4 h: older looks like the future
constexpr size_t kPrefetchAhead = 16;            // buckets requested ahead of the walk

// XXH3 of one block. Long blocks go through libxxhash's run-time dispatch (AVX2 where the CPU
// has it: about 2.5× the default SSE2 build on a 400 KiB prompt); short ones take the plain
// call, whose scalar path the dispatch cannot speed up.
constexpr size_t kXxh3MidsizeMax = 240;  // XXH3's long-input path starts above this

uint64_t HashBlock(const char* data, size_t size, uint64_t seed) {
#if defined(__x86_64__)
  if (size > kXxh3MidsizeMax) return XXH3_64bits_withSeed_dispatch(data, size, seed);
#endif
  return XXH3_64bits_withSeed(data, size, seed);
}

uint64_t Tag(uint64_t hash) {
  uint64_t t = hash & ((uint64_t{1} << 28) - 1);  // the bucket comes from the high bits
  return t ? t : 1;
}

uint64_t Tick(int64_t now_ns) {
  return (static_cast<uint64_t>(now_ns) >> kTickShift) & kAgeMask;
}

uint64_t Entry(uint64_t tag, uint64_t age, uint32_t endpoint) {
  return tag << kTagShift | age << kAgeShift | endpoint;
}

// Ticks since `entry` was written; entries stamped later than `age` (another worker crossed a
// tick first) count as new.
uint64_t AgeOf(uint64_t entry, uint64_t age) {
  uint64_t d = (age - (entry >> kAgeShift)) & kAgeMask;
  return d >= kAgeHalf ? 0 : d;
}

uint64_t Load(uint64_t& w) {
  return std::atomic_ref<uint64_t>(w).load(std::memory_order_relaxed);
}

bool Replace(uint64_t& w, uint64_t expected, uint64_t desired) {
  return std::atomic_ref<uint64_t>(w).compare_exchange_strong(expected, desired,
                                                              std::memory_order_relaxed);
}

}  // namespace

PrefixIndex::PrefixIndex(PrefixIndexConfig config, uint32_t endpoints)
    : config_(config), sized_for_(endpoints), endpoints_(endpoints) {
  if (config_.capacity == 0) config_.capacity = 1;
  if (config_.block_bytes == 0) config_.block_bytes = 64;
  uint64_t entries = uint64_t{config_.capacity} * std::max<uint32_t>(endpoints, 1);
  entries = std::min(entries, kMaxEntries);
  Allocate(std::max<uint64_t>(1, (entries + kWays - 1) / kWays));
}

PrefixIndex::PrefixIndex(const PrefixIndex& previous, std::span<const int32_t> carried)
    : config_(previous.config_),
      sized_for_(previous.sized_for_),
      endpoints_(static_cast<uint32_t>(carried.size())) {
  Allocate(previous.buckets_);
  std::vector<uint32_t> to(std::min<uint32_t>(previous.endpoints_, kMaxEndpoints), kMaxEndpoints);
  for (size_t i = 0; i < carried.size() && i < kMaxEndpoints; ++i) {
    if (carried[i] >= 0 && static_cast<size_t>(carried[i]) < to.size()) {
      to[carried[i]] = static_cast<uint32_t>(i);
    }
  }
  for (uint64_t i = 0; i < buckets_ * kWays; ++i) {
    uint64_t v = Load(previous.table_[i]);
    uint64_t owner = v & kOwnerMask;
    if (v == 0 || owner >= to.size() || to[owner] == kMaxEndpoints) continue;
    table_[i] = (v & ~kOwnerMask) | to[owner];
  }
}

bool PrefixIndex::CarryFits(const PrefixIndex& previous, uint32_t endpoints) {
  uint64_t was = std::max<uint32_t>(previous.sized_for_, 1);
  uint64_t now = std::max<uint32_t>(endpoints, 1);
  return now <= 2 * was && was <= 2 * now;
}

void PrefixIndex::Allocate(uint64_t buckets) {
  buckets_ = buckets;
  constexpr size_t kLine = kWays * sizeof(uint64_t);
  memory_ = std::calloc(buckets_ * kLine + kLine, 1);
  if (!memory_) throw std::bad_alloc();
  auto at = reinterpret_cast<uintptr_t>(memory_);
  table_ = reinterpret_cast<uint64_t*>((at + kLine - 1) / kLine * kLine);
}

PrefixIndex::~PrefixIndex() {
  std::free(memory_);
}

uint64_t* PrefixIndex::Bucket(uint64_t hash) const {
  __extension__ using U128 = unsigned __int128;
  auto index = static_cast<uint64_t>((static_cast<U128>(hash) * buckets_) >> 64);
  return table_ + index * kWays;
}

uint64_t PrefixIndex::BlockSize(uint32_t block_bytes, uint32_t i) {
  if (i < kFirstTierBlocks) return block_bytes;
  const uint64_t cap = std::max<uint64_t>(block_bytes, kMaxBlockBytes);
  uint32_t tier = 1 + (i - kFirstTierBlocks) / kTierBlocks;
  if (tier >= 32) return cap;
  return std::min<uint64_t>(uint64_t{block_bytes} << tier, cap);
}

uint64_t PrefixIndex::CoveredBytes(uint32_t block_bytes, uint32_t blocks) {
  uint32_t i = std::min(blocks, kFirstTierBlocks);
  uint64_t bytes = uint64_t{i} * block_bytes;
  const uint64_t cap = std::max<uint64_t>(block_bytes, kMaxBlockBytes);
  while (i < blocks) {  // one tier per step
    uint64_t size = BlockSize(block_bytes, i);
    uint32_t tier_end =
        size == cap ? blocks
                    : kFirstTierBlocks + ((i - kFirstTierBlocks) / kTierBlocks + 1) * kTierBlocks;
    uint32_t n = std::min(blocks, tier_end) - i;
    bytes += n * size;
    i += n;
  }
  return bytes;
}

void PrefixIndex::HashBlocks(std::string_view model, std::string_view text, uint32_t block_bytes,
                             uint32_t max_blocks, std::vector<uint64_t>& out) {
  out.clear();
  if (block_bytes == 0) return;
  uint64_t seed = XXH3_64bits(model.data(), model.size());
  size_t pos = 0;
  for (uint32_t i = 0; i < max_blocks; ++i) {
    uint64_t size = BlockSize(block_bytes, i);
    if (size > text.size() - pos) break;
    seed = HashBlock(text.data() + pos, size, seed);
    out.push_back(seed);
    pos += size;
  }
}

PrefixMatch PrefixIndex::MatchAll(std::span<const uint64_t> blocks) const {
  PrefixMatch m;
  // Positions in `m` of the endpoints that held every block so far.
  std::array<uint32_t, PrefixMatch::kMax> alive{};
  uint32_t alive_count = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i + kPrefetchAhead < blocks.size()) __builtin_prefetch(Bucket(blocks[i + kPrefetchAhead]));
    uint64_t* bucket = Bucket(blocks[i]);
    const uint64_t tag = Tag(blocks[i]);
    std::array<uint32_t, kWays> owners;
    uint32_t owner_count = 0;
    for (uint32_t w = 0; w < kWays; ++w) {
      uint64_t v = Load(bucket[w]);
      if (v >> kTagShift == tag) owners[owner_count++] = static_cast<uint32_t>(v & kOwnerMask);
    }
    auto holds = [&](uint32_t e) {
      return std::find(owners.begin(), owners.begin() + owner_count, e) !=
             owners.begin() + owner_count;
    };
    if (i == 0) {
      for (uint32_t k = 0; k < owner_count; ++k) {
        uint32_t e = owners[k];
        if (e >= endpoints_ || m.BlocksOf(e) != 0) continue;  // duplicates from a lost race
        m.endpoint[m.count] = e;
        m.blocks[m.count] = 1;
        alive[alive_count++] = m.count++;
      }
    } else {
      uint32_t kept = 0;
      for (uint32_t a = 0; a < alive_count; ++a) {
        if (!holds(m.endpoint[alive[a]])) continue;
        m.blocks[alive[a]] = static_cast<uint32_t>(i + 1);
        alive[kept++] = alive[a];
      }
      alive_count = kept;
    }
    if (alive_count == 0) break;  // no endpoint's prefix continues past this block
  }
  return m;
}

uint32_t PrefixIndex::Match(uint32_t endpoint, std::span<const uint64_t> blocks) const {
  if (endpoint >= endpoints_ || endpoint >= kMaxEndpoints) return 0;
  uint32_t n = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i + kPrefetchAhead < blocks.size()) __builtin_prefetch(Bucket(blocks[i + kPrefetchAhead]));
    uint64_t* bucket = Bucket(blocks[i]);
    const uint64_t tag = Tag(blocks[i]);
    bool held = false;
    for (uint32_t w = 0; w < kWays && !held; ++w) {
      uint64_t v = Load(bucket[w]);
      held = v >> kTagShift == tag && (v & kOwnerMask) == endpoint;
    }
    if (!held) break;
    ++n;
  }
  return n;
}

uint32_t PrefixIndex::Insert(uint32_t endpoint, std::span<const uint64_t> blocks) {
  return Insert(endpoint, blocks, MonotonicNanos());
}

uint32_t PrefixIndex::Insert(uint32_t endpoint, std::span<const uint64_t> blocks, int64_t now_ns) {
  if (endpoint >= endpoints_ || endpoint >= kMaxEndpoints) return 0;
  const uint64_t age = Tick(now_ns);
  uint32_t held = 0;
  bool leading = true;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i + kPrefetchAhead < blocks.size())
      __builtin_prefetch(Bucket(blocks[i + kPrefetchAhead]), 1);
    uint64_t* bucket = Bucket(blocks[i]);
    const uint64_t tag = Tag(blocks[i]);
    const uint64_t want = Entry(tag, age, endpoint);
    // Two tries: a lost compare-exchange means another worker just wrote this bucket.
    for (int attempt = 0; attempt < 2; ++attempt) {
      // Ties (entries of the same tick) go to the first slot from a hash-chosen start, so a
      // busy bucket does not churn one slot only.
      const uint32_t start = static_cast<uint32_t>(blocks[i] >> 32) % kWays;
      uint32_t victim = start;
      uint64_t victim_value = 0, victim_age = 0;
      bool empty = false, found = false;
      for (uint32_t k = 0; k < kWays; ++k) {
        const uint32_t w = (start + k) % kWays;
        uint64_t v = Load(bucket[w]);
        if (v >> kTagShift == tag && (v & kOwnerMask) == endpoint) {
          found = true;
          // Refresh at most once per tick, so a hot prefix is read, not rewritten, per request.
          if (AgeOf(v, age) > 0) Replace(bucket[w], v, want);
          break;
        }
        if (empty) continue;
        if (v == 0) {
          empty = true;
          victim = w;
          victim_value = 0;
          continue;
        }
        uint64_t a = AgeOf(v, age);
        if (k == 0 || a > victim_age) {
          victim = w;
          victim_value = v;
          victim_age = a;
        }
      }
      if (attempt == 0) {
        leading = leading && found;
        held += leading ? 1 : 0;
      }
      if (found || Replace(bucket[victim], victim_value, want)) break;
    }
  }
  return held;
}

void PrefixIndex::Evict(uint32_t endpoint, std::span<const uint64_t> blocks) {
  if (endpoint >= endpoints_ || endpoint >= kMaxEndpoints) return;
  for (uint64_t h : blocks) {
    uint64_t* bucket = Bucket(h);
    const uint64_t tag = Tag(h);
    for (uint32_t w = 0; w < kWays; ++w) {  // every copy: a lost race can leave two
      uint64_t v = Load(bucket[w]);
      if (v >> kTagShift == tag && (v & kOwnerMask) == endpoint) Replace(bucket[w], v, 0);
    }
  }
}

uint64_t PrefixIndex::Size(uint32_t endpoint) const {
  uint64_t n = 0;
  for (uint64_t i = 0; i < buckets_ * kWays; ++i) {
    uint64_t v = Load(table_[i]);
    n += v != 0 && (v & kOwnerMask) == endpoint;
  }
  return n;
}

}  // namespace tokenway
