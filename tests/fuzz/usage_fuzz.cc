// Fuzzes UsageReader: Read never crashes, and the cheap MayCarryUsage pre-check never hides a
// usage object that Read finds (for bodies without escapes, which upstreams do not use in keys).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/usage.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tokenway::UsageReader reader;
  std::string_view json(reinterpret_cast<const char*>(data), size);
  bool may = tokenway::UsageReader::MayCarryUsage(json);
  tokenway::UsageReading reading;
  bool ok = reader.Read(json, reading);
  if (ok && reading.has_usage && !may && json.find('\\') == std::string_view::npos) std::abort();
  return 0;
}
