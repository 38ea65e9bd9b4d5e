// Fuzzes the Kubernetes watch-stream splitter and the event, list and status decoders: never
// crash or hang, never keep more than the limit of a value, and every decoded object has a
// name and a resourceVersion (what the reflector relies on).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "control/kube_objects.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the chunk size, so event boundaries fall anywhere in the reads.
  size_t chunk = 1 + data[0] % 64;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  constexpr size_t kLimit = 4096;
  tokenway::WatchStreamSplitter splitter(kLimit);
  tokenway::KubeJsonDecoder decoder;
  for (size_t at = 0; at < text.size(); at += chunk) {
    splitter.Feed(text.substr(at, chunk), [&](tokenway::WatchStreamSplitter::Piece piece,
                                              std::string_view value) {
      if (value.size() > kLimit) std::abort();
      if (piece != tokenway::WatchStreamSplitter::Piece::kValue) return;
      for (auto kind : {tokenway::KubeKind::kPod, tokenway::KubeKind::kInferencePool,
                        tokenway::KubeKind::kResourceClaim, tokenway::KubeKind::kResourceSlice,
                        tokenway::KubeKind::kInferenceObjective}) {
        tokenway::WatchEvent ev;
        std::string error;
        if (decoder.ParseEvent(value, kind, ev, error)) {
          if (ev.type != tokenway::WatchEventType::kError && ev.resource_version.empty()) {
            std::abort();
          }
          bool object = ev.type != tokenway::WatchEventType::kError &&
                        ev.type != tokenway::WatchEventType::kBookmark;
          if (object && (ev.key.empty() || ev.key.back() == '/')) std::abort();
        } else if (error.empty()) {
          std::abort();
        }
        tokenway::KubeListPage page;
        error.clear();
        if (decoder.ParseList(value, kind, page, error) && page.resource_version.empty()) {
          std::abort();
        }
      }
      tokenway::KubeStatus status;
      decoder.ParseStatus(value, status);
    });
    if (splitter.pending() > kLimit) std::abort();
  }
  return 0;
}
