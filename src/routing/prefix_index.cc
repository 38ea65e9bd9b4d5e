#include "routing/prefix_index.h"

#include <xxhash.h>

namespace tokenway {

PrefixIndex::PrefixIndex(PrefixIndexConfig config, uint32_t endpoints) : config_(config) {
  if (config_.capacity == 0) config_.capacity = 1;
  if (config_.block_bytes == 0) config_.block_bytes = 64;
  sets_.reserve(endpoints);
  for (uint32_t i = 0; i < endpoints; ++i) sets_.push_back(NewSet(config_.capacity));
}

PrefixIndex::PrefixIndex(const PrefixIndex& previous, std::span<const int32_t> carried)
    : config_(previous.config_) {
  sets_.reserve(carried.size());
  for (int32_t from : carried) {
    bool keep = from >= 0 && static_cast<size_t>(from) < previous.sets_.size();
    sets_.push_back(keep ? previous.sets_[from] : NewSet(config_.capacity));
  }
}

std::shared_ptr<PrefixIndex::LruSet> PrefixIndex::NewSet(uint32_t capacity) {
  auto s = std::make_shared<LruSet>();
  s->hash.resize(capacity);
  s->prev.resize(capacity, kNone);
  s->next.resize(capacity, kNone);
  s->free_nodes.reserve(capacity);
  for (uint32_t n = capacity; n > 0; --n) s->free_nodes.push_back(n - 1);
  s->where.reserve(capacity);
  return s;
}

void PrefixIndex::HashBlocks(std::string_view model, std::string_view text, uint32_t block_bytes,
                             uint32_t max_blocks, std::vector<uint64_t>& out) {
  out.clear();
  if (block_bytes == 0) return;
  size_t blocks = text.size() / block_bytes;
  if (blocks > max_blocks) blocks = max_blocks;
  uint64_t seed = XXH3_64bits(model.data(), model.size());
  for (size_t i = 0; i < blocks; ++i) {
    seed = XXH3_64bits_withSeed(text.data() + i * block_bytes, block_bytes, seed);
    out.push_back(seed);
  }
}

uint32_t PrefixIndex::Match(uint32_t endpoint, std::span<const uint64_t> blocks) const {
  if (endpoint >= sets_.size()) return 0;
  const LruSet& s = *sets_[endpoint];
  std::lock_guard lock(s.mu);
  uint32_t n = 0;
  for (uint64_t h : blocks) {
    if (!s.where.contains(h)) break;
    ++n;
  }
  return n;
}

void PrefixIndex::Unlink(LruSet& s, uint32_t node) const {
  uint32_t p = s.prev[node], n = s.next[node];
  if (p != kNone)
    s.next[p] = n;
  else
    s.head = n;
  if (n != kNone)
    s.prev[n] = p;
  else
    s.tail = p;
  s.prev[node] = s.next[node] = kNone;
}

void PrefixIndex::PushFront(LruSet& s, uint32_t node) const {
  s.prev[node] = kNone;
  s.next[node] = s.head;
  if (s.head != kNone) s.prev[s.head] = node;
  s.head = node;
  if (s.tail == kNone) s.tail = node;
}

void PrefixIndex::Insert(uint32_t endpoint, std::span<const uint64_t> blocks) {
  if (endpoint >= sets_.size()) return;
  LruSet& s = *sets_[endpoint];
  std::lock_guard lock(s.mu);
  // First refresh the blocks already held, so that inserting the missing ones cannot evict a
  // block of this very request; then insert the missing ones last-to-first, so the first block
  // ends up most recent: a prefix's head blocks are the most shared and should age out last.
  for (size_t i = blocks.size(); i > 0; --i) {
    auto it = s.where.find(blocks[i - 1]);
    if (it == s.where.end()) continue;
    Unlink(s, it->second);
    PushFront(s, it->second);
  }
  for (size_t i = blocks.size(); i > 0; --i) {
    uint64_t h = blocks[i - 1];
    if (s.where.contains(h)) continue;
    uint32_t node;
    if (!s.free_nodes.empty()) {
      node = s.free_nodes.back();
      s.free_nodes.pop_back();
    } else {
      node = s.tail;
      Unlink(s, node);
      s.where.erase(s.hash[node]);
    }
    s.hash[node] = h;
    s.where.emplace(h, node);
    PushFront(s, node);
  }
}

void PrefixIndex::Evict(uint32_t endpoint, std::span<const uint64_t> blocks) {
  if (endpoint >= sets_.size()) return;
  LruSet& s = *sets_[endpoint];
  std::lock_guard lock(s.mu);
  for (uint64_t h : blocks) {
    auto it = s.where.find(h);
    if (it == s.where.end()) continue;
    uint32_t node = it->second;
    s.where.erase(it);
    Unlink(s, node);
    s.free_nodes.push_back(node);
  }
}

uint32_t PrefixIndex::Size(uint32_t endpoint) const {
  if (endpoint >= sets_.size()) return 0;
  const LruSet& s = *sets_[endpoint];
  std::lock_guard lock(s.mu);
  return static_cast<uint32_t>(s.where.size());
}

}  // namespace tokenway
