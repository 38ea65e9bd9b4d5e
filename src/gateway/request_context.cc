#include "gateway/request_context.h"

#include <cmath>

#include "common/duration.h"
#include "common/openai_error.h"
#include "control/runtime.h"

namespace tokenway {

void RequestRecord::Reset() {
  std::string id = std::move(request_id);
  std::string code = std::move(error_code);
  std::string model = std::move(response_model);
  std::string flags = std::move(payload_flags);
  std::string route = std::move(semantic_route);
  *this = RequestRecord{};
  semantic_route = std::move(route);
  semantic_route.clear();
  payload_flags = std::move(flags);
  payload_flags.clear();
  request_id = std::move(id);
  request_id.clear();
  error_code = std::move(code);
  error_code.clear();
  response_model = std::move(model);
  response_model.clear();
}

EndpointLoad::EndpointLoad(EndpointState& state, int64_t prefill, int64_t decode)
    : state_(state), prefill_(prefill), decode_(decode) {
  state_.in_flight.fetch_add(1, std::memory_order_relaxed);
  state_.sent_since_scrape.fetch_add(1, std::memory_order_relaxed);
  state_.prefill_tokens.fetch_add(prefill_, std::memory_order_relaxed);
  state_.decode_tokens.fetch_add(decode_, std::memory_order_relaxed);
}

EndpointLoad::~EndpointLoad() {
  state_.prefill_tokens.fetch_sub(prefill_, std::memory_order_relaxed);
  state_.decode_tokens.fetch_sub(decode_, std::memory_order_relaxed);
  state_.in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void EndpointLoad::PrefillDone() {
  state_.prefill_tokens.fetch_sub(std::exchange(prefill_, 0), std::memory_order_relaxed);
  if (watched_ && first_event_ns_ == 0) first_event_ns_ = MonotonicNanos();
}

void EndpointLoad::Watch(const LatencyFeatures& features, double predicted_ttft_s,
                         double predicted_tpot_s) {
  watched_ = true;
  features_ = features;
  predicted_ttft_s_ = predicted_ttft_s;
  predicted_tpot_s_ = predicted_tpot_s;
  dispatched_ns_ = MonotonicNanos();
}

EndpointLoad::Learned EndpointLoad::Learn(int64_t completion_tokens) {
  Learned out;
  if (!watched_ || first_event_ns_ == 0) return out;
  watched_ = false;
  const double ttft = static_cast<double>(first_event_ns_ - dispatched_ns_) / 1e9;
  double tpot = -1;
  if (completion_tokens >= 2 && last_event_ns_ > first_event_ns_) {
    tpot = static_cast<double>(last_event_ns_ - first_event_ns_) / 1e9 /
           static_cast<double>(completion_tokens - 1);
  }
  if (!state_.latency.Learn(features_, ttft, tpot)) return out;
  if (predicted_ttft_s_ >= 0 && ttft > 0) {
    out.ttft_error = std::abs(predicted_ttft_s_ - ttft) / ttft;
  }
  if (predicted_tpot_s_ > 0 && tpot > 0) out.tpot_error = std::abs(predicted_tpot_s_ - tpot) / tpot;
  return out;
}

void RequestContext::Dispatch(const PoolEndpoint& ep) {
  EndpointState& state = *ep.state;
  const bool generates = inspected.operation != Operation::kEmbeddings;
  const int64_t decode =
      generates ? (inspected.max_tokens > 0 ? inspected.max_tokens : kDefaultDecodeTokens) : 0;
  // Only the pick's own endpoint is watched, with what it looked like before this request
  // joined it, as the scorer saw it: a retry's or a Gateway fallback's endpoint was chosen
  // without a prediction and its cached share is unknown, and a shadow copy (no parser) was not
  // picked by the scorer at all.
  const bool picked = !fallbacks.empty() && pool && &pool->endpoints[fallbacks[0]] == &ep;
  const bool watch = generates && picked && parser && pool->predicts_latency;
  LatencyFeatures features;
  if (watch) {
    features =
        ComputeLatencyFeatures(state, static_cast<double>(prompt_tokens),
                               prediction.cached_fraction, MonotonicNanos(), pool->stale_after_ns);
  }
  load.reset();
  load.emplace(state, prompt_tokens, decode);
  if (watch) load->Watch(features, prediction.ttft_s, prediction.tpot_s);
  endpoint = &ep;
  FinishFlowRelease();  // this endpoint's counters now include the request
  state.requests_total.fetch_add(1, std::memory_order_relaxed);
}

boost::asio::awaitable<bool> ClientLink::Write(std::string_view a, std::string_view b,
                                               std::string_view c, std::string_view d) {
  std::array<boost::asio::const_buffer, 4> bufs = {
      boost::asio::buffer(a.data(), a.size()), boost::asio::buffer(b.data(), b.size()),
      boost::asio::buffer(c.data(), c.size()), boost::asio::buffer(d.data(), d.size())};
  co_return co_await Write(std::span<const boost::asio::const_buffer>(bufs));
}

void RequestContext::Reset(const Runtime* snapshot, const RequestParser* request_parser,
                           const char* buffer_base, std::string_view request_body,
                           size_t body_padding, Operation op) {
  runtime = snapshot;
  parser = request_parser;
  base = buffer_base;
  body = request_body;
  padding = body_padding;
  operation = op;
  inspected.Reset();
  inspected.operation = op;
  prompt_tokens = 0;
  governance.Begin(snapshot ? snapshot->governance.get() : nullptr);
  requested_model.clear();
  may_inject_usage = true;
  outgoing = OutgoingBody{request_body, {}, {}};
  version = nullptr;
  response_model_from = {};
  response_model_to = {};
  cache.Reset();
  prediction = {};
  refreshed_runtime.reset();
  restrict_to_subset = false;
  endpoint_subset.clear();
  route = nullptr;
  pool = nullptr;
  fallbacks.clear();
  flow_release = nullptr;
  own_target.clear();
  endpoint = nullptr;
  load.reset();
  conn.reset();
  ResetResponse();
  streaming_response = false;
  stream_states.clear();
  response_applies.clear();
  stream_processing = false;
  stream_flushed = false;
  stream_ended = false;
  record.Reset();
  reply.Clear();
}

PhaseResult RequestContext::Fail(int status, std::string_view message, std::string_view code,
                                 std::string_view param, std::string_view extra_headers) {
  record.status = status;
  record.error_code.assign(code);
  reply.status = status;
  reply.body.clear();
  AppendOpenAiError(reply.body, message, ErrorTypeForStatus(status), param, code);
  reply.headers.assign(extra_headers);
  return PhaseResult::kRespond;
}

void RequestContext::FinishFlowRelease() {
  if (!flow_release) return;
  const Pool* p = std::exchange(flow_release, nullptr);
  p->flow->DispatchDone(p->flow_view(), MonotonicNanos());
}

}  // namespace tokenway
