// Fuzzes the payload processors' parsers and detectors: normalisation of any bytes (invalid
// UTF-8 included) maps every normalised byte back inside the source; the PII scanner's findings
// are sorted, non-overlapping source spans; the response processor never crashes on any event,
// and the whole-body form and a stream split at an input-chosen offset agree on blocking; the
// request structure's spans lie inside the body and the system-prompt and image processors never
// produce a body that does not parse; a user pattern RE2 accepts has a prefix expression RE2
// accepts too (or none).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <re2/re2.h>
#include <simdjson.h>

#include "payload/image_parts_processor.h"
#include "payload/json_text.h"
#include "payload/pattern_prefix.h"
#include "payload/payload_config.h"
#include "payload/pii_scanner.h"
#include "payload/scan_processor.h"
#include "payload/system_prompt_processor.h"
#include "payload/text_normalizer.h"

namespace {

struct Fixture {
  std::shared_ptr<const tokenway::TextScanner> scanner;
  std::unique_ptr<tokenway::ScanResponseProcessor> response;
  std::unique_ptr<tokenway::SystemPromptProcessor> system_prompt;
  std::unique_ptr<tokenway::ImagePartsProcessor> images;
  Fixture() {
    tokenway::SystemPromptConfig sp;
    sp.text = "be \"careful\"\n";
    sp.mode = tokenway::SystemPromptConfig::Mode::kEnforce;
    system_prompt =
        std::make_unique<tokenway::SystemPromptProcessor>("fuzz", tokenway::ProcessorMatch{}, sp);
    images = std::make_unique<tokenway::ImagePartsProcessor>(
        "fuzz", tokenway::ProcessorMatch{},
        tokenway::ImagePartsConfig{tokenway::ImageAction::kStrip, tokenway::ImageAction::kStrip});
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
  tokenway::RequestStructure structure;
  if (tokenway::FindRequestStructure(input, structure)) {
    auto inside = [&](size_t offset, size_t length) {
      if (offset > input.size() || length > input.size() - offset) std::abort();
    };
    inside(structure.messages_offset, structure.messages_length);
    inside(structure.prompt_offset, structure.prompt_length);
    for (const auto& m : structure.messages) {
      inside(m.offset, m.length);
      inside(m.content_offset, m.content_length);
      for (const auto& p : m.parts) inside(p.offset, p.length);
    }
    // A rewritten body of a document simdjson accepts whole is one it accepts too.
    static simdjson::dom::parser parser;
    if (parser.parse(input.data(), input.size()).error() == simdjson::SUCCESS) {
      for (const tokenway::RequestProcessor* p :
           {static_cast<const tokenway::RequestProcessor*>(f.system_prompt.get()),
            static_cast<const tokenway::RequestProcessor*>(f.images.get())}) {
        tokenway::RequestVerdict v;
        p->Process({input, nullptr, "", 0}, v);
        if (v.kind == tokenway::RequestVerdict::Kind::kReplace &&
            parser.parse(v.body).error() != simdjson::SUCCESS) {
          std::abort();
        }
      }
    }
  }
  // As a user pattern.
  if (size < 256) {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_case_sensitive(false);
    const RE2 pattern(input, o);
    std::string prefix;
    if (pattern.ok() && tokenway::PatternPrefix(input, prefix)) {
      const RE2 re(prefix, o);
      if (!re.ok() && re.error_code() != RE2::ErrorPatternTooLarge) std::abort();
    }
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
