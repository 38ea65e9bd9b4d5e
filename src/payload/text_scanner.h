// TextScanner: what the `patterns` and `pii` processors share — a set of named rules, each with an
// action, and a scan that reports where in a text each rule matches.
//
// A scanner is built once from its typed configuration on the control thread (PatternScanner,
// PiiScanner) and then only read: Scan() is called by worker threads concurrently. Scan() sees
// the text normalised (text_normalizer.h) and reports spans of the source text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "payload/text_normalizer.h"

namespace tokenway {

// What a processor does with a finding: refuse the request (or end the stream), replace the span
// by a placeholder, or let it pass and record that it was seen.
enum class ScanAction { kBlock, kRedact, kFlag };
std::string_view ScanActionName(ScanAction action);
// "block", "redact", "flag"; false for anything else.
bool ParseScanAction(std::string_view text, ScanAction& action);

struct ScanRule {
  std::string name;         // detector or pattern name: metrics, errors, x-tokenway-flagged
  std::string placeholder;  // redaction label: [EMAIL_1]
  ScanAction action = ScanAction::kRedact;
};

// A span of the source text [begin, end) that rule `rule` matched.
struct Finding {
  size_t begin = 0;
  size_t end = 0;
  uint32_t rule = 0;
};

class TextScanner {
 public:
  virtual ~TextScanner() = default;
  const std::vector<ScanRule>& rules() const { return rules_; }
  // Replaces `out` with the findings in `text`: sorted by begin, non-overlapping (of overlapping
  // findings the earlier, then the longer, then the lower rule index wins).
  virtual void Scan(const NormalizedText& text, std::vector<Finding>& out) const = 0;
  // Streams: the earliest offset of the normalised `text` from which a match could still be in
  // progress at its end (text from there on may be the beginning of a match), or npos when the
  // scanner cannot tell (then the stream window holds back its full size). Never later than the
  // start of such a match: text before it can be released at once.
  virtual size_t HoldStart(const NormalizedText& text) const { return std::string::npos; }

 protected:
  // Sorts `out` and removes findings that overlap an earlier one.
  static void ResolveOverlaps(std::vector<Finding>& out);
  std::vector<ScanRule> rules_;
};

}  // namespace tokenway
