// A generated, labelled corpus for the PII detectors: several thousand prompts carrying one piece
// of PII each (every detector, several languages, ASCII and full-width digits, plain and grouped
// formats) and a PII-free set of prose and code. Reports precision and recall per detector;
// asserts no false negative on the checksummed shapes (payment card, IBAN, US SSN), a recall of
// at least 98 % on the others, and false positives on the PII-free set below 0.5 %.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "payload/pii_scanner.h"
#include "payload/text_normalizer.h"

namespace tokenway {
namespace {

class Corpus {
 public:
  explicit Corpus(uint32_t seed) : rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string Digits(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + Uniform(0, 9)));
    return s;
  }
  std::string Pick(const std::vector<std::string>& v) {
    return v[static_cast<size_t>(Uniform(0, static_cast<int>(v.size()) - 1))];
  }
  static std::string Group(const std::string& s, int every, char sep) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (i > 0 && i % every == 0) out.push_back(sep);
      out.push_back(s[i]);
    }
    return out;
  }
  // ASCII digits and '-' as their full-width forms (U+FF10.., U+FF0D).
  static std::string FullWidth(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c >= '0' && c <= '9') {
        out += "\xEF\xBC";
        out.push_back(static_cast<char>(0x90 + (c - '0')));
      } else if (c == '-') {
        out += "\xEF\xBC\x8D";
      } else {
        out.push_back(c);
      }
    }
    return out;
  }

  std::string Card() {
    const int kind = Uniform(0, 3);
    std::string prefix = kind == 0   ? "4"
                         : kind == 1 ? "5" + std::to_string(Uniform(1, 5))
                         : kind == 2 ? (Uniform(0, 1) ? "34" : "37")
                                     : "6011";
    const int len = kind == 2 ? 15 : 16;
    std::string s = prefix + Digits(len - 1 - static_cast<int>(prefix.size()));
    int sum = 0;  // Luhn check digit for s
    for (int i = static_cast<int>(s.size()) - 1, k = 0; i >= 0; --i, ++k) {
      int d = s[i] - '0';
      if (k % 2 == 0) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    s.push_back(static_cast<char>('0' + (10 - sum % 10) % 10));
    const int format = Uniform(0, 2);
    if (format == 1) s = Group(s, 4, ' ');
    if (format == 2) s = Group(s, 4, '-');
    return Uniform(0, 9) == 0 ? FullWidth(s) : s;
  }
  std::string Iban() {
    static const std::vector<std::pair<std::string, int>> kCountries = {
        {"DE", 18}, {"FR", 23}, {"ES", 20}, {"IT", 23}, {"CH", 17}, {"BE", 12}, {"AT", 16}};
    const auto& [cc, bban_len] = kCountries[static_cast<size_t>(Uniform(0, 6))];
    const std::string bban = Digits(bban_len);
    int rem = 0;
    auto feed = [&rem](const std::string& s) {
      for (char c : s) {
        if (c >= '0' && c <= '9') {
          rem = (rem * 10 + (c - '0')) % 97;
        } else {
          rem = (rem * 100 + (c - 'A' + 10)) % 97;
        }
      }
    };
    feed(bban);
    feed(cc);
    feed("00");
    const int check = 98 - rem;
    std::string s = cc + (check < 10 ? "0" : "") + std::to_string(check) + bban;
    return Uniform(0, 1) ? Group(s, 4, ' ') : s;
  }
  std::string Ssn() {
    int area = Uniform(1, 899);
    if (area == 666) area = 665;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%03d-%02d-%04d", area, Uniform(1, 99), Uniform(1, 9999));
    std::string s = buf;
    return Uniform(0, 9) == 0 ? FullWidth(s) : s;
  }
  std::string Email() {
    return Pick({"anna", "j.smith", "li.wei", "m.garcia", "ops-team", "kenji_t", "o.brien+news"}) +
           std::to_string(Uniform(1, 999)) + "@" +
           Pick({"example.com", "mail.example.org", "corp.example.co.uk", "uni-example.de",
                 "example.fr"});
  }
  std::string Phone() {
    switch (Uniform(0, 3)) {
      case 0:
        return "+1 " + Digits(3) + " " + Digits(3) + " " + Digits(4);
      case 1:
        return "(" + std::to_string(Uniform(201, 989)) + ") " + Digits(3) + "-" + Digits(4);
      case 2:
        return "+44 20 " + Digits(4) + " " + Digits(4);
      default:
        return "+49 30 " + Digits(3) + " " + Digits(5);
    }
  }
  std::string Ipv4() {
    return std::to_string(Uniform(1, 223)) + "." + std::to_string(Uniform(0, 255)) + "." +
           std::to_string(Uniform(0, 255)) + "." + std::to_string(Uniform(1, 254));
  }
  std::string Ipv6() {
    auto group = [this] {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%x", Uniform(1, 0xffff));
      return std::string(buf);
    };
    std::string s = "2001:db8";
    if (Uniform(0, 1)) {
      for (int i = 0; i < 6; ++i) s += ":" + group();
    } else {
      s += ":" + group() + "::" + group() + ":" + group();
    }
    return s;
  }
  std::string Secret() {
    static const std::string kAlnum =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    auto random = [&](int n, int alphabet) {
      std::string s;
      for (int i = 0; i < n; ++i)
        s.push_back(kAlnum[static_cast<size_t>(Uniform(0, alphabet - 1))]);
      return s;
    };
    switch (Uniform(0, 4)) {
      case 0:
        return "sk-" + random(40, 62);
      case 1:
        return "AKIA" + random(16, 36);
      case 2:
        return "ghp_" + random(36, 62);
      case 3:
        return "-----BEGIN PRIVATE KEY-----";
      default:
        return random(40, 62);
    }
  }

  std::string Sentence(const std::string& pii) {
    static const std::vector<std::string> kTemplates = {
        "Please update my record, the value is {} and nothing else changed.",
        "Kannst du {} bitte in die Tabelle eintragen? Danke!",
        "Merci de vérifier {} avant vendredi, c'est urgent.",
        "Por favor, envía la confirmación a {} cuando puedas.",
        "この情報 {} を確認してください。",
        "Summarise this ticket: customer gave {} on the phone.",
        "{}",
        "log line: user=42 value={} status=ok",
    };
    std::string t = Pick(kTemplates);
    return t.replace(t.find("{}"), 2, pii);
  }

  std::string Clean() {
    static const std::vector<std::string> kClean = {
        "The meeting moved to 14:30 on 2024-03-15; bring the Q3 report (v2.1).",
        "for (int i = 0; i < 1024; ++i) { sum += values[i] * 0.5; }",
        "SELECT id, name FROM users WHERE created_at > '2023-01-01' LIMIT 100;",
        "def area(r):\n    return 3.14159 * r ** 2  # radius in cm",
        "std::vector<std::string> names; names.reserve(64); // C++20",
        "Die Rechnung über 1.299,00 EUR ist bis zum 31.12. fällig.",
        "Le train de 08h45 arrive à 12h10, voie 7.",
        "El pedido 4821 contiene 12 artículos y pesa 3,5 kg.",
        "今日は2024年5月3日です。会議は午後3時からです。",
        "git commit -m 'fix: off-by-one in parser (issue #1234)'",
        "The checksum is e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.",
        "Version 3.10.12 fixed the regression introduced in 3.10.9.",
        "{\"model\": \"llama-3-8b\", \"max_tokens\": 512, \"temperature\": 0.7}",
        "Population grew from 8,336,817 to 8,804,190 between 2010 and 2020.",
        "Use the CamelCaseIdentifierForTheRequestHandlerFactory class here.",
        "Timestamps: 1700000000 and 1700003600 are one hour apart.",
        "Call the function with a=12, b=345, c=6789 and compare.",
        "uuid 550e8400-e29b-41d4-a716-446655440000 identifies the job.",
    };
    std::string s = Pick(kClean);
    // Vary it so the set is not a handful of repeated lines.
    return s + " (" + std::to_string(Uniform(1, 99)) + " " +
           Pick({"items", "Zeilen", "lignes", "filas", "件"}) + ")";
  }

 private:
  std::mt19937 rng_;
};

