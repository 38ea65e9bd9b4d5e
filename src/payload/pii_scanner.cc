#include "payload/pii_scanner.h"

#include <algorithm>

#include "payload/pii_checks.h"

namespace tokenway {

namespace {

struct CandidateSpec {
  const char* detector;
  const char* pattern;  // over NFKC case-folded text
  PiiScanner::Check check;
  // Candidates whose every match contains `anchor` are located around its occurrences rather
  // than by a second pass over the whole text: a match lies within the run of `left` characters
  // before an anchor and the run of `right` characters after it. 0: no anchor.
  char anchor = 0;
  const char* left = nullptr;
  const char* right = nullptr;
};

// Card, IBAN and phone candidates may run into a following group of digits or letters; the
// validator then retries without trailing groups (TrimToValid).
const CandidateSpec kCandidates[] = {
    {"payment_card", R"(\b(?:\d[ \-]?){12,18}\d\b)", PiiScanner::Check::kCard},
    {"iban", R"(\b[a-z]{2}\d{2}(?:[a-z0-9]{11,30}|(?: [a-z0-9]{4}){2,7}(?: [a-z0-9]{1,4})?)\b)",
     PiiScanner::Check::kIban},
    {"us_ssn", R"(\b\d{3}[\- ]\d{2}[\- ]\d{4}\b)", PiiScanner::Check::kSsn},
    {"email",
     R"([a-z0-9._%+\-]+@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*\.[a-z]{2,24}\b)",
     PiiScanner::Check::kNone, '@', "abcdefghijklmnopqrstuvwxyz0123456789._%+-",
     // '_' is not in a domain but is a word character: the window takes it in so the final \b
     // sees the same neighbour as in the whole text.
     "abcdefghijklmnopqrstuvwxyz0123456789.-_"},
    {"ipv4", R"(\b(?:\d{1,3}\.){3}\d{1,3}\b)", PiiScanner::Check::kIpv4},
    {"ipv6",
     R"((?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?|::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})",
     PiiScanner::Check::kIpv6},
    {"secret",
     R"(\bsk-(?:proj-|ant-)?[a-z0-9_\-]{20,}|\b(?:akia|asia)[0-9a-z]{16}\b|\bgh[pousr]_[a-z0-9]{36,}|\bxox[abprs]-[a-z0-9\-]{10,}|-----begin (?:[a-z0-9]+ )*private key-----)",
     PiiScanner::Check::kNone},
    {"secret", R"([a-z0-9+/_\-]{32,}={0,2})", PiiScanner::Check::kEntropy},
    {"phone", R"((?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]\d{2,5}){1,4}\b)",
     PiiScanner::Check::kPhone},
};

// For each detector, a pattern every prefix of every match of its candidates matches (a superset:
// it may hold back more than needed, never less). Anchored at the end of the text when used.
struct PrefixSpec {
  const char* detector;
  const char* pattern;
};
const PrefixSpec kPrefixes[] = {
    {"payment_card", R"(\d(?:[ \-]?\d)*[ \-]?)"},
    {"us_ssn", R"(\d(?:[ \-]?\d)*[ \-]?)"},
    {"ipv4", R"(\d[\d.]*)"},
    {"ipv6", R"([0-9a-f:][0-9a-f:.]*)"},
    {"iban", R"([a-z](?:[a-z](?:\d(?:\d[a-z0-9 ]*)?)?)?)"},
    {"email", R"([a-z0-9._%+\-]+(?:@[a-z0-9.\-]*)?)"},
    {"phone", R"([+(\d][\d .\-()]*)"},
    {"secret", R"([a-z0-9+/_\-]+={0,2}|-{1,5}(?:b(?:e(?:g(?:i(?:n(?: [a-z0-9 \-]*)?)?)?)?)?)?)"},
};

bool Valid(PiiScanner::Check check, std::string_view normalized, std::string_view source) {
  switch (check) {
    case PiiScanner::Check::kNone:
      return true;
    case PiiScanner::Check::kCard:
      return IsPaymentCard(normalized);
    case PiiScanner::Check::kIban:
      return IsIban(normalized);
    case PiiScanner::Check::kSsn:
      return IsUsSsn(normalized);
    case PiiScanner::Check::kIpv4:
      return IsIpv4(normalized);
    case PiiScanner::Check::kIpv6:
      return IsIpv6(normalized);
    case PiiScanner::Check::kPhone:
      return IsPhoneNumber(normalized);
    case PiiScanner::Check::kEntropy:
      return IsHighEntropySecret(source);
  }
  return false;
}

bool Trimmable(PiiScanner::Check check) {
  return check == PiiScanner::Check::kCard || check == PiiScanner::Check::kIban;
}

}  // namespace

const std::vector<std::string>& PiiDetectorNames() {
  static const std::vector<std::string> names = {"payment_card", "iban", "us_ssn", "email",
                                                 "ipv4",         "ipv6", "secret", "phone"};
  return names;
}

namespace {
RE2::Options DetectorOptions() {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(8 << 20);
  return o;
}
}  // namespace

PiiScanner::PiiScanner() : options_(DetectorOptions()), set_(options_, RE2::UNANCHORED) {}

StatusOr<std::unique_ptr<PiiScanner>> PiiScanner::Create(
    const std::vector<std::pair<std::string, ScanAction>>& detectors) {
  if (detectors.empty()) return Status::Error("pii: at least one detector is required");
  std::unique_ptr<PiiScanner> s(new PiiScanner());
  const auto& names = PiiDetectorNames();
  // Rules in tie-breaking order, whatever the configuration's order.
  std::vector<std::pair<std::string, ScanAction>> sorted = detectors;
  for (const auto& [name, action] : sorted) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      return Status::Error("pii: unknown detector '" + name + "'");
    }
    if (std::count_if(sorted.begin(), sorted.end(),
                      [&](const auto& d) { return d.first == name; }) > 1) {
      return Status::Error("pii: detector '" + name + "' is listed twice");
    }
  }
  std::sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) {
    return std::find(names.begin(), names.end(), a.first) <
           std::find(names.begin(), names.end(), b.first);
  });
  for (const auto& [name, action] : sorted) {
    std::string placeholder;
    for (char c : name) {
      placeholder.push_back((c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c);
    }
    const auto rule = static_cast<uint32_t>(s->rules_.size());
    s->rules_.push_back({name, placeholder, action});
    for (const CandidateSpec& spec : kCandidates) {
      if (name != spec.detector) continue;
      auto re = std::make_unique<RE2>(spec.pattern, s->options_);
      std::string error;
      if (!re->ok() || s->set_.Add(spec.pattern, &error) < 0) {
        return Status::Error("pii: detector '" + name + "' failed to compile: " + re->error() +
                             error);
      }
      Candidate c;
      c.regex = std::move(re);
      c.rule = rule;
      c.check = spec.check;
      c.anchor = spec.anchor;
      if (spec.anchor != 0) {
        for (const char* k = spec.left; *k; ++k) c.left[static_cast<unsigned char>(*k)] = true;
        for (const char* k = spec.right; *k; ++k) c.right[static_cast<unsigned char>(*k)] = true;
      }
      s->candidates_.push_back(std::move(c));
    }
  }
  if (!s->set_.Compile()) return Status::Error("pii: RE2 could not compile the detector set");
  std::string prefixes;
  for (const PrefixSpec& p : kPrefixes) {
    const bool enabled = std::any_of(sorted.begin(), sorted.end(),
                                     [&](const auto& d) { return d.first == p.detector; });
    if (!enabled) continue;
    if (!prefixes.empty()) prefixes += '|';
    prefixes += std::string("(?:") + p.pattern + ")";
  }
  s->prefixes_ = std::make_unique<RE2>("(?:" + prefixes + ")$", s->options_);
  if (!s->prefixes_->ok()) {
    return Status::Error("pii: the detectors' prefix patterns failed to compile: " +
                         s->prefixes_->error());
  }
  return s;
}

