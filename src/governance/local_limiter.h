// LocalLimiter: the in-process limiter backend. Every worker of one gateway process shares its
// counters through atomics; there is no mutex on the request path.
//
// Each limit of each scope is one fixed-window counter packed into a single 64-bit word (the
// low 20 bits of the window index above 44 bits of use), so a check-and-add is one
// compare-and-swap loop and a new window starts without a reset race. A reservation takes every
// counter in turn and rolls back the ones it took when a later one refuses.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "governance/limiter.h"

namespace tokenway {

class WindowCounter {
 public:
  static constexpr int kUseBits = 44;
  static constexpr uint64_t kUseMask = (uint64_t{1} << kUseBits) - 1;

  // Adds `amount` in `window` unless that would pass `limit` (limit > 0). A zero amount asks
  // only whether the window is already at its limit (post-hoc charging). `used` is the use
  // after the add, or the use that refused.
  bool TryAdd(int64_t window, int64_t amount, int64_t limit, int64_t& used);
  // Adds `delta` (may be negative; use never drops below 0) if `window` is still current; a
  // positive delta for a window that has passed counts in `current` instead.
  void Adjust(int64_t window, int64_t current, int64_t delta);
  int64_t Used(int64_t window) const;

 private:
  static uint64_t Tag(int64_t window) { return static_cast<uint64_t>(window) & 0xFFFFF; }
  std::atomic<uint64_t> word_{0};
};

struct ScopeCounters {
  WindowCounter windowed[kWindowedKinds];
  std::atomic<int64_t> concurrent{0};
};

class LocalLimiter final : public Limiter {
 public:
  explicit LocalLimiter(int64_t window_ms) : window_ms_(window_ms) {}

  // Control thread: the counters of scope `id`, shared with earlier snapshots.
  std::shared_ptr<ScopeCounters> CountersFor(const std::string& id);

  // The synchronous decision behind Reserve (the micro-benchmark times it).
  Decision Check(Reservation& r, int64_t now_ms);

  boost::asio::awaitable<Decision> Reserve(Reservation& r) override;
  void Settle(Reservation& r, int64_t input, int64_t output) override;
  void Release(Reservation& r) override;
  std::string_view name() const override { return "local"; }

 private:
  void Undo(Reservation& r, int scopes, int kinds_in_last);
  const int64_t window_ms_;
  std::mutex mu_;  // CountersFor only (control thread)
  std::unordered_map<std::string, std::shared_ptr<ScopeCounters>> counters_;
};

}  // namespace tokenway
