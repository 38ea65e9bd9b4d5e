// Fuzzes the governance parsers that read untrusted text: the keys file (an operator's file, but
// a reload must never crash on a half-written one) and the Authorization header (any client).
// The first byte picks the parser. Invariants: every accepted key entry is well-formed, and an
// accepted bearer token is 1..kMaxApiKeyBytes visible ASCII characters.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "governance/authenticator.h"
#include "governance/keys_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    auto keys = tokenway::ParseKeysFile(text, "fuzz");
    if (keys.ok()) {
      for (const auto& k : *keys) {
        if (k.sha256.size() != 64 || k.tenant.empty() || k.id.empty()) std::abort();
        tokenway::KeyDigest d;
        if (!tokenway::ParseDigestHex(k.sha256, d)) std::abort();
      }
    }
    return 0;
  }
  std::string_view token;
  if (tokenway::ParseBearer(text, token) == tokenway::AuthFailure::kNone) {
    if (token.empty() || token.size() > tokenway::kMaxApiKeyBytes) std::abort();
    for (char c : token) {
      if (c < 0x21 || c > 0x7E) std::abort();
    }
    if (token.data() < text.data() || token.data() + token.size() > text.data() + text.size()) {
      std::abort();
    }
  }
  return 0;
}
