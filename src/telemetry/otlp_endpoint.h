// Where an OTLP/HTTP exporter sends traces, from a base URL as OTEL_EXPORTER_OTLP_ENDPOINT
// gives it: "http://host:port[/prefix]" with /v1/traces appended to the path. Used by the config
// loader (validation) and the exporter; no I/O.
#pragma once

#include <string>

#include "tokenway/status.h"

namespace tokenway {

struct OtlpTarget {
  std::string host;
  std::string port;
  std::string path;  // the base path with /v1/traces appended
};

// Only plain http:// is supported; the port defaults to 80.
StatusOr<OtlpTarget> ParseOtlpEndpoint(const std::string& url);

}  // namespace tokenway
