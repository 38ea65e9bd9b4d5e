#include "common/sse.h"

namespace tokenway {

bool SseEventSplitter::Next(std::string_view& event) {
  std::string_view data(buf_);
  // A blank line ends an event: "\n\n", "\r\n\r\n" or "\r\r"; search for the second line end.
  size_t i = scan_ > pos_ ? scan_ : pos_;
  while (i < data.size()) {
    char c = data[i];
    if (c == '\n' || c == '\r') {
      size_t first_end = i;
      size_t j = i + 1;
      if (c == '\r' && j < data.size() && data[j] == '\n') ++j;
      if (j >= data.size()) {
        scan_ = first_end;
        return false;
      }
      char d = data[j];
      if (d == '\n' || d == '\r') {
        size_t k = j + 1;
        if (d == '\r') {
          if (k >= data.size()) {
            scan_ = first_end;
            return false;
          }
          if (data[k] == '\n') ++k;
        }
        event = data.substr(pos_, k - pos_);
        pos_ = k;
        scan_ = k;
        return true;
      }
      i = j;
      continue;
    }
    ++i;
  }
  scan_ = data.size();
  return false;
}

void SseEventSplitter::Compact() {
  if (pos_ == 0) return;
  buf_.erase(0, pos_);
  scan_ = scan_ >= pos_ ? scan_ - pos_ : 0;
  pos_ = 0;
}

std::string_view SseEventData(std::string_view event, std::string& scratch) {
  std::string_view result;
  int lines = 0;
  const char* p = event.data();
  const char* const end = p + event.size();
  while (p < end) {
    // Find the end of this line with a plain byte loop: libstdc++'s find_first_of calls memchr
    // once per byte for a two-character set, which dominated the relay's profile.
    const char* eol = p;
    while (eol < end && *eol != '\n' && *eol != '\r') ++eol;
    std::string_view line(p, static_cast<size_t>(eol - p));
    if (line.size() >= 5 && line.compare(0, 5, "data:") == 0) {
      std::string_view value = line.substr(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (lines == 0) {
        result = value;
      } else {
        if (lines == 1) scratch.assign(result);
        scratch.push_back('\n');
        scratch.append(value);
      }
      ++lines;
    }
    p = eol;
    if (p < end && *p == '\r') ++p;
    if (p < end && *p == '\n') ++p;
  }
  if (lines > 1) return scratch;
  return result;
}

}  // namespace tokenway
