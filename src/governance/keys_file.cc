#include "governance/keys_file.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace tokenway {

namespace {

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

}  // namespace

StatusOr<std::vector<KeyFileEntry>> ParseKeysFile(std::string_view text,
                                                  const std::string& source) {
  if (text.size() > kMaxKeyFileBytes) return Status::Error(source + ": file is too large");
  std::vector<KeyFileEntry> out;
  std::set<std::string> digests;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    auto fail = [&](const std::string& what) {
      return Status::Error(source + ":" + std::to_string(line_no) + ": " + what);
    };
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > kMaxKeyFileLine) return fail("line is too long");
    std::string_view fields[4];
    int n = 0;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i == line.size()) break;
      if (n == 0 && line[i] == '#') break;
      size_t start = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
      if (n == 4) return fail("expected 3 fields: <tenant> <key id> <sha256>");
      fields[n++] = line.substr(start, i - start);
    }
    if (n == 0) continue;
    if (n != 3) return fail("expected 3 fields: <tenant> <key id> <sha256>");
    for (int f = 0; f < 2; ++f) {
      if (fields[f].size() > 64 || !std::all_of(fields[f].begin(), fields[f].end(), IsNameChar)) {
        return fail(std::string(f == 0 ? "tenant" : "key id") +
                    " must be 1-64 characters of [A-Za-z0-9._-]");
      }
    }
    std::string digest(fields[2]);
    std::transform(digest.begin(), digest.end(), digest.begin(),
                   [](char c) { return std::tolower(static_cast<unsigned char>(c)); });
    bool hex = digest.size() == 64 && std::all_of(digest.begin(), digest.end(), [](char c) {
                 return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
               });
    if (!hex) return fail("the third field must be a SHA-256 digest (64 hex digits)");
    if (!digests.insert(digest).second) return fail("the same key is listed twice");
    out.push_back({std::string(fields[0]), std::string(fields[1]), std::move(digest)});
  }
  return out;
}

StatusOr<std::vector<KeyFileEntry>> LoadKeysFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open the keys file");
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseKeysFile(buf.str(), path);
}

}  // namespace tokenway
