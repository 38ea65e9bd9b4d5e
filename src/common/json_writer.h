// Minimal helpers for writing JSON text by hand on paths where building a DOM would cost more
// than the output itself (error bodies, access-log lines, admin documents).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace tokenway {

// Appends `s` as a JSON string literal (with quotes), escaping as RFC 8259 requires. Bytes that
// are not valid UTF-8 are replaced with U+FFFD so the output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

inline void AppendJsonInt(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(end - buf));
}

// Appends a number with up to 3 decimals, without locale effects.
void AppendJsonDouble(std::string& out, double v);

}  // namespace tokenway
