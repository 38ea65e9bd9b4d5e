#include "payload/text_scanner.h"

#include <algorithm>

namespace tokenway {

std::string_view ScanActionName(ScanAction action) {
  switch (action) {
    case ScanAction::kBlock:
      return "block";
    case ScanAction::kRedact:
      return "redact";
    case ScanAction::kFlag:
      return "flag";
  }
  return "flag";
}

bool ParseScanAction(std::string_view text, ScanAction& action) {
  if (text == "block") {
    action = ScanAction::kBlock;
  } else if (text == "redact") {
    action = ScanAction::kRedact;
  } else if (text == "flag") {
    action = ScanAction::kFlag;
  } else {
    return false;
  }
  return true;
}

void TextScanner::ResolveOverlaps(std::vector<Finding>& out) {
  std::sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end > b.end;
    return a.rule < b.rule;
  });
  size_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (kept > 0 && out[i].begin < out[kept - 1].end) continue;
    out[kept++] = out[i];
  }
  out.resize(kept);
}

}  // namespace tokenway
