#include "governance/limiter.h"

#include <chrono>

namespace tokenway {

std::string_view LimitName(LimitKind kind) {
  switch (kind) {
    case LimitKind::kRequests:
      return "requests_per_minute";
    case LimitKind::kInputTokens:
      return "input_tokens_per_minute";
    case LimitKind::kOutputTokens:
      return "output_tokens_per_minute";
    case LimitKind::kTokens:
      return "tokens_per_minute";
    case LimitKind::kDaily:
      return "tokens_per_day";
    case LimitKind::kMonthly:
      return "tokens_per_month";
    case LimitKind::kConcurrent:
      return "concurrent_requests";
  }
  return "unknown";
}

int64_t LimitOf(const LimitSpec& s, LimitKind kind) {
  switch (kind) {
    case LimitKind::kRequests:
      return s.requests_per_minute;
    case LimitKind::kInputTokens:
      return s.input_tokens_per_minute;
    case LimitKind::kOutputTokens:
      return s.output_tokens_per_minute;
    case LimitKind::kTokens:
      return s.tokens_per_minute;
    case LimitKind::kDaily:
      return s.tokens_per_day;
    case LimitKind::kMonthly:
      return s.tokens_per_month;
    case LimitKind::kConcurrent:
      return s.concurrent_requests;
  }
  return 0;
}

int64_t Reservation::Amount(LimitKind kind) const {
  switch (kind) {
    case LimitKind::kRequests:
    case LimitKind::kConcurrent:
      return 1;
    case LimitKind::kInputTokens:
      return input;
    case LimitKind::kOutputTokens:
      return output;
    case LimitKind::kTokens:
    case LimitKind::kDaily:
    case LimitKind::kMonthly:
      return input + output;
  }
  return 0;
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Windows WindowsAt(int64_t unix_ms, int64_t window_ms) {
  Windows w;
  const int64_t minute = unix_ms / window_ms;
  for (int k = 0; k < 4; ++k) {  // the four per-minute kinds share one window
    w.index[k] = minute;
    w.end_ms[k] = (minute + 1) * window_ms;
  }
  constexpr int64_t kDayMs = 86'400'000;
  const int64_t day = unix_ms / kDayMs;
  w.index[static_cast<int>(LimitKind::kDaily)] = day;
  w.end_ms[static_cast<int>(LimitKind::kDaily)] = (day + 1) * kDayMs;
  // Calendar month of `day` (days since 1970-01-01) without gmtime: H. Hinnant's
  // civil_from_days / days_from_civil, pure arithmetic on the request path.
  auto civil = [](int64_t z, int64_t& y, int64_t& m) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = yoe + era * 400 + (m <= 2);
  };
  auto days_from_civil = [](int64_t y, int64_t m) {  // the 1st of month m of year y
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
  };
  int64_t year = 0;
  int64_t mon = 0;  // 1..12
  civil(day, year, mon);
  const int64_t next_year = mon == 12 ? year + 1 : year;
  const int64_t next_mon = mon == 12 ? 1 : mon + 1;
  w.index[static_cast<int>(LimitKind::kMonthly)] = year * 12 + (mon - 1);
  w.end_ms[static_cast<int>(LimitKind::kMonthly)] = days_from_civil(next_year, next_mon) * kDayMs;
  return w;
}

void FillHeaderFields(const Reservation& r, const int64_t used[][kLimitKinds], int64_t now_ms,
                      Decision& d) {
  auto pick = [&](std::initializer_list<LimitKind> kinds, int64_t& limit, int64_t& remaining,
                  int64_t& reset) {
    limit = -1;
    for (int s = 0; s < r.n_scopes; ++s) {
      for (LimitKind kind : kinds) {
        int64_t l = LimitOf(r.scopes[s]->limits, kind);
        int64_t u = used[s][static_cast<int>(kind)];
        if (l <= 0 || u < 0) continue;
        int64_t rem = std::max<int64_t>(0, l - u);
        if (limit < 0 || rem < remaining) {
          limit = l;
          remaining = rem;
          reset = std::max<int64_t>(0, r.windows.end_ms[static_cast<int>(kind)] - now_ms);
        }
      }
    }
  };
  pick({LimitKind::kRequests}, d.limit_requests, d.remaining_requests, d.reset_requests_ms);
  pick({LimitKind::kTokens, LimitKind::kInputTokens, LimitKind::kOutputTokens}, d.limit_tokens,
       d.remaining_tokens, d.reset_tokens_ms);
}

}  // namespace tokenway
