// Limiter: the interface every rate-limit backend implements (local_limiter.h, redis_limiter.h).
//
// The request path reserves before it forwards and settles once after: Reserve() counts the
// request, its estimated input tokens and its max_tokens against every limit of every scope the
// request falls in (tenant, key, model within the tenant), all or nothing; Settle() replaces the
// reservation with the real usage; Release() returns the tokens of a request that failed before
// producing any. Reserve, Settle and Release are called on a worker thread; Settle and Release
// never block. The scopes outlive the Reservation (they belong to the TenantTable snapshot the
// request holds).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "governance/governance_config.h"

namespace tokenway {

enum class LimitKind : uint8_t {
  kRequests,      // requests_per_minute
  kInputTokens,   // input_tokens_per_minute
  kOutputTokens,  // output_tokens_per_minute
  kTokens,        // tokens_per_minute
  kDaily,         // tokens_per_day
  kMonthly,       // tokens_per_month
  kConcurrent,    // concurrent_requests
};
inline constexpr int kLimitKinds = 7;
inline constexpr int kWindowedKinds = 6;  // all but kConcurrent

// The config field name of a limit ("tokens_per_minute", ...), also the metric label.
std::string_view LimitName(LimitKind kind);
// The limit of `kind` in `spec` (0: none).
int64_t LimitOf(const LimitSpec& spec, LimitKind kind);

struct ScopeCounters;  // local_limiter.h

// One set of limits: a tenant, one key of a tenant, or one model within a tenant. Built by the
// TenantTable; `counters` (local backend) are shared by every snapshot with the same id, so a
// reload keeps what has been used.
struct LimitScope {
  std::string id;  // "t:acme", "k:acme:key1", "m:acme:llama"; also the Redis key stem
  LimitSpec limits;
  std::shared_ptr<ScopeCounters> counters;
};

// The windows a moment falls in, and when each ends. Minute windows are `window` long
// (governance.window); days and months are UTC calendar days and months.
struct Windows {
  int64_t index[kWindowedKinds] = {};
  int64_t end_ms[kWindowedKinds] = {};
};
Windows WindowsAt(int64_t unix_ms, int64_t window_ms);
int64_t UnixMillis();

struct Reservation {
  static constexpr int kMaxScopes = 3;
  const LimitScope* scopes[kMaxScopes] = {};
  int n_scopes = 0;
  int64_t input = 0;     // tokens reserved as input (0 when charging post hoc)
  int64_t output = 0;    // tokens reserved as output
  Windows windows;       // where the reservation was counted
  bool held = false;     // counters hold this request (Settle or Release still owed)
  bool counted = false;  // the backend counted the reservation (false when it failed open)

  // The amount a reservation adds to a limit of `kind`.
  int64_t Amount(LimitKind kind) const;
};

struct Decision {
  enum class Result : uint8_t { kAllowed, kLimited, kBackendDown };
  Result result = Result::kAllowed;
  bool failed_open = false;                // allowed only because the backend was unreachable
  LimitKind limit = LimitKind::kRequests;  // the limit that refused (kLimited)
  int64_t retry_after_ms = 0;
  // For OpenAI's x-ratelimit-* headers; -1: no such limit applies.
  int64_t limit_requests = -1;
  int64_t remaining_requests = 0;
  int64_t reset_requests_ms = 0;
  int64_t limit_tokens = -1;
  int64_t remaining_tokens = 0;
  int64_t reset_tokens_ms = 0;
};

class Limiter {
 public:
  virtual ~Limiter() = default;
  // Counts the reservation against every limit of its scopes, all or nothing. On kAllowed the
  // caller owes exactly one Settle or Release.
  virtual boost::asio::awaitable<Decision> Reserve(Reservation& r) = 0;
  // Replaces the reservation with the real usage (tokens counted in the window that is current
  // now when the reservation's window has passed) and ends the concurrency hold.
  virtual void Settle(Reservation& r, int64_t input, int64_t output) = 0;
  // Gives the reserved tokens back (the request failed without producing tokens).
  virtual void Release(Reservation& r) = 0;
  virtual std::string_view name() const = 0;
};

// Fills the x-ratelimit fields of `d` from the most constrained request and token limits,
// given each limit's use after the reservation (`used[scope][kind]`, -1: not counted).
void FillHeaderFields(const Reservation& r, const int64_t used[][kLimitKinds], int64_t now_ms,
                      Decision& d);

}  // namespace tokenway
