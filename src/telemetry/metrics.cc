#include "telemetry/metrics.h"

#include <algorithm>

namespace tokenway {

NameSlots::NameSlots(size_t capacity, std::string first) : capacity_(capacity) {
  slots_[first] = 0;
  names_.push_back(std::move(first));
}

uint16_t NameSlots::SlotFor(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(name);
  if (it != slots_.end()) return it->second;
  if (names_.size() + 1 >= capacity_) {
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

std::vector<std::string> NameSlots::Names() const {
  std::lock_guard lock(mu_);
  return names_;
}

std::string EndpointSlotKey(std::string_view pool, std::string_view url) {
  std::string key;
  key.reserve(pool.size() + 1 + url.size());
  key.append(pool).push_back(kEndpointKeySeparator);
  key.append(url);
  return key;
}

std::string VersionSlotKey(std::string_view model, std::string_view version) {
  return EndpointSlotKey(model, version);
}

std::pair<std::string_view, std::string_view> SplitVersionSlotKey(std::string_view key) {
  size_t at = key.find(kEndpointKeySeparator);
  if (at == std::string_view::npos) return {key, {}};
  return {key.substr(0, at), key.substr(at + 1)};
}

double HistogramTotals::Quantile(double q, std::span<const double> bounds) const {
  if (count == 0 || bounds.empty()) return 0;
  const double rank = q * static_cast<double>(count);
  uint64_t below = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    const uint64_t in = buckets[i];
    if (in > 0 && static_cast<double>(below + in) >= rank) {
      const double lower = i == 0 ? 0.0 : bounds[i - 1];
      const double into = (rank - static_cast<double>(below)) / static_cast<double>(in);
      return lower + (bounds[i] - lower) * std::max(0.0, into);
    }
    below += in;
  }
  return bounds.back();
}

HistogramTotals HistogramTotals::Minus(const HistogramTotals& earlier) const {
  HistogramTotals d;
  for (size_t i = 0; i < buckets.size(); ++i) d.buckets[i] = buckets[i] - earlier.buckets[i];
  d.count = count - earlier.count;
  d.sum = sum - earlier.sum;
  return d;
}

VersionTotals VersionTotals::Minus(const VersionTotals& e) const {
  VersionTotals d;
  d.requests = requests - e.requests;
  d.errors = errors - e.errors;
  d.input_tokens = input_tokens - e.input_tokens;
  d.output_tokens = output_tokens - e.output_tokens;
  d.time_to_first_token = time_to_first_token.Minus(e.time_to_first_token);
  d.time_per_output_token = time_per_output_token.Minus(e.time_per_output_token);
  for (size_t i = 0; i < shadow.size(); ++i) d.shadow[i] = shadow[i] - e.shadow[i];
  d.shadow_output_tokens = shadow_output_tokens - e.shadow_output_tokens;
  d.shadow_time_to_first_token = shadow_time_to_first_token.Minus(e.shadow_time_to_first_token);
  d.shadow_time_per_output_token =
      shadow_time_per_output_token.Minus(e.shadow_time_per_output_token);
  return d;
}

namespace {

void AddHistogram(HistogramTotals& into, const Histogram& h, double scale) {
  for (size_t i = 0; i < into.buckets.size(); ++i) {
    into.buckets[i] += h.buckets[i].load(std::memory_order_relaxed);
  }
  into.count += h.count.load(std::memory_order_relaxed);
  into.sum += static_cast<double>(h.sum.load(std::memory_order_relaxed)) / scale;
}

}  // namespace

VersionTotals SumVersion(std::span<const WorkerMetrics* const> workers, uint16_t slot) {
  VersionTotals t;
  if (slot >= kMaxVersionSlots) return t;
  for (const WorkerMetrics* w : workers) {
    const WorkerMetrics::VersionFamilies& v = w->versions[slot];
    t.requests += v.requests.load(std::memory_order_relaxed);
    t.errors += v.errors.load(std::memory_order_relaxed);
    t.input_tokens += v.input_tokens.load(std::memory_order_relaxed);
    t.output_tokens += v.output_tokens.load(std::memory_order_relaxed);
    AddHistogram(t.time_to_first_token, v.time_to_first_token, 1e6);
    AddHistogram(t.time_per_output_token, v.time_per_output_token, 1e6);
    for (size_t i = 0; i < kShadowOutcomes; ++i) {
      t.shadow[i] += v.shadow[i].load(std::memory_order_relaxed);
    }
    t.shadow_output_tokens += v.shadow_output_tokens.load(std::memory_order_relaxed);
    AddHistogram(t.shadow_time_to_first_token, v.shadow_time_to_first_token, 1e6);
    AddHistogram(t.shadow_time_per_output_token, v.shadow_time_per_output_token, 1e6);
  }
  return t;
}

VersionTotals SumVersion(std::span<WorkerMetrics* const> workers, uint16_t slot) {
  std::vector<const WorkerMetrics*> all(workers.begin(), workers.end());
  return SumVersion(std::span<const WorkerMetrics* const>(all), slot);
}

StatusClass ClassOf(int status) {
  if (status >= 500) return StatusClass::k5xx;
  if (status >= 400) return StatusClass::k4xx;
  return StatusClass::k2xx;
}

std::string_view StatusClassName(StatusClass c) {
  switch (c) {
    case StatusClass::k2xx:
      return "2xx";
    case StatusClass::k4xx:
      return "4xx";
    case StatusClass::k5xx:
      return "5xx";
    case StatusClass::kCount:
      break;
  }
  return "other";
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

void Histogram::Observe(double value, std::span<const double> bounds, double scale) {
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  if (value > 0) sum.fetch_add(static_cast<uint64_t>(value * scale), std::memory_order_relaxed);
}

void WorkerMetrics::CountRequest(uint16_t model_slot, int status, double seconds) {
  requests[model_slot][StatusSlot(status)].fetch_add(1, std::memory_order_relaxed);
  duration[model_slot].Observe(seconds);
}

void WorkerMetrics::CountRequest(const RequestSample& sample) {
  RequestSample r = sample;
  if (r.usage_estimated) {
    // Not the model server's report: the estimate is counted apart (and feeds the pool's
    // throughput signals); every usage family sees a request without usage.
    if (r.status >= 200 && r.status < 300) {
      auto& e = estimated_tokens[r.model_slot];
      if (r.prompt_tokens > 0) e[0].fetch_add(r.prompt_tokens, std::memory_order_relaxed);
      if (r.completion_tokens > 0) e[1].fetch_add(r.completion_tokens, std::memory_order_relaxed);
      if (r.pool_slot != kNoSlot) {
        PoolFamilies& p = pools[r.pool_slot];
        if (r.prompt_tokens > 0) {
          p.input_tokens.fetch_add(r.prompt_tokens, std::memory_order_relaxed);
        }
        if (r.completion_tokens > 0) {
          p.output_tokens.fetch_add(r.completion_tokens, std::memory_order_relaxed);
        }
      }
    }
    r.prompt_tokens = r.completion_tokens = r.cached_tokens = -1;
  }
  CountRequest(r.model_slot, r.status, r.seconds);
  if (r.version_slot != kNoSlot) CountVersion(r, false);
  if (r.first_byte >= 0) time_to_first_byte[r.model_slot].Observe(r.first_byte);
  const bool ok = r.status >= 200 && r.status < 300;
  if (ok) CountTokens(r.model_slot, r.prompt_tokens, r.completion_tokens, r.cached_tokens);
  if (r.endpoint_slot != kNoSlot) {
    endpoint_responses[r.endpoint_slot][static_cast<size_t>(ClassOf(r.status))].fetch_add(
        1, std::memory_order_relaxed);
    if (ok) {
      auto& t = endpoint_tokens[r.endpoint_slot];
      if (r.prompt_tokens > 0) t[0].fetch_add(r.prompt_tokens, std::memory_order_relaxed);
      if (r.completion_tokens > 0) t[1].fetch_add(r.completion_tokens, std::memory_order_relaxed);
      if (r.cached_tokens > 0) t[2].fetch_add(r.cached_tokens, std::memory_order_relaxed);
    }
  }
  // GenAI families count requests that reached a model (a route); local refusals before routing
  // (unknown model, bad body) are not operations on a model.
  if (r.pool_slot == kNoSlot || r.operation >= kGenAiOperations) return;
  PoolFamilies& p = pools[r.pool_slot];
  if (ok && r.prompt_tokens > 0) {
    p.input_tokens.fetch_add(r.prompt_tokens, std::memory_order_relaxed);
  }
  if (ok && r.completion_tokens > 0) {
    p.output_tokens.fetch_add(r.completion_tokens, std::memory_order_relaxed);
  }
  GenAi& g = gen_ai[r.model_slot][r.operation];
  GenAiOutcome outcome = ok                ? GenAiOutcome::kOk
                         : r.status >= 500 ? GenAiOutcome::kServerError
                                           : GenAiOutcome::kClientError;
  g.duration[static_cast<size_t>(outcome)].Observe(r.seconds, kGenAiDurationBuckets, 1e6);
  if (!ok) return;
  if (r.prompt_tokens >= 0) {
    g.input_tokens.Observe(static_cast<double>(r.prompt_tokens), kGenAiTokenBuckets, 1);
  }
  if (r.completion_tokens >= 0) {
    g.output_tokens.Observe(static_cast<double>(r.completion_tokens), kGenAiTokenBuckets, 1);
  }
  // Time to first token and per output token are only observable on streams: the first event
  // carries the first token.
  if (!r.stream || r.first_byte < 0) return;
  g.time_to_first_token.Observe(r.first_byte, kGenAiTtftBuckets, 1e6);
  p.time_to_first_token.Observe(r.first_byte, kGenAiTtftBuckets, 1e6);
  if (r.completion_tokens > 1) {
    double tpot = (r.seconds - r.first_byte) / static_cast<double>(r.completion_tokens - 1);
    g.time_per_output_token.Observe(tpot, kGenAiTpotBuckets, 1e6);
    p.time_per_output_token.Observe(tpot, kGenAiTpotBuckets, 1e6);
  }
}

void WorkerMetrics::CountVersion(const RequestSample& r, bool shadow) {
  if (r.version_slot == kNoSlot || r.version_slot >= kMaxVersionSlots) return;
  VersionFamilies& v = versions[r.version_slot];
  const bool ok = r.status >= 200 && r.status < 300;
  const bool reported = ok && !r.usage_estimated;
  if (shadow) {
    Count(r.version_slot, ok ? ShadowOutcome::kCompleted : ShadowOutcome::kFailed);
    if (reported && r.completion_tokens > 0) {
      v.shadow_output_tokens.fetch_add(r.completion_tokens, std::memory_order_relaxed);
    }
  } else {
    v.requests.fetch_add(1, std::memory_order_relaxed);
    if (r.status >= 500) v.errors.fetch_add(1, std::memory_order_relaxed);
    if (reported && r.prompt_tokens > 0) {
      v.input_tokens.fetch_add(r.prompt_tokens, std::memory_order_relaxed);
    }
    if (reported && r.completion_tokens > 0) {
      v.output_tokens.fetch_add(r.completion_tokens, std::memory_order_relaxed);
    }
  }
  if (!ok || !r.stream || r.first_byte < 0) return;
  Histogram& ttft = shadow ? v.shadow_time_to_first_token : v.time_to_first_token;
  ttft.Observe(r.first_byte, kGenAiTtftBuckets, 1e6);
  if (r.completion_tokens > 1) {
    double tpot = (r.seconds - r.first_byte) / static_cast<double>(r.completion_tokens - 1);
    Histogram& h = shadow ? v.shadow_time_per_output_token : v.time_per_output_token;
    h.Observe(tpot, kGenAiTpotBuckets, 1e6);
  }
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

std::string_view ShadowOutcomeName(ShadowOutcome o) {
  switch (o) {
    case ShadowOutcome::kCompleted:
      return "completed";
    case ShadowOutcome::kFailed:
      return "failed";
    case ShadowOutcome::kSkippedConcurrency:
      return "skipped_concurrency";
    case ShadowOutcome::kSkippedSaturated:
      return "skipped_saturated";
    case ShadowOutcome::kCount:
      break;
  }
  return "unknown";
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
    case ClientError::kMethodNotAllowed:
      return "method_not_allowed";
    case ClientError::kPayloadRejected:
      return "payload_rejected";
    case ClientError::kCount:
      break;
  }
  return "unknown";
}

std::string_view EppErrorName(EppError e) {
  switch (e) {
    case EppError::kOutOfOrder:
      return "out_of_order";
    case EppError::kUnsupportedMode:
      return "unsupported_body_mode";
    case EppError::kMissingHeader:
      return "missing_pseudo_header";
    case EppError::kEmptyMessage:
      return "empty_message";
    case EppError::kStreamLimit:
      return "stream_limit";
    case EppError::kDecisionTimeout:
      return "decision_timeout";
    case EppError::kCount:
      break;
  }
  return "unknown";
}

std::string_view EppDecisionName(EppDecision d) {
  switch (d) {
    case EppDecision::kPicked:
      return "picked";
    case EppDecision::kImmediateResponse:
      return "immediate_response";
    case EppDecision::kPassthrough:
      return "passthrough";
    case EppDecision::kCount:
      break;
  }
  return "unknown";
}

std::string_view EppMessageName(size_t kind) {
  static constexpr std::string_view kNames[kEppMessageKinds] = {
      "request_headers", "response_headers", "request_body",
      "response_body",   "request_trailers", "response_trailers"};
  return kind < kEppMessageKinds ? kNames[kind] : "unknown";
}

}  // namespace tokenway