TEST(PiiCorpus, PrecisionAndRecallPerDetector) {
  std::vector<std::pair<std::string, ScanAction>> d;
  for (const auto& n : PiiDetectorNames()) d.emplace_back(n, ScanAction::kRedact);
  auto scanner = PiiScanner::Create(d);
  ASSERT_TRUE(scanner.ok());
  Corpus c(20261207);
  struct Item {
    std::string text;
    std::string label;  // empty: PII-free
  };
  std::vector<Item> items;
  const int kPerDetector = 600;
  for (int i = 0; i < kPerDetector; ++i) {
    items.push_back({c.Sentence(c.Card()), "payment_card"});
    items.push_back({c.Sentence(c.Iban()), "iban"});
    items.push_back({c.Sentence(c.Ssn()), "us_ssn"});
    items.push_back({c.Sentence(c.Email()), "email"});
    items.push_back({c.Sentence(c.Phone()), "phone"});
    items.push_back({c.Sentence(c.Ipv4()), "ipv4"});
    items.push_back({c.Sentence(c.Ipv6()), "ipv6"});
    items.push_back({c.Sentence(c.Secret()), "secret"});
  }
  const int kClean = 3000;
  for (int i = 0; i < kClean; ++i) items.push_back({c.Clean(), ""});

  std::map<std::string, int> tp, fp, fn;
  int clean_flagged = 0;
  NormalizedText norm;
  std::vector<Finding> findings;
  for (const Item& item : items) {
    NormalizeText(item.text, norm);
    (*scanner)->Scan(norm, findings);
    bool found = false;
    for (const Finding& f : findings) {
      const std::string& name = (*scanner)->rules()[f.rule].name;
      if (name == item.label) {
        found = true;
      } else {
        ++fp[name];
      }
    }
    if (item.label.empty()) {
      if (!findings.empty()) {
        ++clean_flagged;
        ADD_FAILURE() << "false positive: " << item.text;
      }
    } else if (found) {
      ++tp[item.label];
    } else {
      ++fn[item.label];
      if (item.label == "payment_card" || item.label == "iban" || item.label == "us_ssn") {
        ADD_FAILURE() << "missed " << item.label << ": " << item.text;
      }
    }
  }
  std::printf("%-13s %9s %9s\n", "detector", "precision", "recall");
  for (const auto& name : PiiDetectorNames()) {
    const double precision = tp[name] + fp[name] ? double(tp[name]) / (tp[name] + fp[name]) : 1;
    const double recall = double(tp[name]) / (tp[name] + fn[name]);
    std::printf("%-13s %9.4f %9.4f\n", name.c_str(), precision, recall);
    EXPECT_GE(recall, 0.98) << name;
    EXPECT_GE(precision, 0.98) << name;
  }
  const double clean_rate = double(clean_flagged) / kClean;
  std::printf("PII-free prompts flagged: %d of %d (%.3f %%)\n", clean_flagged, kClean,
              clean_rate * 100);
  EXPECT_LT(clean_rate, 0.005);
  EXPECT_EQ(fn["payment_card"] + fn["iban"] + fn["us_ssn"], 0);
}

}  // namespace
}  // namespace tokenway
