#include "payload/stream_window.h"

#include <algorithm>

namespace tokenway {

void Placeholders::Append(const ScanRule& rule, uint32_t rule_index, std::string_view text,
                          std::string& out) {
  auto [it, inserted] = seen_.try_emplace({rule_index, std::string(text)}, 0);
  if (inserted) it->second = ++next_[rule_index];
  out.push_back('[');
  out.append(rule.placeholder);
  out.push_back('_');
  out.append(std::to_string(it->second));
  out.push_back(']');
}

void StreamWindow::Push(std::string_view delta, bool final, const TextScanner& scanner,
                        Placeholders& placeholders, size_t window, WindowRelease& out) {
  out.text.clear();
  out.blocked = false;
  out.counted.clear();
  held_.append(delta);
  const std::string& buf = held_;
  // Where the window must release up to: `window` characters before the end, on a character
  // boundary.
  size_t cut = buf.size();
  if (!final) {
    size_t chars = 0;
    while (cut > 0 && chars < window) {
      --cut;
      while (cut > 0 && (static_cast<unsigned char>(buf[cut]) & 0xC0) == 0x80) --cut;
      ++chars;
    }
  }
  NormalizeText(buf, norm_);
  size_t hold = std::string::npos;  // source offset; npos: the scanner cannot tell
  if (!final) {
    // Text before the earliest point a match could still be in progress leaves at once, even
    // inside the window, when the scanner can tell where that is.
    const size_t normalized_hold = scanner.HoldStart(norm_);
    if (normalized_hold != std::string::npos) {
      hold = buf.size();
      if (normalized_hold < norm_.text.size()) {
        size_t end = 0;
        norm_.SourceSpan(normalized_hold, normalized_hold + 1, hold, end);
      }
      cut = std::max(cut, hold);
    }
  }
  scanner.Scan(norm_, findings_);
  size_t at = 0;
  for (const Finding& f : findings_) {
    // Text after a finding does not settle it while a longer match (another detector's) could
    // still be in progress from before its end.
    const bool followed = f.end < buf.size() && (hold == std::string::npos || hold >= f.end);
    const bool settled = final || followed || f.begin < cut;
    if (!settled) continue;
    const ScanRule& rule = scanner.rules()[f.rule];
    if (rule.action == ScanAction::kBlock) {
      out.text.append(buf, at, f.begin - at);
      out.blocked = true;
      out.blocked_rule = f.rule;
      held_.clear();
      return;
    }
    if (f.begin >= cut) continue;  // judged again when it is released
    out.counted.push_back(f.rule);
    if (rule.action == ScanAction::kRedact) {
      out.text.append(buf, at, f.begin - at);
      placeholders.Append(rule, f.rule, std::string_view(buf).substr(f.begin, f.end - f.begin),
                          out.text);
      at = f.end;
      if (f.end > cut) cut = f.end;
    } else if (f.end > cut) {
      cut = f.end;  // a flagged span leaves whole
    }
  }
  if (cut > at) out.text.append(buf, at, cut - at);
  held_.erase(0, cut);
}

int RedactWhole(std::string_view text, const std::vector<Finding>& findings,
                const TextScanner& scanner, Placeholders& placeholders, std::string& out) {
  out.clear();
  size_t at = 0;
  for (size_t i = 0; i < findings.size(); ++i) {
    const Finding& f = findings[i];
    const ScanRule& rule = scanner.rules()[f.rule];
    if (rule.action == ScanAction::kBlock) return static_cast<int>(i);
    if (rule.action != ScanAction::kRedact) continue;
    out.append(text.substr(at, f.begin - at));
    placeholders.Append(rule, f.rule, text.substr(f.begin, f.end - f.begin), out);
    at = f.end;
  }
  out.append(text.substr(at));
  return -1;
}

}  // namespace tokenway
