// Fuzzes ParseConfig: any text must give a config or an error naming the file, never an
// exception or a crash; an accepted config must validate and render as valid JSON.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "control/config.h"
#include "control/config_render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto r = tokenway::ParseConfig(text, "fuzz.yaml");
  if (!r.ok()) {
    if (r.status().message().rfind("fuzz.yaml", 0) != 0) std::abort();
    return 0;
  }
  if (!tokenway::ValidateConfig(*r).ok()) std::abort();
  std::string json = tokenway::RenderConfigJson(*r);
  static simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc) != simdjson::SUCCESS) std::abort();
  return 0;
}
