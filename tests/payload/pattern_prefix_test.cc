// The prefix expressions of user patterns: every prefix of every sample match is matched whole
// by its pattern's prefix expression; text that cannot begin a match is not; syntax the
// construction does not follow, or an expression too large, falls back (the full window).
#include <gtest/gtest.h>
#include <re2/re2.h>

#include <string>
#include <vector>

#include "payload/pattern_prefix.h"

namespace tokenway {
namespace {

struct Case {
  std::string pattern;
  std::vector<std::string> matches;       // strings the pattern matches (normalised: lower case)
  std::vector<std::string> not_prefixes;  // strings no match can begin with
};

const Case kCases[] = {
    {R"(project\s+falcon)", {"project falcon", "project \t falcon"}, {"projects", "falcom", "x"}},
    {R"(\b(?:secret|internal)[- ]?code\b)",
     {"secretcode", "internal-code", "secret code"},
     {"secrets", "internal_", "code"}},
    {R"(api[_-]?key\s*[:=]\s*\w{8,})",
     {"api_key = abcdefgh12", "apikey:12345678"},
     {"apple", "api key", "api_key =!"}},
    {R"([a-z]{3}\d{3})", {"abc123", "zzz999"}, {"ab1", "abcd", "1"}},
    {R"((?i)falcon\s+\d+)", {"falcon 9", "falcon  1234"}, {"falcons", "falcon x"}},
    {R"(\QC++\E rocks)", {"c++ rocks"}, {"c+-", "c rocks"}},
    {R"(x{2,4}y)", {"xxy", "xxxy", "xxxxy"}, {"xy", "xxxxxy", "y"}},
    {R"(naïve\s+plan)", {"naïve plan"}, {"naive", "naïf"}},
    {R"(a.c|d[^a-z]f)", {"abc", "a c", "d1f", "d-f"}, {"dbf", "x"}},
    {R"(^(?P<word>top)-secret$)", {"top-secret"}, {"top_", "tops"}},
    {R"(\d{3}-\d{2}-\d{4})", {"123-45-6789"}, {"12-", "1234"}},
    {R"(ssn:?\s*[0-9]{9})", {"ssn: 123456789", "ssn123456789"}, {"ssn:a", "sn"}},
    {R"(\x{41}\p{Greek}+[[:digit:]]{2,})", {"aαβ12"}, {"ab", "aα1x"}},
    {R"(a{,2}b)", {"a{,2}b"}, {"ab", "b"}},  // {,2} is literal in RE2
    {"api_key#\\d+ -x\n", {"api_key#12 -x\n"}, {"api-", "api_key#x"}},
};

RE2::Options CaseInsensitive() {
  RE2::Options o;
  o.set_case_sensitive(false);
  o.set_log_errors(false);
  return o;
}

TEST(PatternPrefix, EveryPrefixOfEveryMatchIsAPrefixMatch) {
  for (const Case& c : kCases) {
    const RE2 pattern(c.pattern, CaseInsensitive());
    ASSERT_TRUE(pattern.ok()) << c.pattern << ": " << pattern.error();
    std::string prefix;
    ASSERT_TRUE(PatternPrefix(c.pattern, prefix)) << c.pattern;
    const RE2 re(prefix, CaseInsensitive());
    ASSERT_TRUE(re.ok()) << c.pattern << " -> " << prefix << ": " << re.error();
    for (const std::string& m : c.matches) {
      ASSERT_TRUE(RE2::FullMatch(m, pattern)) << c.pattern << " does not match " << m;
      for (size_t n = 0; n <= m.size(); ++n) {
        // Held text is whole characters (JSON-unescaped deltas).
        if (n < m.size() && (static_cast<unsigned char>(m[n]) & 0xC0) == 0x80) continue;
        EXPECT_TRUE(RE2::FullMatch(m.substr(0, n), re))
            << c.pattern << ": prefix '" << m.substr(0, n) << "' missed by " << prefix;
      }
    }
    for (const std::string& s : c.not_prefixes) {
      EXPECT_FALSE(RE2::FullMatch(s, re)) << c.pattern << ": '" << s << "' taken for a prefix";
    }
  }
}

TEST(PatternPrefix, UnfollowedOrHugeExpressionsFallBack) {
  std::string out;
  EXPECT_FALSE(PatternPrefix("(abc", out));
  EXPECT_FALSE(PatternPrefix("abc)", out));
  EXPECT_FALSE(PatternPrefix("[abc", out));
  // Past the size limit the caller keeps the full window.
  std::string nested = "a";
  for (int i = 0; i < 24; ++i) nested = "(?:" + nested + "b)+";
  ASSERT_TRUE(PatternPrefix(nested, out));
  EXPECT_FALSE(PatternPrefix(nested, out, out.size() - 1));
}

}  // namespace
}  // namespace tokenway
