// PII checks: the validators that turn a regular-expression candidate into a finding — Luhn for
// payment cards, ISO 13616 mod-97 for IBANs, the SSA's rules for US social security numbers,
// address syntax for IPv4/IPv6, and Shannon entropy for secret-looking tokens.
//
// Pure functions of their argument (any characters besides the ones a check counts are ignored,
// so "4111 1111-1111 1111" checks as a card). Called by PiiScanner on worker threads.
#pragma once

#include <string_view>

namespace tokenway {

// 13 to 19 digits whose Luhn checksum is 0.
bool IsPaymentCard(std::string_view candidate);
// Two letters, two check digits and 11 to 30 alphanumerics (spaces ignored) with mod-97 == 1.
bool IsIban(std::string_view candidate);
// AAA-GG-SSSS (dashes or spaces) with area not 000, 666 or 9xx, group not 00, serial not 0000.
bool IsUsSsn(std::string_view candidate);
// Four decimal octets 0..255 without leading zeros.
bool IsIpv4(std::string_view candidate);
// An IPv6 address (RFC 4291 text form) with at least three non-empty groups.
bool IsIpv6(std::string_view candidate);
// 9 to 15 digits (E.164 length) with a leading '+' or at least one separator between groups,
// and not in the US SSN layout NNN-NN-NNNN.
bool IsPhoneNumber(std::string_view candidate);
// Bits per character of the token's character distribution.
double ShannonEntropy(std::string_view token);
// A token of at least 32 characters mixing upper case, lower case and digits with an entropy of
// at least 4.2 bits per character: the shape of generated keys, not of words, hex digests or code.
bool IsHighEntropySecret(std::string_view token);

}  // namespace tokenway
