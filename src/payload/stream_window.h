// StreamWindow: the sliding window a response processor scans a stream's text through. Text
// arrives in deltas (one per SSE event and channel: a choice's content or one tool call's
// arguments); the window keeps back at most `window` characters and releases text as soon as it
// cannot be part of a match any more, so a match split across events is still found and, when it
// is at most `window` characters long, none of its bytes is released before it is judged.
//
// Text also leaves before the window is full when the scanner can tell that no match can be in
// progress there (TextScanner::HoldStart: the PII detectors and the user patterns hold back only
// a tail that could still begin a match, typically the last word or digit group). A finding is
// judged ("settled") when text follows it, when the stream ends, or when it starts before the point
// where the window must release text. Then `block` stops the stream (the text before the finding is
// still released), `redact` releases a placeholder instead of the span, `flag` counts it. One
// StreamWindow per channel per stream, used by one worker thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "payload/text_scanner.h"

namespace tokenway {

// Placeholder numbering within one request or stream: the same text of the same rule gets the
// same [EMAIL_1] every time it is seen.
class Placeholders {
 public:
  // Appends the placeholder for (`rule`, `text`) to `out`.
  void Append(const ScanRule& rule, uint32_t rule_index, std::string_view text, std::string& out);

 private:
  std::map<std::pair<uint32_t, std::string>, uint32_t> seen_;
  std::map<uint32_t, uint32_t> next_;
};

// What one push released.
struct WindowRelease {
  std::string text;      // released text, redactions applied
  bool blocked = false;  // a block finding: `text` is what preceded it
  uint32_t blocked_rule = 0;
  std::vector<uint32_t> counted;  // rules of findings released (redacted or flagged) this push
};

class StreamWindow {
 public:
  // Appends `delta` and releases what may leave; `final`: the channel ends, release everything.
  void Push(std::string_view delta, bool final, const TextScanner& scanner,
            Placeholders& placeholders, size_t window, WindowRelease& out);
  const std::string& held() const { return held_; }

 private:
  std::string held_;
  NormalizedText norm_;
  std::vector<Finding> findings_;
};

// Replaces the findings' spans of `text` by placeholders (redact) into `out`; returns the first
// block finding's index or -1 (then `out` is incomplete). Flag findings pass unchanged.
int RedactWhole(std::string_view text, const std::vector<Finding>& findings,
                const TextScanner& scanner, Placeholders& placeholders, std::string& out);

}  // namespace tokenway
