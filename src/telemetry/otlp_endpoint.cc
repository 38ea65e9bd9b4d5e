#include "telemetry/otlp_endpoint.h"

#include <string_view>

namespace tokenway {

StatusOr<OtlpTarget> ParseOtlpEndpoint(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind("https://", 0) == 0) {
    return Status::Error("'" + url + "': https is not supported; use http:// (a local collector)");
  }
  if (url.rfind(kScheme, 0) != 0) return Status::Error("'" + url + "' must start with http://");
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  OtlpTarget t;
  t.path = path + "/v1/traces";
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    t.host = authority.substr(0, colon);
    t.port = authority.substr(colon + 1);
  } else {
    t.host = authority;
    t.port = "80";
  }
  if (t.host.size() >= 2 && t.host.front() == '[' && t.host.back() == ']') {
    t.host = t.host.substr(1, t.host.size() - 2);
  }
  if (t.host.empty()) return Status::Error("'" + url + "' has no host");
  if (t.port.empty() || t.port.size() > 5 ||
      t.port.find_first_not_of("0123456789") != std::string::npos || std::stoi(t.port) == 0 ||
      std::stoi(t.port) > 65535) {
    return Status::Error("'" + url + "' has an invalid port");
  }
  return t;
}

}  // namespace tokenway
