// Fuzzes RequestInspector::Inspect for all three operations, and RewriteForUsage: whenever a
// streaming request is accepted, the rewritten body must be accepted too, with include_usage
// true and every other extracted field unchanged (the gateway forwards that body upstream).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/request_inspector.h"

namespace {

constexpr size_t kPadding = 64;

bool InspectPadded(tokenway::RequestInspector& inspector, tokenway::Operation op,
                   std::string_view body, std::string& buf, tokenway::InspectedRequest& out,
                   tokenway::InspectError& error) {
  buf.assign(body);
  buf.append(kPadding, '\0');
  return inspector.Inspect(op, buf.data(), body.size(), kPadding, out, error);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tokenway::RequestInspector inspector;
  static tokenway::InspectedRequest req;
  static tokenway::InspectedRequest again;
  static tokenway::InspectError error;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string buf;
  std::string rewritten;
  std::string buf2;
  for (auto op : {tokenway::Operation::kChatCompletions, tokenway::Operation::kCompletions,
                  tokenway::Operation::kEmbeddings}) {
    if (!InspectPadded(inspector, op, body, buf, req, error)) {
      if (error.code.empty() || error.message.empty()) std::abort();
      continue;
    }
    if (req.has_stream_options && req.stream_options_offset + req.stream_options_length > size) {
      std::abort();
    }
    if (!req.stream) continue;
    tokenway::RewriteForUsage(body, req, rewritten);
    if (!InspectPadded(inspector, op, rewritten, buf2, again, error)) std::abort();
    if (!again.include_usage || !again.stream || again.model != req.model ||
        again.prompt_text != req.prompt_text || again.max_tokens != req.max_tokens ||
        again.user != req.user || again.message_count != req.message_count) {
      std::abort();
    }
  }
  return 0;
}
