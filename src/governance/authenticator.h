// Authenticator: the identity phase of the request path. Turns a request's Authorization header
// into a tenant (and the key it used) or a reason for refusing it.
//
// Called on a worker thread with the header as it lies in the request buffer. The presented key
// is hashed (SHA-256) and looked up by digest; it is never copied, logged or echoed back.
#pragma once

#include <string_view>

#include "governance/tenant_registry.h"

namespace tokenway {

enum class AuthFailure : uint8_t {
  kNone,
  kMissing,     // no Authorization header and no anonymous tenant
  kMalformed,   // not "Bearer <token>", or the token has characters a key cannot have
  kTooLong,     // longer than kMaxApiKeyBytes
  kUnknownKey,  // well-formed, but no tenant has it
};
inline constexpr int kAuthFailures = 5;
std::string_view AuthFailureName(AuthFailure f);  // metric label

inline constexpr size_t kMaxApiKeyBytes = 256;

// The token of "Bearer <token>" (scheme case-insensitive, surrounding blanks ignored), or why
// there is none. Pure; safe on any input.
AuthFailure ParseBearer(std::string_view header, std::string_view& token);

struct AuthResult {
  AuthFailure failure = AuthFailure::kNone;
  const Tenant* tenant = nullptr;
  const ApiKey* key = nullptr;  // null for the anonymous tenant
};

AuthResult Authenticate(const TenantTable& table, std::string_view authorization);

}  // namespace tokenway
