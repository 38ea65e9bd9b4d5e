// PatternScanner: the `patterns` processor's scanner — the user's regular expressions, each named
// and with an action, matched all at once with RE2::Set (linear time in the input, so no pattern
// or prompt can stall a worker) over the normalised text, case-insensitively.
//
// On streams, text leaves the window as soon as no pattern's match can be in progress in it
// (pattern_prefix.h), rather than after the full window.
//
// Built on the control thread by Create(), which rejects a pattern RE2 cannot compile (syntax,
// back-references, look-around) or one that matches the empty string; read-only afterwards.
#pragma once

#include <re2/re2.h>
#include <re2/set.h>

#include <memory>

#include "payload/text_scanner.h"
#include "tokenway/status.h"

namespace tokenway {

struct PatternRuleConfig {
  std::string name;     // default: pattern_<index>
  std::string pattern;  // RE2 syntax, matched against NFKC case-folded text
  ScanAction action = ScanAction::kBlock;
};

class PatternScanner final : public TextScanner {
 public:
  // The error names the pattern and RE2's reason.
  static StatusOr<std::unique_ptr<PatternScanner>> Create(
      const std::vector<PatternRuleConfig>& rules);
  void Scan(const NormalizedText& text, std::vector<Finding>& out) const override;
  // The leftmost offset from which the rest of `text` is a prefix of a possible match of a
  // pattern (pattern_prefix.h: every pattern's prefix expression, anchored at the end); npos
  // when a pattern's prefixes could not be derived (then the window holds back its full size).
  size_t HoldStart(const NormalizedText& text) const override;

 private:
  PatternScanner();
  RE2::Options options_;
  RE2::Set set_;
  std::vector<std::unique_ptr<RE2>> regexes_;
  std::unique_ptr<RE2> prefixes_;  // alternation of the patterns' prefix expressions, then $
};

// Appends every non-empty match of `re` in `text.text` as findings of `rule` (source spans).
void AppendMatches(const RE2& re, const NormalizedText& text, uint32_t rule,
                   std::vector<Finding>& out);

}  // namespace tokenway
