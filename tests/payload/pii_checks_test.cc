// The PII validators: valid and invalid shapes of each.
#include "payload/pii_checks.h"

#include <gtest/gtest.h>

namespace tokenway {
namespace {

TEST(PiiChecks, PaymentCardsPassLuhnOnly) {
  EXPECT_TRUE(IsPaymentCard("4111111111111111"));
  EXPECT_TRUE(IsPaymentCard("4111 1111 1111 1111"));
  EXPECT_TRUE(IsPaymentCard("5500-0000-0000-0004"));
  EXPECT_TRUE(IsPaymentCard("378282246310005"));        // Amex, 15 digits
  EXPECT_TRUE(IsPaymentCard("6011111111111117"));       // Discover
  EXPECT_FALSE(IsPaymentCard("4111111111111112"));      // checksum off by one
  EXPECT_FALSE(IsPaymentCard("411111111111"));          // 12 digits
  EXPECT_FALSE(IsPaymentCard("41111111111111111111"));  // 20 digits
}

TEST(PiiChecks, IbansPassMod97Only) {
  EXPECT_TRUE(IsIban("DE89370400440532013000"));
  EXPECT_TRUE(IsIban("de89 3704 0044 0532 0130 00"));
  EXPECT_TRUE(IsIban("GB29NWBK60161331926819"));
  EXPECT_TRUE(IsIban("FR1420041010050500013M02606"));
  EXPECT_FALSE(IsIban("DE89370400440532013001"));  // check digits do not match
  EXPECT_FALSE(IsIban("DE8937040044"));            // too short
  EXPECT_FALSE(IsIban("1289370400440532013000"));  // no country code
}

TEST(PiiChecks, SocialSecurityNumbersFollowTheSsaRules) {
  EXPECT_TRUE(IsUsSsn("123-45-6789"));
  EXPECT_TRUE(IsUsSsn("123 45 6789"));
  EXPECT_FALSE(IsUsSsn("000-45-6789"));  // area 000
  EXPECT_FALSE(IsUsSsn("666-45-6789"));  // area 666
  EXPECT_FALSE(IsUsSsn("912-45-6789"));  // area 9xx
  EXPECT_FALSE(IsUsSsn("123-00-6789"));  // group 00
  EXPECT_FALSE(IsUsSsn("123-45-0000"));  // serial 0000
  EXPECT_FALSE(IsUsSsn("123-45-678"));
}

TEST(PiiChecks, IpAddresses) {
  EXPECT_TRUE(IsIpv4("192.168.1.10"));
  EXPECT_TRUE(IsIpv4("8.8.8.8"));
  EXPECT_FALSE(IsIpv4("256.1.1.1"));
  EXPECT_FALSE(IsIpv4("01.2.3.4"));
  EXPECT_FALSE(IsIpv4("1.2.3"));
  EXPECT_TRUE(IsIpv6("2001:db8:85a3::8a2e:370:7334"));
  EXPECT_TRUE(IsIpv6("fe80:0:0:0:202:b3ff:fe1e:8329"));
  EXPECT_FALSE(IsIpv6("add::"));         // too few groups to be an address in prose
  EXPECT_FALSE(IsIpv6("2001:db8::g1"));  // not hex
}

TEST(PiiChecks, PhoneNumbersNeedE164LengthAndAShape) {
  EXPECT_TRUE(IsPhoneNumber("+1 415 555 2671"));
  EXPECT_TRUE(IsPhoneNumber("(415) 555-2671"));
  EXPECT_TRUE(IsPhoneNumber("+442071838750"));
  EXPECT_FALSE(IsPhoneNumber("4155552671"));  // bare digits: an id, not a phone number
  EXPECT_FALSE(IsPhoneNumber("555-2671"));    // too short
}

TEST(PiiChecks, HighEntropyTokensAreKeysNotWordsOrDigests) {
  EXPECT_TRUE(IsHighEntropySecret("q8Zt3LmX9vRkP2wYc7NbH4jF6sDgA1eU"));
  EXPECT_FALSE(
      IsHighEntropySecret("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  EXPECT_FALSE(IsHighEntropySecret("ThisIsAVeryLongIdentifierNameInCode"));
  EXPECT_FALSE(IsHighEntropySecret("short1Ab"));
  EXPECT_NEAR(ShannonEntropy("abcd"), 2.0, 1e-9);
  EXPECT_NEAR(ShannonEntropy("aaaa"), 0.0, 1e-9);
}

}  // namespace
}  // namespace tokenway
