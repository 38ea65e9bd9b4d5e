#include "common/response_model.h"

namespace tokenway {

namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

bool ReplaceResponseModel(std::string_view json, std::string_view from, std::string_view to,
                          std::string& out) {
  constexpr std::string_view kKey = "\"model\"";
  size_t at = 0;
  while ((at = json.find(kKey, at)) != std::string_view::npos) {
    size_t i = at + kKey.size();
    at = i;
    while (i < json.size() && IsSpace(json[i])) ++i;
    if (i >= json.size() || json[i] != ':') continue;  // "model" as a value, not a key
    ++i;
    while (i < json.size() && IsSpace(json[i])) ++i;
    if (i >= json.size() || json[i] != '"') return false;  // "model": null or another type
    const size_t start = i + 1;
    const size_t end = json.find('"', start);
    if (end == std::string_view::npos) return false;
    const std::string_view value = json.substr(start, end - start);
    if (value != from) return false;
    out.clear();
    out.reserve(json.size() - from.size() + to.size());
    out.append(json.substr(0, start)).append(to).append(json.substr(end));
    return true;
  }
  return false;
}

}  // namespace tokenway
