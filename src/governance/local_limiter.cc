#include "governance/local_limiter.h"

#include <algorithm>

namespace tokenway {

bool WindowCounter::TryAdd(int64_t window, int64_t amount, int64_t limit, int64_t& used) {
  const uint64_t tag = Tag(window);
  uint64_t cur = word_.load(std::memory_order_relaxed);
  for (;;) {
    int64_t in_window =
        (cur >> kUseBits) == tag ? static_cast<int64_t>(cur & kUseMask) : int64_t{0};
    bool refuse = limit > 0 && (amount > 0 ? in_window + amount > limit : in_window >= limit);
    if (refuse) {
      used = in_window;
      return false;
    }
    int64_t next = std::min<int64_t>(in_window + amount, static_cast<int64_t>(kUseMask));
    if (word_.compare_exchange_weak(cur, (tag << kUseBits) | static_cast<uint64_t>(next),
                                    std::memory_order_relaxed)) {
      used = next;
      return true;
    }
  }
}

void WindowCounter::Adjust(int64_t window, int64_t current, int64_t delta) {
  if (delta == 0) return;
  if (window != current) {
    if (delta < 0) return;  // what the passed window over-reserved is gone with it
    window = current;
  }
  const uint64_t tag = Tag(window);
  uint64_t cur = word_.load(std::memory_order_relaxed);
  for (;;) {
    int64_t in_window =
        (cur >> kUseBits) == tag ? static_cast<int64_t>(cur & kUseMask) : int64_t{0};
    int64_t next = std::clamp<int64_t>(in_window + delta, 0, static_cast<int64_t>(kUseMask));
    if (word_.compare_exchange_weak(cur, (tag << kUseBits) | static_cast<uint64_t>(next),
                                    std::memory_order_relaxed)) {
      return;
    }
  }
}

int64_t WindowCounter::Used(int64_t window) const {
  uint64_t cur = word_.load(std::memory_order_relaxed);
  return (cur >> kUseBits) == Tag(window) ? static_cast<int64_t>(cur & kUseMask) : 0;
}

std::shared_ptr<ScopeCounters> LocalLimiter::CountersFor(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& slot = counters_[id];
  if (!slot) slot = std::make_shared<ScopeCounters>();
  return slot;
}

void LocalLimiter::Undo(Reservation& r, int scopes, int kinds_in_last) {
  for (int s = 0; s < scopes; ++s) {
    ScopeCounters& c = *r.scopes[s]->counters;
    const LimitSpec& l = r.scopes[s]->limits;
    int kinds = s + 1 == scopes ? kinds_in_last : kLimitKinds;
    for (int k = 0; k < kinds; ++k) {
      LimitKind kind = static_cast<LimitKind>(k);
      if (LimitOf(l, kind) <= 0) continue;
      if (kind == LimitKind::kConcurrent) {
        c.concurrent.fetch_sub(1, std::memory_order_relaxed);
      } else {
        c.windowed[k].Adjust(r.windows.index[k], r.windows.index[k], -r.Amount(kind));
      }
    }
  }
}

Decision LocalLimiter::Check(Reservation& r, int64_t now_ms) {
  Decision d;
  r.windows = WindowsAt(now_ms, window_ms_);
  int64_t used[Reservation::kMaxScopes][kLimitKinds];
  for (auto& row : used) std::fill(std::begin(row), std::end(row), int64_t{-1});
  for (int s = 0; s < r.n_scopes; ++s) {
    ScopeCounters& c = *r.scopes[s]->counters;
    const LimitSpec& l = r.scopes[s]->limits;
    for (int k = 0; k < kLimitKinds; ++k) {
      LimitKind kind = static_cast<LimitKind>(k);
      int64_t limit = LimitOf(l, kind);
      if (limit <= 0) continue;
      bool ok;
      if (kind == LimitKind::kConcurrent) {
        int64_t now = c.concurrent.fetch_add(1, std::memory_order_relaxed) + 1;
        ok = now <= limit;
        if (!ok) c.concurrent.fetch_sub(1, std::memory_order_relaxed);
        used[s][k] = now;
      } else {
        ok = c.windowed[k].TryAdd(r.windows.index[k], r.Amount(kind), limit, used[s][k]);
      }
      if (!ok) {
        Undo(r, s + 1, k);
        // Report the counters as the refusal left them: without this request.
        for (int us = 0; us <= s; ++us) {
          for (int uk = 0; uk < (us == s ? k : kLimitKinds); ++uk) {
            if (used[us][uk] >= 0) used[us][uk] -= r.Amount(static_cast<LimitKind>(uk));
          }
        }
        d.result = Decision::Result::kLimited;
        d.limit = kind;
        d.retry_after_ms = kind == LimitKind::kConcurrent
                               ? 1000
                               : std::max<int64_t>(1, r.windows.end_ms[k] - now_ms);
        FillHeaderFields(r, used, now_ms, d);
        return d;
      }
    }
  }
  r.held = true;
  r.counted = true;
  FillHeaderFields(r, used, now_ms, d);
  return d;
}

boost::asio::awaitable<Decision> LocalLimiter::Reserve(Reservation& r) {
  co_return Check(r, UnixMillis());
}

void LocalLimiter::Settle(Reservation& r, int64_t input, int64_t output) {
  if (!r.held) return;
  r.held = false;
  Windows now = WindowsAt(UnixMillis(), window_ms_);
  for (int s = 0; s < r.n_scopes; ++s) {
    ScopeCounters& c = *r.scopes[s]->counters;
    const LimitSpec& l = r.scopes[s]->limits;
    for (int k = 0; k < kLimitKinds; ++k) {
      LimitKind kind = static_cast<LimitKind>(k);
      if (LimitOf(l, kind) <= 0) continue;
      int64_t delta = 0;
      switch (kind) {
        case LimitKind::kRequests:
          break;
        case LimitKind::kConcurrent:
          c.concurrent.fetch_sub(1, std::memory_order_relaxed);
          break;
        case LimitKind::kInputTokens:
          delta = input - r.input;
          break;
        case LimitKind::kOutputTokens:
          delta = output - r.output;
          break;
        default:
          delta = input + output - r.input - r.output;
          break;
      }
      if (kind != LimitKind::kConcurrent) {
        c.windowed[k].Adjust(r.windows.index[k], now.index[k], delta);
      }
    }
  }
}

void LocalLimiter::Release(Reservation& r) {
  Settle(r, 0, 0);
}

}  // namespace tokenway
