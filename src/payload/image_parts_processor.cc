#include "payload/image_parts_processor.h"

#include <vector>

#include "payload/json_text.h"
#include "payload/payload_metrics.h"

namespace tokenway {

std::string_view ImageActionName(ImageAction action) {
  switch (action) {
    case ImageAction::kAllow:
      return "allow";
    case ImageAction::kStrip:
      return "strip";
    case ImageAction::kRefuse:
      return "refuse";
  }
  return "allow";
}

bool ParseImageAction(std::string_view text, ImageAction& action) {
  if (text == "allow") {
    action = ImageAction::kAllow;
  } else if (text == "strip") {
    action = ImageAction::kStrip;
  } else if (text == "refuse") {
    action = ImageAction::kRefuse;
  } else {
    return false;
  }
  return true;
}

ImagePartsProcessor::ImagePartsProcessor(std::string name, ProcessorMatch match,
                                         ImagePartsConfig config)
    : MatchedProcessor(std::move(name), std::move(match)), config_(config) {
  PayloadMetrics& m = PayloadMetrics::Global();
  const char* kinds[2] = {"image_url", "data_url"};
  for (int k = 0; k < 2; ++k) {
    stripped_[k] = m.Verdict(name_, kinds[k], "strip", PayloadDirection::kRequest);
    refused_[k] = m.Verdict(name_, kinds[k], "refuse", PayloadDirection::kRequest);
  }
}

void ImagePartsProcessor::Process(const PayloadRequest& request, RequestVerdict& verdict) const {
  if (config_.action == ImageAction::kAllow && config_.data_urls == ImageAction::kAllow) return;
  thread_local RequestStructure structure;
  thread_local std::vector<JsonEdit> edits;
  if (!FindRequestStructure(request.body, structure)) return;
  edits.clear();
  for (const RequestMessage& m : structure.messages) {
    if (!m.content_is_parts) continue;
    size_t stripped = 0;
    for (const ContentPart& p : m.parts) {
      if (!p.image) continue;
      const ImageAction action = p.data_url ? config_.data_urls : config_.action;
      if (action == ImageAction::kRefuse) {
        refused_[p.data_url]->fetch_add(1, std::memory_order_relaxed);
        verdict.kind = RequestVerdict::Kind::kReject;
        verdict.status = 400;
        verdict.code = "image_not_allowed";
        verdict.message = std::string(p.data_url ? "inline (data: URL) images" : "images") +
                          " are not allowed for this model (payload processor '" + name_ + "')";
        return;
      }
      if (action == ImageAction::kStrip) {
        stripped_[p.data_url]->fetch_add(1, std::memory_order_relaxed);
        ++stripped;
      }
    }
    if (stripped == 0) continue;
    JsonEdit edit;
    edit.offset = m.content_offset;
    edit.length = m.content_length;
    if (stripped == m.parts.size()) {
      edit.replacement = R"("")";  // nothing but images: the message keeps an empty text
    } else {
      edit.replacement.push_back('[');
      bool first = true;
      for (const ContentPart& p : m.parts) {
        const ImageAction action = p.data_url ? config_.data_urls : config_.action;
        if (p.image && action == ImageAction::kStrip) continue;
        if (!first) edit.replacement.push_back(',');
        first = false;
        edit.replacement.append(request.body.substr(p.offset, p.length));
      }
      edit.replacement.push_back(']');
    }
    edits.push_back(std::move(edit));
  }
  if (edits.empty()) return;
  verdict.kind = RequestVerdict::Kind::kReplace;
  ApplyJsonEdits(request.body, edits, verdict.body);
}

}  // namespace tokenway
