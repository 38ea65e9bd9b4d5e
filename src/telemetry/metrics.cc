#include "telemetry/metrics.h"

namespace tokenway {

ModelSlots::ModelSlots() {
  names_.push_back("unknown");
  slots_["unknown"] = 0;
}

uint16_t ModelSlots::SlotFor(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(name);
  if (it != slots_.end()) return it->second;
  if (names_.size() + 1 >= kMaxModelSlots) {
    auto other = slots_.find("other");
    if (other != slots_.end()) return other->second;
    uint16_t slot = static_cast<uint16_t>(names_.size());
    names_.push_back("other");
    slots_["other"] = slot;
    return slot;
  }
  uint16_t slot = static_cast<uint16_t>(names_.size());
  names_.push_back(name);
  slots_[name] = slot;
  return slot;
}

std::vector<std::string> ModelSlots::Names() const {
  std::lock_guard lock(mu_);
  return names_;
}

size_t StatusSlot(int status) {
  for (size_t i = 0; i + 2 < kTrackedStatuses.size(); ++i) {
    if (kTrackedStatuses[i] == status) return i;
  }
  return status >= 500 ? kStatusSlots - 1 : kStatusSlots - 2;
}

int StatusForSlot(size_t slot) {
  if (slot + 2 < kTrackedStatuses.size()) return kTrackedStatuses[slot];
  return slot == kStatusSlots - 1 ? 599 : 499;  // rendered as "5xx"/"4xx" by the exposition
}

void Histogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kLatencyBuckets.size() && seconds > kLatencyBuckets[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  sum_micros.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void WorkerMetrics::CountRequest(uint16_t model_slot, int status, double seconds) {
  requests[model_slot][StatusSlot(status)].fetch_add(1, std::memory_order_relaxed);
  duration[model_slot].Observe(seconds);
}

void WorkerMetrics::CountTokens(uint16_t model_slot, int64_t prompt, int64_t completion,
                                int64_t cached) {
  if (prompt < 0 && completion < 0) {
    usage_unknown[model_slot].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (prompt > 0) prompt_tokens[model_slot].fetch_add(prompt, std::memory_order_relaxed);
  if (completion > 0) {
    completion_tokens[model_slot].fetch_add(completion, std::memory_order_relaxed);
  }
  if (cached > 0) cached_tokens[model_slot].fetch_add(cached, std::memory_order_relaxed);
}

std::string_view UpstreamErrorName(UpstreamError e) {
  switch (e) {
    case UpstreamError::kConnect:
      return "connect";
    case UpstreamError::kTimeout:
      return "timeout";
    case UpstreamError::kStatus5xx:
      return "status_5xx";
    case UpstreamError::kStatus429:
      return "status_429";
    case UpstreamError::kProtocol:
      return "protocol";
    case UpstreamError::kBrokenStream:
      return "broken_stream";
    case UpstreamError::kCount:
      break;
  }
  return "unknown";
}

std::string_view ClientErrorName(ClientError e) {
  switch (e) {
    case ClientError::kMalformedRequest:
      return "malformed_request";
    case ClientError::kHeaderTooLarge:
      return "header_too_large";
    case ClientError::kBodyTooLarge:
      return "body_too_large";
    case ClientError::kHeaderTimeout:
      return "header_timeout";
    case ClientError::kInvalidJson:
      return "invalid_body";
    case ClientError::kUnsupportedMedia:
      return "unsupported_media_type";
    case ClientError::kUnknownModel:
      return "unknown_model";
    case ClientError::kUnknownPath:
      return "unknown_path";
    case ClientError::kDisconnected:
      return "disconnected";
    case ClientError::kConnectionLimit:
      return "connection_limit";
    case ClientError::kInvalidHeader:
      return "invalid_header";
    case ClientError::kCount:
      break;
  }
  return "unknown";
}

}  // namespace tokenway
