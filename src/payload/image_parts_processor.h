// ImagePartsProcessor: the `images` processor — what happens to the image content parts of a chat
// request (`{"type": "image_url", "image_url": {"url": ...}}`, `{"type": "input_image", ...}`) for
// the requests its `match` selects: `allow` them, `strip` them (the parts go, the text parts and
// every other byte of the body stay) or `refuse` the request (400 image_not_allowed). Images given
// inline as data: URLs may be treated apart from linked ones (`data_urls`). Whatever the action,
// an image part is never scanned as text by the `patterns` and `pii` processors (json_text.h).
//
// The body is rewritten once (JsonEdit): each affected message's content array rebuilt from its
// remaining parts, byte for byte. Built on the control thread; worker threads call Process()
// concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "payload/processor_match.h"
#include "tokenway/payload.h"

namespace tokenway {

enum class ImageAction { kAllow, kStrip, kRefuse };
std::string_view ImageActionName(ImageAction action);
// "allow", "strip", "refuse"; false for anything else.
bool ParseImageAction(std::string_view text, ImageAction& action);

struct ImagePartsConfig {
  ImageAction action = ImageAction::kStrip;     // every image part
  ImageAction data_urls = ImageAction::kStrip;  // images given as data: URLs (default: `action`)
};

class ImagePartsProcessor final : public MatchedProcessor<RequestProcessor> {
 public:
  ImagePartsProcessor(std::string name, ProcessorMatch match, ImagePartsConfig config);
  void Process(const PayloadRequest& request, RequestVerdict& verdict) const override;

 private:
  ImagePartsConfig config_;
  // Verdicts by kind (0: linked image_url, 1: data_url) and action (strip, refuse).
  std::atomic<uint64_t>* stripped_[2];
  std::atomic<uint64_t>* refused_[2];
};

}  // namespace tokenway
