// Fuzzes SseEventSplitter with random splits and compactions: the events handed out followed by
// the pending bytes must equal the input exactly, each event must end with a blank line, and the
// events must not depend on how the bytes were split. SseEventData runs on every event.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../support/fuzz_split.h"
#include "common/sse.h"

namespace {

std::vector<std::string> Split(std::string_view input, tokenway::fuzz::SplitRng* rng,
                               std::string& rest) {
  tokenway::SseEventSplitter s;
  std::vector<std::string> events;
  std::string scratch;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t piece = rng ? rng->Piece(input.size() - pos) : input.size() - pos;
    s.Append(input.substr(pos, piece));
    pos += piece;
    std::string_view ev;
    while (s.Next(ev)) {
      if (ev.empty() || (ev.back() != '\n' && ev.back() != '\r')) std::abort();
      std::string_view payload = tokenway::SseEventData(ev, scratch);
      if (payload.size() > ev.size()) std::abort();
      events.emplace_back(ev);
    }
    if (!rng || (rng->Next() & 1)) s.Compact();
  }
  rest.assign(s.pending());
  if (s.buffered() != rest.size()) std::abort();
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string whole_rest;
  auto whole = Split(input, nullptr, whole_rest);
  tokenway::fuzz::SplitRng rng(data, size);
  std::string split_rest;
  auto split = Split(input, &rng, split_rest);
  std::string joined;
  for (const auto& e : split) joined += e;
  joined += split_rest;
  if (joined != input) std::abort();
  if (split != whole || split_rest != whole_rest) std::abort();
  return 0;
}
