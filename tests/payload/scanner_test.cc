// The scanners: each PII detector in context, RE2::Set patterns, invalid patterns rejected at
// build time, and normalisation catching full-width and invisible look-alikes.
#include <gtest/gtest.h>

#include <string>

#include "payload/pattern_scanner.h"
#include "payload/pii_scanner.h"
#include "payload/text_normalizer.h"

namespace tokenway {
namespace {

std::unique_ptr<PiiScanner> AllDetectors() {
  std::vector<std::pair<std::string, ScanAction>> d;
  for (const auto& n : PiiDetectorNames()) d.emplace_back(n, ScanAction::kRedact);
  auto s = PiiScanner::Create(d);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return std::move(*s);
}

// The detector names found in `text`, space-separated, with the source spans they cover.
std::string Detect(const TextScanner& scanner, const std::string& text) {
  NormalizedText norm;
  NormalizeText(text, norm);
  std::vector<Finding> findings;
  scanner.Scan(norm, findings);
  std::string out;
  for (const Finding& f : findings) {
    if (!out.empty()) out += ' ';
    out += scanner.rules()[f.rule].name + "=" + text.substr(f.begin, f.end - f.begin);
  }
  return out;
}

TEST(PiiScanner, FindsEachDetectorInProse) {
  auto s = AllDetectors();
  EXPECT_EQ(Detect(*s, "write to jane.doe+x@example.co.uk today"),
            "email=jane.doe+x@example.co.uk");
  EXPECT_EQ(Detect(*s, "card 4111 1111 1111 1111, exp 12/29"), "payment_card=4111 1111 1111 1111");
  EXPECT_EQ(Detect(*s, "card 4111 1111 1111 1112 is not valid"), "");
  EXPECT_EQ(Detect(*s, "IBAN DE89 3704 0044 0532 0130 00 please"),
            "iban=DE89 3704 0044 0532 0130 00");
  EXPECT_EQ(Detect(*s, "ssn 123-45-6789."), "us_ssn=123-45-6789");
  EXPECT_EQ(Detect(*s, "ssn 666-45-6789."), "");
  EXPECT_EQ(Detect(*s, "host 10.0.12.7 is down"), "ipv4=10.0.12.7");
  EXPECT_EQ(Detect(*s, "host 2001:db8:85a3::8a2e:370:7334 is up"),
            "ipv6=2001:db8:85a3::8a2e:370:7334");
  EXPECT_EQ(Detect(*s, "call +1 415 555 2671 now"), "phone=+1 415 555 2671");
  EXPECT_EQ(Detect(*s, "key sk-proj-abcdefghijklmnopqrstuvwx1234 ok"),
            "secret=sk-proj-abcdefghijklmnopqrstuvwx1234");
  EXPECT_EQ(Detect(*s, "aws AKIAIOSFODNN7EXAMPLE here"), "secret=AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(Detect(*s, "gh ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 x"),
            "secret=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789");
  EXPECT_EQ(Detect(*s, "-----BEGIN RSA PRIVATE KEY-----\nMIIE"),
            "secret=-----BEGIN RSA PRIVATE KEY-----");
  EXPECT_EQ(Detect(*s, "token q8Zt3LmX9vRkP2wYc7NbH4jF6sDgA1eU end"),
            "secret=q8Zt3LmX9vRkP2wYc7NbH4jF6sDgA1eU");
}

TEST(PiiScanner, PrefersTheStrictestDetectorOnTheSameSpan) {
  auto s = AllDetectors();
  // An SSN is also phone-shaped; the SSN wins.
  EXPECT_EQ(Detect(*s, "id 123-45-6789"), "us_ssn=123-45-6789");
}

TEST(PiiScanner, RejectsUnknownAndRepeatedDetectors) {
  EXPECT_FALSE(PiiScanner::Create({{"passport", ScanAction::kBlock}}).ok());
  EXPECT_FALSE(
      PiiScanner::Create({{"email", ScanAction::kBlock}, {"email", ScanAction::kFlag}}).ok());
  EXPECT_FALSE(PiiScanner::Create({}).ok());
}

TEST(Normalizer, FullWidthAndInvisibleLookAlikesAreCaught) {
  auto s = AllDetectors();
  // Full-width digits and hyphens (U+FF10.., U+FF0D) are NFKC-equal to ASCII.
  const std::string ssn =
      "ssn \xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93\xEF\xBC\x8D\xEF\xBC\x94"
      "\xEF\xBC\x95\xEF\xBC\x8D\xEF\xBC\x96\xEF\xBC\x97\xEF\xBC\x98\xEF\xBC\x99"
      " end";
  const std::string found = Detect(*s, ssn);
  ASSERT_EQ(found.rfind("us_ssn=", 0), 0u) << found;
  // The source span covers the full-width characters exactly.
  EXPECT_EQ(found.substr(7), ssn.substr(4, ssn.size() - 8));

  auto p = PatternScanner::Create({{"codename", "project\\s+falcon", ScanAction::kBlock}});
  ASSERT_TRUE(p.ok());
  // Upper case, full-width letters, a zero-width space inside the word.
  EXPECT_EQ(Detect(**p, "about PROJECT Falcon"), "codename=PROJECT Falcon");
  EXPECT_NE(Detect(**p, "about \xEF\xBD\x90roject falcon"), "");  // U+FF50 full-width p
  EXPECT_NE(Detect(**p,
                   "about proj\xE2\x80\x8B"
                   "ect falcon"),
            "");  // U+200B inside
  EXPECT_EQ(Detect(**p, "about project hawk"), "");
}

TEST(Normalizer, MapsEveryNormalisedByteBackToItsSourceCharacter) {
  NormalizedText n;
  NormalizeText(
      "A\xEF\xAC\x81"
      "b",
      n);  // "A", U+FB01 (fi ligature), "b"
  EXPECT_EQ(n.text, "afib");
  size_t b = 0, e = 0;
  n.SourceSpan(1, 3, b, e);  // "fi"
  EXPECT_EQ(b, 1u);
  EXPECT_EQ(e, 4u);
  NormalizeText(
      "ok\xFF"
      "x",
      n);  // an invalid byte becomes U+FFFD
  EXPECT_EQ(n.text, "ok\xEF\xBF\xBDx");
}

TEST(PatternScanner, MatchesManyPatternsAtOnce) {
  auto p = PatternScanner::Create({{"a", "alpha\\d+", ScanAction::kBlock},
                                   {"b", "beta", ScanAction::kRedact},
                                   {"", "gamma", ScanAction::kFlag}});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->rules()[2].name, "pattern_2");
  EXPECT_EQ(Detect(**p, "beta alpha42 gamma beta"), "b=beta a=alpha42 pattern_2=gamma b=beta");
}

TEST(PatternScanner, RejectsWhatRe2CannotRunInLinearTime) {
  auto backref = PatternScanner::Create({{"x", "(a)\\1", ScanAction::kBlock}});
  ASSERT_FALSE(backref.ok());
  EXPECT_NE(backref.status().message().find("not valid RE2"), std::string::npos);
  EXPECT_FALSE(PatternScanner::Create({{"x", "foo(?=bar)", ScanAction::kBlock}}).ok());
  EXPECT_FALSE(PatternScanner::Create({{"x", "(unclosed", ScanAction::kBlock}}).ok());
  auto empty = PatternScanner::Create({{"x", "a*", ScanAction::kBlock}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty string"), std::string::npos);
  // A classic catastrophic-backtracking pattern is fine for RE2: linear time.
  auto nested = PatternScanner::Create({{"x", "(a+)+b", ScanAction::kBlock}});
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(Detect(**nested, std::string(100000, 'a')), "");
}

}  // namespace
}  // namespace tokenway
