#include "payload/pii_checks.h"

#include <arpa/inet.h>

#include <array>
#include <cmath>
#include <string>

namespace tokenway {

namespace {
bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsAlnum(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
}  // namespace

bool IsPaymentCard(std::string_view candidate) {
  int digits[19];
  int n = 0;
  for (char c : candidate) {
    if (!IsDigit(c)) continue;
    if (n == 19) return false;
    digits[n++] = c - '0';
  }
  if (n < 13) return false;
  int sum = 0;
  for (int i = n - 1, k = 0; i >= 0; --i, ++k) {
    int d = digits[i];
    if (k % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 == 0;
}

bool IsIban(std::string_view candidate) {
  std::string compact;
  for (char c : candidate) {
    if (c == ' ') continue;
    if (!IsAlnum(c)) return false;
    compact.push_back((c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c);
  }
  if (compact.size() < 15 || compact.size() > 34) return false;
  if (!(compact[0] >= 'A' && compact[0] <= 'Z') || !(compact[1] >= 'A' && compact[1] <= 'Z') ||
      !IsDigit(compact[2]) || !IsDigit(compact[3])) {
    return false;
  }
  // Move the first four characters to the end; letters count as 10..35; the number mod 97 is 1.
  int rem = 0;
  for (size_t i = 0; i < compact.size(); ++i) {
    const char c = compact[(i + 4) % compact.size()];
    if (IsDigit(c)) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else {
      const int v = c - 'A' + 10;
      rem = (rem * 100 + v) % 97;
    }
  }
  return rem == 1;
}

bool IsUsSsn(std::string_view candidate) {
  std::array<int, 9> d{};
  size_t n = 0;
  for (char c : candidate) {
    if (IsDigit(c)) {
      if (n == 9) return false;
      d[n++] = c - '0';
    } else if (c != '-' && c != ' ') {
      return false;
    }
  }
  if (n != 9) return false;
  const int area = d[0] * 100 + d[1] * 10 + d[2];
  const int group = d[3] * 10 + d[4];
  const int serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
  return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

bool IsIpv4(std::string_view candidate) {
  int octets = 0;
  size_t i = 0;
  while (i <= candidate.size()) {
    size_t start = i;
    int v = 0;
    while (i < candidate.size() && IsDigit(candidate[i])) v = v * 10 + (candidate[i++] - '0');
    const size_t len = i - start;
    if (len == 0 || len > 3 || v > 255 || (len > 1 && candidate[start] == '0')) return false;
    ++octets;
    if (i == candidate.size()) break;
    if (candidate[i] != '.') return false;
    ++i;
  }
  return octets == 4;
}

bool IsIpv6(std::string_view candidate) {
  if (candidate.size() > 45) return false;
  std::string text(candidate);
  unsigned char addr[16];
  if (inet_pton(AF_INET6, text.c_str(), addr) != 1) return false;
  int groups = 0;
  bool in_group = false;
  for (char c : candidate) {
    if (c == ':' || c == '.') {
      in_group = false;
    } else if (!in_group) {
      in_group = true;
      ++groups;
    }
  }
  return groups >= 3;
}

bool IsPhoneNumber(std::string_view candidate) {
  // NNN-NN-NNNN is the SSN layout, not a telephone numbering plan's.
  if (candidate.size() == 11 && (candidate[3] == '-' || candidate[3] == ' ') &&
      (candidate[6] == '-' || candidate[6] == ' ')) {
    return false;
  }
  int digits = 0;
  bool separated = false;
  bool plus = !candidate.empty() && candidate.front() == '+';
  for (char c : candidate) {
    if (IsDigit(c)) {
      ++digits;
    } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') {
      separated = true;
    }
  }
  return digits >= 9 && digits <= 15 && (plus || separated);
}

double ShannonEntropy(std::string_view token) {
  if (token.empty()) return 0;
  std::array<int, 256> counts{};
  for (char c : token) ++counts[static_cast<unsigned char>(c)];
  double h = 0;
  const double n = static_cast<double>(token.size());
  for (int c : counts) {
    if (c == 0) continue;
    const double p = c / n;
    h -= p * std::log2(p);
  }
  return h;
}

bool IsHighEntropySecret(std::string_view token) {
  if (token.size() < 32) return false;
  bool upper = false, lower = false, digit = false;
  for (char c : token) {
    upper |= c >= 'A' && c <= 'Z';
    lower |= c >= 'a' && c <= 'z';
    digit |= IsDigit(c);
  }
  return upper && lower && digit && ShannonEntropy(token) >= 4.2;
}

}  // namespace tokenway