size_t PiiScanner::HoldStart(const NormalizedText& text) const {
  const re2::StringPiece input(text.text.data(), text.text.size());
  re2::StringPiece m;
  if (!prefixes_->Match(input, 0, input.size(), RE2::UNANCHORED, &m, 1)) return input.size();
  return static_cast<size_t>(m.data() - input.data());
}

void PiiScanner::Locate(const Candidate& c, const NormalizedText& text, size_t begin, size_t end,
                        std::vector<Finding>& out) const {
  const re2::StringPiece input(text.text.data(), text.text.size());
  size_t pos = begin;
  re2::StringPiece m;
  while (pos < end && c.regex->Match(input, pos, end, RE2::UNANCHORED, &m, 1)) {
    const size_t nbegin = static_cast<size_t>(m.data() - input.data());
    size_t nend = nbegin + m.size();
    pos = std::max(nend, nbegin + 1);
    for (;;) {
      std::string_view candidate(text.text.data() + nbegin, nend - nbegin);
      Finding f;
      f.rule = c.rule;
      text.SourceSpan(nbegin, nend, f.begin, f.end);
      if (Valid(c.check, candidate, text.source.substr(f.begin, f.end - f.begin))) {
        out.push_back(f);
        break;
      }
      if (!Trimmable(c.check)) break;
      const size_t sep = candidate.find_last_of(" -.");
      if (sep == std::string_view::npos || sep < 8) break;
      nend = nbegin + sep;
    }
  }
}

void PiiScanner::Scan(const NormalizedText& text, std::vector<Finding>& out) const {
  out.clear();
  std::vector<int> hits;
  if (!set_.Match(re2::StringPiece(text.text.data(), text.text.size()), &hits)) return;
  std::sort(hits.begin(), hits.end());
  const std::string_view input = text.text;
  for (int i : hits) {
    const Candidate& c = candidates_[i];
    if (c.anchor == 0) {
      Locate(c, text, 0, input.size(), out);
      continue;
    }
    // Only the windows around the anchors: every match lies inside one, so the matches found
    // are the same as a pass over the whole text would find (RE2 still sees the characters
    // around a window for \b).
    size_t from = 0;
    size_t window_begin = 0, window_end = 0;
    bool open = false;
    while (from < input.size()) {
      const size_t a = input.find(c.anchor, from);
      if (a == std::string_view::npos) break;
      size_t l = a;
      while (l > 0 && c.left[static_cast<unsigned char>(input[l - 1])]) --l;
      size_t r = a + 1;
      while (r < input.size() && c.right[static_cast<unsigned char>(input[r])]) ++r;
      if (open && l <= window_end) {
        window_end = std::max(window_end, r);
      } else {
        if (open) Locate(c, text, window_begin, window_end, out);
        window_begin = l;
        window_end = r;
        open = true;
      }
      from = a + 1;
    }
    if (open) Locate(c, text, window_begin, window_end, out);
  }
  ResolveOverlaps(out);
}

}  // namespace tokenway
