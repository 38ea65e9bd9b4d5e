#include "governance/authenticator.h"

namespace tokenway {

std::string_view AuthFailureName(AuthFailure f) {
  switch (f) {
    case AuthFailure::kNone:
      return "none";
    case AuthFailure::kMissing:
      return "missing";
    case AuthFailure::kMalformed:
      return "malformed";
    case AuthFailure::kTooLong:
      return "too_long";
    case AuthFailure::kUnknownKey:
      return "unknown_key";
  }
  return "unknown";
}

AuthFailure ParseBearer(std::string_view h, std::string_view& token) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!h.empty() && blank(h.front())) h.remove_prefix(1);
  while (!h.empty() && blank(h.back())) h.remove_suffix(1);
  if (h.empty()) return AuthFailure::kMissing;
  constexpr std::string_view kScheme = "bearer";
  if (h.size() <= kScheme.size() || !blank(h[kScheme.size()])) return AuthFailure::kMalformed;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if ((h[i] | 0x20) != kScheme[i]) return AuthFailure::kMalformed;
  }
  h.remove_prefix(kScheme.size());
  while (!h.empty() && blank(h.front())) h.remove_prefix(1);
  if (h.empty()) return AuthFailure::kMalformed;
  if (h.size() > kMaxApiKeyBytes) return AuthFailure::kTooLong;
  for (char c : h) {
    if (c < 0x21 || c > 0x7E) return AuthFailure::kMalformed;  // visible ASCII only
  }
  token = h;
  return AuthFailure::kNone;
}

AuthResult Authenticate(const TenantTable& table, std::string_view authorization) {
  AuthResult r;
  std::string_view token;
  r.failure = ParseBearer(authorization, token);
  if (r.failure == AuthFailure::kMissing && authorization.empty() && table.anonymous()) {
    r.failure = AuthFailure::kNone;
    r.tenant = table.anonymous();
    return r;
  }
  if (r.failure != AuthFailure::kNone) return r;
  const ApiKey* key = table.FindKey(DigestOf(token));
  if (!key) {
    r.failure = AuthFailure::kUnknownKey;
    return r;
  }
  r.key = key;
  r.tenant = key->tenant;
  return r;
}

}  // namespace tokenway
