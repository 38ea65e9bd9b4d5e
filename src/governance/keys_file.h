// The keys file: API keys kept apart from the configuration so that they can be rotated without
// touching it (governance.keys_file). Reloaded when it changes; a file with any error is
// rejected whole and the keys loaded before keep working.
//
// Format: one key per line, three fields separated by blanks:
//     <tenant> <key id> <sha256 of the key, 64 hex digits>
// Blank lines and lines starting with '#' are ignored. Only digests are stored, never keys:
// `printf %s "$KEY" | sha256sum` gives the third field.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenway/status.h"

namespace tokenway {

struct KeyFileEntry {
  std::string tenant;
  std::string id;
  std::string sha256;  // lowercase hex
};

inline constexpr size_t kMaxKeyFileBytes = 16 * 1024 * 1024;
inline constexpr size_t kMaxKeyFileLine = 1024;

// Parses the text of a keys file; errors name `source` and the line. Pure; safe on any input.
StatusOr<std::vector<KeyFileEntry>> ParseKeysFile(std::string_view text, const std::string& source);
StatusOr<std::vector<KeyFileEntry>> LoadKeysFile(const std::string& path);

}  // namespace tokenway
