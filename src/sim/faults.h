// Fault injection for one simulated endpoint: what share of requests fail and how, so tests can
// exercise a gateway's retries, timeouts and ejection. Set from --fault-* flags and at run time
// through POST /sim/faults (a JSON object; named fields replace, {"reset":true} clears all).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tokenway::sim {

struct FaultConfig {
  double error_rate = 0;            // share of generation requests answered 500
  double rate_limit_rate = 0;       // share answered 429
  int64_t stall_after_tokens = -1;  // stop sending after k tokens, keep the connection open
  int64_t drop_after_tokens = -1;   // reset the TCP connection after k tokens
  int64_t slow_start_ms = 0;        // wall-clock delay before a request enters the engine
  bool health_fail = false;         // GET /health answers 503
  double garbage_rate = 0;          // share answered with bytes that are not valid HTTP/JSON

  // Applies the fields named in a JSON object; on error returns a message and leaves `*this`
  // unchanged.
  std::string ApplyJson(std::string_view json);
  std::string ToJson() const;
};

}  // namespace tokenway::sim
