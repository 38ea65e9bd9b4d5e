#include "http/upstream_pool.h"

#include <algorithm>

namespace tokenway {

std::unique_ptr<UpstreamConnection> UpstreamPool::TakeIdle(const void* key) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  auto conn = std::move(it->second.back());
  it->second.pop_back();
  return conn;
}

void UpstreamPool::Return(std::unique_ptr<UpstreamConnection> conn, uint32_t max_idle,
                          int64_t now_ns) {
  conn->deadline.Detach();
  auto& list = idle_[conn->endpoint_key];
  if (list.size() >= max_idle) return;  // dropping closes it
  conn->idle_since_ns = now_ns;
  conn->buffer.clear();
  list.push_back(std::move(conn));
}

void UpstreamPool::CloseIdleBefore(int64_t cutoff_ns) {
  for (auto& [key, list] : idle_) {
    // Oldest first in the vector: the front ages out first.
    auto keep = std::find_if(list.begin(), list.end(),
                             [&](const auto& c) { return c->idle_since_ns >= cutoff_ns; });
    list.erase(list.begin(), keep);
  }
}

void UpstreamPool::CloseAll() {
  idle_.clear();
}

size_t UpstreamPool::idle_count() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

}  // namespace tokenway
