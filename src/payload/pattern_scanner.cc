#include "payload/pattern_scanner.h"

#include "payload/pattern_prefix.h"

namespace tokenway {

namespace {
RE2::Options PatternOptions() {
  RE2::Options o;
  o.set_case_sensitive(false);
  o.set_log_errors(false);
  o.set_max_mem(8 << 20);
  return o;
}
}  // namespace

PatternScanner::PatternScanner() : options_(PatternOptions()), set_(options_, RE2::UNANCHORED) {}

StatusOr<std::unique_ptr<PatternScanner>> PatternScanner::Create(
    const std::vector<PatternRuleConfig>& rules) {
  if (rules.empty()) return Status::Error("patterns: at least one pattern is required");
  std::unique_ptr<PatternScanner> s(new PatternScanner());
  for (size_t i = 0; i < rules.size(); ++i) {
    const PatternRuleConfig& r = rules[i];
    const std::string name = r.name.empty() ? "pattern_" + std::to_string(i) : r.name;
    auto re = std::make_unique<RE2>(r.pattern, s->options_);
    if (!re->ok()) {
      return Status::Error("pattern '" + name + "' (" + r.pattern +
                           ") is not valid RE2: " + re->error());
    }
    if (RE2::PartialMatch("", *re)) {
      return Status::Error("pattern '" + name + "' (" + r.pattern + ") matches the empty string");
    }
    std::string error;
    if (s->set_.Add(r.pattern, &error) < 0) {
      return Status::Error("pattern '" + name + "' (" + r.pattern + ") is not valid RE2: " + error);
    }
    std::string placeholder;
    for (char c : name) {
      placeholder.push_back((c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c);
    }
    s->rules_.push_back({name, placeholder, r.action});
    s->regexes_.push_back(std::move(re));
  }
  if (!s->set_.Compile()) return Status::Error("patterns: RE2 could not compile the pattern set");
  // Early release on streams: without every pattern's prefix expression the window holds back
  // its full size, which is still correct.
  std::string prefixes;
  bool derived = true;
  for (const PatternRuleConfig& r : rules) {
    std::string prefix;
    if (!PatternPrefix(r.pattern, prefix)) {
      derived = false;
      break;
    }
    if (!prefixes.empty()) prefixes += '|';
    prefixes += "(?:" + prefix + ")";
  }
  if (derived) {
    auto re = std::make_unique<RE2>("(?:" + prefixes + ")$", s->options_);
    if (re->ok()) s->prefixes_ = std::move(re);
  }
  return s;
}

void AppendMatches(const RE2& re, const NormalizedText& text, uint32_t rule,
                   std::vector<Finding>& out) {
  const re2::StringPiece input(text.text.data(), text.text.size());
  size_t pos = 0;
  re2::StringPiece m;
  while (pos < input.size() && re.Match(input, pos, input.size(), RE2::UNANCHORED, &m, 1)) {
    const size_t nbegin = static_cast<size_t>(m.data() - input.data());
    const size_t nend = nbegin + m.size();
    if (m.empty()) {
      pos = nbegin + 1;
      continue;
    }
    Finding f;
    f.rule = rule;
    text.SourceSpan(nbegin, nend, f.begin, f.end);
    out.push_back(f);
    pos = nend;
  }
}

size_t PatternScanner::HoldStart(const NormalizedText& text) const {
  if (!prefixes_) return std::string::npos;
  const re2::StringPiece input(text.text.data(), text.text.size());
  re2::StringPiece m;
  if (!prefixes_->Match(input, 0, input.size(), RE2::UNANCHORED, &m, 1)) return input.size();
  return static_cast<size_t>(m.data() - input.data());
}

void PatternScanner::Scan(const NormalizedText& text, std::vector<Finding>& out) const {
  out.clear();
  std::vector<int> hits;
  if (!set_.Match(re2::StringPiece(text.text.data(), text.text.size()), &hits)) return;
  for (int i : hits) AppendMatches(*regexes_[i], text, static_cast<uint32_t>(i), out);
  ResolveOverlaps(out);
}

}  // namespace tokenway
