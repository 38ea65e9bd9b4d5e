#include "bench/sse_client.h"

#include <algorithm>

namespace tokenway::bench {
namespace {

// True when `key` (with quotes and colon, e.g. "\"content\":") is followed by a non-empty string.
bool NonEmptyStringAfter(std::string_view json, std::string_view key) {
  size_t pos = 0;
  while ((pos = json.find(key, pos)) != std::string_view::npos) {
    size_t i = pos + key.size();
    while (i < json.size() && (json[i] == ' ' || json[i] == '\t')) ++i;
    if (i + 1 < json.size() && json[i] == '"' && json[i + 1] != '"') return true;
    pos = i;
  }
  return false;
}

}  // namespace

void StreamMeter::Reset() {
  splitter_.Clear();
  first_token_ns_ = last_token_ns_ = max_gap_ns_ = -1;
  token_chunks_ = events_ = 0;
  done_ = malformed_ = error_event_ = has_usage_ = false;
  usage_ = TokenUsage();
}

bool StreamMeter::CarriesToken(std::string_view json) {
  return NonEmptyStringAfter(json, "\"content\":") || NonEmptyStringAfter(json, "\"text\":");
}

void StreamMeter::Drain(int64_t now_ns) {
  std::string_view event;
  bool any = false;
  while (splitter_.Next(event)) {
    OnEvent(event, now_ns);
    any = true;
  }
  if (any) splitter_.Compact();
}

void StreamMeter::OnEvent(std::string_view event, int64_t now_ns) {
  std::string_view data = SseEventData(event, scratch_);
  // Comments (": keep-alive") and events without data carry nothing.
  size_t b = data.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return;
  data.remove_prefix(b);
  while (!data.empty() && (data.back() == ' ' || data.back() == '\r' || data.back() == '\n')) {
    data.remove_suffix(1);
  }
  ++events_;
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  if (data.front() != '{' || data.back() != '}') {
    malformed_ = true;
    return;
  }
  if (data.substr(0, 8) == "{\"error\"") error_event_ = true;
  if (CarriesToken(data)) {
    if (first_token_ns_ < 0) {
      first_token_ns_ = now_ns;
    } else {
      int64_t gap = now_ns - last_token_ns_;
      max_gap_ns_ = std::max(max_gap_ns_, gap);
      if (itl_us_) {
        itl_us_->push_back(static_cast<uint32_t>(std::min<int64_t>(gap / 1000, UINT32_MAX)));
      }
    }
    last_token_ns_ = now_ns;
    ++token_chunks_;
  }
  if (usage_reader_ && UsageReader::MayCarryUsage(data)) {
    UsageReading reading;
    if (!usage_reader_->Read(data, reading)) {
      malformed_ = true;
    } else if (reading.has_usage && reading.usage.known()) {
      usage_ = reading.usage;
      has_usage_ = true;
    }
  }
}

}  // namespace tokenway::bench
