// PiiScanner: the `pii` processor's scanner — detectors for e-mail addresses, phone numbers,
// payment cards (Luhn), IBANs (mod-97), US social security numbers, IPv4/IPv6 addresses and
// secrets (API-key shapes sk-…, AKIA…, ghp_…, xox…-, private-key PEM headers, high-entropy
// tokens). Each detector is a candidate regular expression (all screened at once with RE2::Set
// over the normalised text) and a validator (pii_checks.h) that keeps only real shapes.
//
// Built on the control thread from the detectors' actions; read-only afterwards, Scan() runs on
// worker threads concurrently.
#pragma once

#include <re2/re2.h>
#include <re2/set.h>

#include <array>
#include <memory>
#include <utility>

#include "payload/text_scanner.h"
#include "tokenway/status.h"

namespace tokenway {

// The detector names, in the order they win ties: payment_card, iban, us_ssn, email, ipv4, ipv6,
// secret, phone.
const std::vector<std::string>& PiiDetectorNames();

class PiiScanner final : public TextScanner {
 public:
  // `detectors`: (name, action) pairs; each name must be in PiiDetectorNames(), at most once.
  static StatusOr<std::unique_ptr<PiiScanner>> Create(
      const std::vector<std::pair<std::string, ScanAction>>& detectors);
  void Scan(const NormalizedText& text, std::vector<Finding>& out) const override;
  // The leftmost offset from which the rest of `text` is a prefix of a possible match of an
  // enabled detector (one RE2 search with every detector's prefix pattern anchored at the end).
  size_t HoldStart(const NormalizedText& text) const override;

  enum class Check { kNone, kCard, kIban, kSsn, kIpv4, kIpv6, kPhone, kEntropy };

 private:
  PiiScanner();
  struct Candidate {
    std::unique_ptr<RE2> regex;
    uint32_t rule = 0;
    Check check = Check::kNone;
    char anchor = 0;
    std::array<bool, 256> left{};   // with an anchor: the characters a match may hold before it
    std::array<bool, 256> right{};  // and after it
  };
  // Appends the findings of candidate `c` in `input[begin, end)` (`input` is the whole text).
  void Locate(const Candidate& c, const NormalizedText& text, size_t begin, size_t end,
              std::vector<Finding>& out) const;
  RE2::Options options_;
  RE2::Set set_;
  std::vector<Candidate> candidates_;
  std::unique_ptr<RE2> prefixes_;  // alternation of the enabled detectors' prefix patterns, then $
};

}  // namespace tokenway
