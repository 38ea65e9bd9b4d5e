#include "gateway/epp_stream.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/verb.hpp>
#include <cctype>
#include <charconv>

#include "common/duration.h"
#include "common/io_buffer.h"
#include "common/openai_error.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"

namespace tokenway {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using envoy::config::core::v3::HeaderValue;
using envoy::config::core::v3::HeaderValueOption;
using envoy::service::ext_proc::v3::CommonResponse;
using envoy::service::ext_proc::v3::HeaderMutation;
using envoy::service::ext_proc::v3::HttpBody;
using BodySendMode = envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;

namespace {

// GIE's chunk size for bodies sent back in FULL_DUPLEX_STREAMED mode (below gRPC's 64 KiB).
constexpr size_t kChunkBytes = 62000;
// Answers queued per stream before reading pauses (back-pressure from a slow Gateway).
constexpr size_t kMaxQueuedAnswers = 16;
// An SSE event longer than this is not held for rewriting.
constexpr size_t kMaxPendingEventBytes = 4 * 1024 * 1024;
constexpr std::string_view kDestinationKey = "x-gateway-destination-endpoint";
constexpr std::string_view kSubsetKey = "x-gateway-destination-endpoint-subset";
constexpr std::string_view kServedKey = "x-gateway-destination-endpoint-served";
constexpr std::string_view kLbNamespace = "envoy.lb";
constexpr std::string_view kSubsetNamespace = "envoy.lb.subset_hint";

std::string_view PathOf(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::optional<Operation> OperationFor(std::string_view path) {
  if (path == "/v1/chat/completions") return Operation::kChatCompletions;
  if (path == "/v1/completions") return Operation::kCompletions;
  if (path == "/v1/embeddings") return Operation::kEmbeddings;
  return std::nullopt;
}

// Envoy sends values in raw_value (bytes) when its send_header_raw_value feature is on, else
// in value.
std::string_view ValueOf(const HeaderValue& h) {
  return h.raw_value().empty() ? std::string_view(h.value()) : std::string_view(h.raw_value());
}

void SetHeader(HeaderMutation* m, std::string_view key, std::string_view value) {
  HeaderValueOption* o = m->add_set_headers();
  o->mutable_header()->mutable_key()->assign(key);
  o->mutable_header()->mutable_raw_value()->assign(value);
  o->set_append_action(HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
}

// "Name: value\r\n" lines (a LocalReply's or governance's extra headers) as mutations; Envoy
// wants lower-case names.
void SetHeaderLines(HeaderMutation* m, std::string_view lines) {
  std::string name;
  while (!lines.empty()) {
    size_t end = lines.find("\r\n");
    std::string_view line = lines.substr(0, end);
    lines = end == std::string_view::npos ? std::string_view() : lines.substr(end + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    name.assign(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    SetHeader(m, name, value);
  }
}

void SetDestinationMetadata(envoy::service::ext_proc::v3::ProcessingResponse* r,
                            std::string_view destination) {
  auto& lb = (*r->mutable_dynamic_metadata()->mutable_fields())[std::string(kLbNamespace)];
  auto& value = (*lb.mutable_struct_value()->mutable_fields())[std::string(kDestinationKey)];
  value.mutable_string_value()->assign(destination);
}

// "a, b,c" → {"a", "b", "c"} appended to `out`.
void SplitList(std::string_view text, std::vector<std::string>& out) {
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
  }
}

bool IsBuffered(int mode) {
  return mode == BodySendMode::BUFFERED || mode == BodySendMode::BUFFERED_PARTIAL;
}

}  // namespace

EppStream::EppStream(Worker& worker, std::shared_ptr<EppStreamShared> shared,
                     grpc::CallbackServerContext* rpc)
    : worker_(worker),
      shared_(std::move(shared)),
      rpc_(rpc),
      parser_(UINT32_MAX, UINT64_MAX),
      ctx_(worker),
      deadline_timer_(worker.io()) {
  WorkerMetrics& m = worker_.metrics();
  m.epp_streams.fetch_add(1, std::memory_order_relaxed);
  m.epp_streams_total.fetch_add(1, std::memory_order_relaxed);
  reading_ = true;
  StartRead(&req_);
}

EppStream::~EppStream() {
  worker_.metrics().epp_streams.fetch_sub(1, std::memory_order_relaxed);
  shared_->open_streams.fetch_sub(1, std::memory_order_relaxed);
}

// --- gRPC threads ---------------------------------------------------------------------------

void EppStream::OnReadDone(bool ok) {
  // An unchanged response chunk is answered right here when the worker armed the fast path.
  if (ok && req_.request_case() == Request::kResponseBody) {
    uint8_t armed = kEchoArmed;
    if (echo_.compare_exchange_strong(armed, kEchoBusy, std::memory_order_acq_rel) &&
        EchoOnGrpcThread()) {
      return;
    }
  }
  // The call's context lives only until OnDone: whether it was cancelled is read here.
  const bool cancelled = !ok && rpc_->IsCancelled();
  asio::post(worker_.io(), [this, ok, cancelled] { HandleRead(ok, cancelled); });
}

void EppStream::OnCancel() {
  asio::post(worker_.io(), [this] { HandleCancel(); });
}

void EppStream::OnDone() {
  asio::post(worker_.io(), [this] { HandleDone(); });
}

// --- worker thread: reading -----------------------------------------------------------------

void EppStream::HandleRead(bool ok, bool cancelled) {
  reading_ = false;
  if (!ok) {
    // Envoy half-closed the stream (or it broke; OnCancel says which).
    peer_closed_ = true;
    if (!begun_ && stage_ == Stage::kRequestBody) {
      worker_.metrics().Count(ClientError::kDisconnected);
    }
    if (!phases_running_) {
      // A stream that ends in the middle of a response, or cancelled (its OnCancel may come
      // after this), lost its client; one that ends without showing the response is served.
      if (response_seen_ || cancelled) EndAsGone();
      EndRequest();
      RequestFinish(grpc::Status::OK);
    }
    MaybeDelete();
    return;
  }
  if (finish_requested_) return;  // the stream is ending; late messages are not processed
  if (!pin_) pin_.emplace(worker_);
  WorkerMetrics& m = worker_.metrics();
  // epp_messages is indexed in the oneof's order (request_headers = 2 … response_trailers = 7).
  const int kind = static_cast<int>(req_.request_case()) - Request::kRequestHeaders;
  if (kind >= 0 && kind < static_cast<int>(kEppMessageKinds)) {
    m.epp_messages[kind].fetch_add(1, std::memory_order_relaxed);
  }
  if (first_message_) {
    first_message_ = false;
    observability_ = req_.observability_mode();
    if (req_.has_protocol_config()) {
      mode_known_ = true;
      request_body_mode_ = req_.protocol_config().request_body_mode();
      response_body_mode_ = req_.protocol_config().response_body_mode();
    }
  }
  switch (req_.request_case()) {
    case Request::kRequestHeaders:
      OnRequestHeaders();
      break;
    case Request::kRequestBody:
      OnRequestBody();
      break;
    case Request::kRequestTrailers:
      OnRequestTrailers();
      break;
    case Request::kResponseHeaders:
      OnResponseHeaders();
      break;
    case Request::kResponseBody:
      OnResponseBody();
      break;
    case Request::kResponseTrailers:
      OnResponseTrailers();
      break;
    case Request::REQUEST_NOT_SET:
      ProtocolError(EppError::kEmptyMessage, "an ext_proc message carried no request");
      break;
  }
  ContinueReading();
}

void EppStream::ContinueReading() {
  if (reading_ || peer_closed_ || phases_running_ || finish_requested_ ||
      stage_ == Stage::kClosed) {
    return;
  }
  if (static_cast<size_t>(write_pending_.load(std::memory_order_relaxed)) + overflow_.size() >=
      kMaxQueuedAnswers) {
    // Too many answers unwritten: reading resumes when they are (HandleWritesDrained).
    read_paused_ = true;
    if (!AwaitDrain()) return;
  }
  read_paused_ = false;
  reading_ = true;
  StartRead(&req_);
}

void EppStream::OnRequestHeaders() {
  if (stage_ != Stage::kRequestHeaders) {
    ProtocolError(EppError::kOutOfOrder, "request_headers arrived twice on one stream");
    return;
  }
  const Runtime& rt = *pin_->get();
  const auto& headers = req_.request_headers();
  Slice method, target;
  head_.clear();
  for (const HeaderValue& h : headers.headers().headers()) {
    std::string_view name = h.key();
    std::string_view value = ValueOf(h);
    Slice n{static_cast<uint32_t>(head_.size()), static_cast<uint32_t>(name.size())};
    head_.append(name);
    Slice v{static_cast<uint32_t>(head_.size()), static_cast<uint32_t>(value.size())};
    head_.append(value);
    if (!name.empty() && name.front() == ':') {
      if (name == ":method") method = v;
      if (name == ":path") target = v;
      continue;
    }
    if (name == "traceparent") {  // not an end-to-end header: the gateway sends its own
      parser_.traceparent = v;
      ++parser_.traceparent_count;
      continue;
    }
    if (name == "content-type") parser_.content_type = v;
    if (name == "x-request-id") parser_.request_id = v;
    if (name == "authorization") parser_.authorization = v;
    if (name == "tracestate") ++parser_.tracestate_count;
    if (name == kSubsetKey && !has_subset_) {
      has_subset_ = true;
      SplitList(value, subset_);
    }
    parser_.forward_headers.push_back({n, v});
  }
  if (head_.size() > rt.config.limits.max_header_bytes) {
    worker_.metrics().Count(ClientError::kHeaderTooLarge);
    RejectEarly(431, "request headers are too large", "request_header_fields_too_large");
    return;
  }
  if (method.empty() || target.empty()) {
    worker_.metrics().Count(EppError::kMissingHeader);
    RejectEarly(400, "the request headers lack :method or :path", "malformed_request");
    return;
  }
  parser_.method = http::string_to_verb(method.in(head_.data()));
  parser_.target = target;
  path_.assign(PathOf(target.in(head_.data())));
  headers_only_ = headers.end_of_stream();
  ReadSubsetHint();
  std::optional<Operation> op = OperationFor(path_);
  if (!op) {
    AnswerPassthrough();
    return;
  }
  if (parser_.method != http::verb::post) {
    worker_.metrics().Count(ClientError::kMethodNotAllowed);
    RejectEarly(405, "method not allowed; use POST", "method_not_allowed");
    return;
  }
  operation_ = *op;
  if (headers_only_) {
    StartPhases();
    return;
  }
  if (mode_known_ && !IsBuffered(request_body_mode_) &&
      request_body_mode_ != BodySendMode::FULL_DUPLEX_STREAMED) {
    worker_.metrics().Count(EppError::kUnsupportedMode);
    RejectEarly(500,
                "the endpoint picker needs the request body in FULL_DUPLEX_STREAMED or "
                "BUFFERED mode (ext_proc processing_mode.request_body_mode)",
                "unsupported_body_mode");
    return;
  }
  stage_ = Stage::kRequestBody;
  if (IsBuffered(request_body_mode_)) {
    // BUFFERED: the headers are answered now; the body's answer carries the pick.
    Response* r = NewResponse();
    r->mutable_request_headers();
    Send(r);
  }
}

void EppStream::OnRequestBody() {
  HttpBody* b = req_.mutable_request_body();
  if (stage_ == Stage::kAnswered && passthrough_) {
    Response* r = NewResponse();
    auto* body = r->mutable_request_body();
    if (request_body_mode_ == BodySendMode::FULL_DUPLEX_STREAMED) {
      auto* sr = body->mutable_response()->mutable_body_mutation()->mutable_streamed_response();
      sr->mutable_body()->swap(*b->mutable_body());
      sr->set_end_of_stream(b->end_of_stream());
    }
    Send(r);
    return;
  }
  if (stage_ != Stage::kRequestBody) {
    ProtocolError(EppError::kOutOfOrder, stage_ == Stage::kRequestHeaders
                                             ? "request_body arrived before request_headers"
                                             : "request_body arrived after the end of the body");
    return;
  }
  ReadSubsetHint();
  const Runtime& rt = *pin_->get();
  if (body_.size() + b->body().size() > rt.config.limits.max_body_bytes) {
    worker_.metrics().Count(ClientError::kBodyTooLarge);
    RejectEarly(413, "request body is too large", "request_too_large");
    return;
  }
  body_.append(b->body());
  if (b->end_of_stream() || IsBuffered(request_body_mode_)) StartPhases();
}

void EppStream::OnRequestTrailers() {
  if (stage_ == Stage::kAnswered) {
    Response* r = NewResponse();
    r->mutable_request_trailers();
    Send(r);
    return;
  }
  if (stage_ != Stage::kRequestBody) {
    ProtocolError(EppError::kOutOfOrder, "request_trailers arrived before the request body");
    return;
  }
  // FULL_DUPLEX_STREAMED with trailers: the body ended with its last chunk; trailers close it.
  request_trailers_ = true;
  StartPhases();
}

void EppStream::ReadSubsetHint() {
  if (!req_.has_metadata_context()) return;
  const auto& namespaces = req_.metadata_context().filter_metadata();
  auto ns = namespaces.find(std::string(kSubsetNamespace));
  if (ns == namespaces.end()) return;
  auto field = ns->second.fields().find(std::string(kSubsetKey));
  if (field == ns->second.fields().end()) return;
  // The metadata is what the protocol specifies; it replaces a header hint.
  has_subset_ = true;
  subset_.clear();
  const google::protobuf::Value& v = field->second;
  if (v.has_list_value()) {
    for (const google::protobuf::Value& item : v.list_value().values()) {
      if (item.kind_case() == google::protobuf::Value::kStringValue) {
        SplitList(item.string_value(), subset_);
      }
    }
  } else if (v.kind_case() == google::protobuf::Value::kStringValue) {
    SplitList(v.string_value(), subset_);
  }
}

// --- worker thread: the request side ---------------------------------------------------------

void EppStream::StartPhases() {
  stage_ = Stage::kPicking;
  phases_running_ = true;
  const size_t size = body_.size();
  body_.append(IoBuffer::kPadding, '\0');  // simdjson reads past the end
  ctx_.Reset(pin_->get(), &parser_, head_.data(), std::string_view(body_.data(), size),
             IoBuffer::kPadding, operation_);
  // Usage injection asks the model server for a usage chunk that only a rewrite of the response
  // body can take out again: only when the Gateway sends the response body.
  ctx_.may_inject_usage = mode_known_ && response_body_mode_ != BodySendMode::NONE &&
                          response_body_mode_ != BodySendMode::GRPC;
  ctx_.restrict_to_subset = has_subset_;
  for (const std::string& s : subset_) ctx_.endpoint_subset.push_back(s);
  AssignRequestId(ctx_);
  asio::co_spawn(worker_.io(), RunPhases(this), asio::detached);
}

asio::awaitable<void> EppStream::RunPhases(EppStream* self) {
  RequestContext& ctx = self->ctx_;
  WorkerMetrics& m = self->worker_.metrics();
  BeginRequest(ctx);
  m.in_flight.fetch_add(1, std::memory_order_relaxed);
  self->begun_ = true;
  PhaseResult r = Inspect(ctx);
  if (r == PhaseResult::kContinue) r = co_await Govern(ctx);
  if (r == PhaseResult::kContinue) r = co_await ProcessPayload(ctx, *self);
  if (r == PhaseResult::kContinue) r = co_await Resolve(ctx, *self);
  if (r == PhaseResult::kContinue) r = co_await LookupCache(ctx, *self);
  if (r == PhaseResult::kContinue) r = co_await Route(ctx, *self);
  self->phases_running_ = false;
  if (self->cancelled_) {
    // The Gateway went away while the request was routed: nothing to answer.
    self->EndAsGone();
    self->EndRequest();
  } else if (r == PhaseResult::kContinue) {
    self->AnswerPick();
  } else if (r == PhaseResult::kRespond) {
    m.Count(EppDecision::kImmediateResponse);
    self->SendImmediate(ctx.reply, ctx.record.request_id);
    self->EndRequest();
  } else {
    self->EndRequest();
    self->RequestFinish(grpc::Status::OK);
  }
  if (self->peer_closed_) self->RequestFinish(grpc::Status::OK);
  self->ContinueReading();
  self->MaybeFinish();
  self->MaybeDelete();
}

void EppStream::TakeEndpoint(uint32_t index) {
  const PoolEndpoint& endpoint = ctx_.pool->endpoints[index];
  ctx_.Dispatch(endpoint);
  ctx_.record.endpoint = endpoint.url;
  ctx_.record.endpoint_slot = endpoint.metrics_slot;
}

void EppStream::AnswerPick() {
  const Runtime& rt = *ctx_.runtime;
  const Pool& pool = *ctx_.pool;
  TakeEndpoint(ctx_.fallbacks[0]);
  worker_.metrics().Count(EppDecision::kPicked);
  // The pick, then fallbacks in the scheduler's order, then other eligible candidates.
  const uint32_t limit = rt.config.epp.fallback_endpoints;
  uint32_t listed = 0;
  uint32_t chosen[FallbackList::kCapacity];
  destination_.clear();
  auto add = [&](uint32_t index) {
    for (uint32_t i = 0; i < listed; ++i) {
      if (chosen[i] == index) return;
    }
    chosen[listed++] = index;
    if (!destination_.empty()) destination_.push_back(',');
    destination_.append(pool.endpoints[index].ip_port);
  };
  for (uint32_t i = 0; i < ctx_.fallbacks.size() && listed < limit; ++i) add(ctx_.fallbacks[i]);
  for (size_t i = 0; i < ctx_.candidates.size() && listed < limit; ++i) {
    add(ctx_.candidates[i].index);
  }

  const OutgoingBody& body = ctx_.outgoing;
  const bool edited = !body.insert.empty() || ctx_.body.data() != body_.data();
  const bool duplex = !IsBuffered(request_body_mode_);
  Response* r = NewResponse();
  CommonResponse* c = headers_only_ || duplex ? r->mutable_request_headers()->mutable_response()
                                              : r->mutable_request_body()->mutable_response();
  SetHeader(c->mutable_header_mutation(), kDestinationKey, destination_);
  if (edited) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, body.size());
    SetHeader(c->mutable_header_mutation(), "content-length",
              std::string_view(digits, static_cast<size_t>(end - digits)));
  }
  c->set_clear_route_cache(true);
  SetDestinationMetadata(r, destination_);
  if (!headers_only_ && !duplex && edited) {
    std::string* b = c->mutable_body_mutation()->mutable_body();
    b->reserve(body.size());
    b->append(body.before).append(body.insert).append(body.after);
  }
  Send(r);
  if (!headers_only_ && duplex) {
    // The body goes back as streamed chunks of at most kChunkBytes, the last one ending it
    // (unless trailers follow).
    std::string_view pieces[3] = {body.before, body.insert, body.after};
    size_t left = body.size();
    Response* chunk = nullptr;
    std::string* out = nullptr;
    auto open_chunk = [&] {
      chunk = NewResponse();
      auto* sr = chunk->mutable_request_body()
                     ->mutable_response()
                     ->mutable_body_mutation()
                     ->mutable_streamed_response();
      out = sr->mutable_body();
      out->reserve(std::min(left, kChunkBytes));
    };
    auto close_chunk = [&] {
      chunk->mutable_request_body()
          ->mutable_response()
          ->mutable_body_mutation()
          ->mutable_streamed_response()
          ->set_end_of_stream(left == 0 && !request_trailers_);
      Send(chunk);
      chunk = nullptr;
    };
    if (left == 0) {
      open_chunk();
      close_chunk();
    }
    for (std::string_view piece : pieces) {
      while (!piece.empty()) {
        if (!chunk) open_chunk();
        size_t n = std::min(piece.size(), kChunkBytes - out->size());
        out->append(piece.substr(0, n));
        piece.remove_prefix(n);
        left -= n;
        if (out->size() == kChunkBytes || left == 0) close_chunk();
      }
    }
  }
  if (request_trailers_) {
    Response* t = NewResponse();
    t->mutable_request_trailers();
    Send(t);
  }
  stage_ = Stage::kAnswered;
}

void EppStream::AnswerPassthrough() {
  // A request that names no model (GET /v1/models, …) still needs a destination when the
  // Gateway routes by the header: the least loaded eligible endpoint of the first pool that has
  // one (within the subset), and the next ones as fallbacks.
  const Runtime& rt = *pin_->get();
  const int64_t now = MonotonicNanos();
  const uint32_t limit = rt.config.epp.fallback_endpoints;
  std::vector<std::pair<int64_t, const PoolEndpoint*>> eligible;
  for (const auto& pool : rt.pools) {
    for (const PoolEndpoint& ep : pool->endpoints) {
      if (!ep.state->Eligible(now)) continue;
      if (has_subset_ && std::find(subset_.begin(), subset_.end(), ep.ip_port) == subset_.end()) {
        continue;
      }
      eligible.emplace_back(ep.state->in_flight.load(std::memory_order_relaxed), &ep);
    }
    if (!eligible.empty()) break;
  }
  if (eligible.empty() && has_subset_) {
    worker_.metrics().no_endpoint.fetch_add(1, std::memory_order_relaxed);
    RejectEarly(503, "no endpoint of the subset the gateway allowed is eligible",
                "no_healthy_endpoint");
    return;
  }
  std::stable_sort(eligible.begin(), eligible.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  destination_.clear();
  for (size_t i = 0; i < eligible.size() && i < limit; ++i) {
    if (i) destination_.push_back(',');
    destination_.append(eligible[i].second->ip_port);
  }
  passthrough_ = true;
  stage_ = Stage::kAnswered;
  worker_.metrics().Count(EppDecision::kPassthrough);
  Response* r = NewResponse();
  CommonResponse* c = r->mutable_request_headers()->mutable_response();
  if (!destination_.empty()) {
    SetHeader(c->mutable_header_mutation(), kDestinationKey, destination_);
    c->set_clear_route_cache(true);
    SetDestinationMetadata(r, destination_);
  }
  Send(r);
}

void EppStream::SendImmediate(const LocalReply& reply, std::string_view request_id) {
  Response* r = NewResponse();
  auto* ir = r->mutable_immediate_response();
  ir->mutable_status()->set_code(static_cast<envoy::type::v3::StatusCode>(reply.status));
  HeaderMutation* h = ir->mutable_headers();
  SetHeader(h, "content-type", reply.content_type);
  if (!request_id.empty()) SetHeader(h, "x-request-id", request_id);
  SetHeaderLines(h, reply.headers);
  ir->mutable_body()->assign(reply.body);
  if (begun_) ir->mutable_details()->assign(ctx_.record.error_code);
  Send(r);
  stage_ = Stage::kClosed;
  RequestFinish(grpc::Status::OK);
}

std::string_view EppStream::RequestIdForReply() {
  std::string_view id = parser_.request_id.in(head_.data());
  return id.size() <= 128 ? id : std::string_view();
}

void EppStream::RejectEarly(int status, std::string_view message, std::string_view code) {
  worker_.metrics().Count(EppDecision::kImmediateResponse);
  LocalReply reply;
  reply.status = status;
  AppendOpenAiError(reply.body, message, ErrorTypeForStatus(status), {}, code);
  SendImmediate(reply, RequestIdForReply());
}

void EppStream::ProtocolError(EppError kind, std::string_view message) {
  worker_.metrics().Count(kind);
  if (stage_ == Stage::kRequestHeaders || stage_ == Stage::kRequestBody) {
    RejectEarly(400, message, "invalid_ext_proc_stream");
    return;
  }
  // The request side has been answered: no reply is possible any more.
  if (begun_ && !settled_) ctx_.record.error_code = "invalid_ext_proc_stream";
  EndRequest();
  stage_ = Stage::kClosed;
  RequestFinish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(message)));
}

// --- worker thread: the response side ------------------------------------------------------

void EppStream::MoveToServedEndpoint() {
  if (!ctx_.endpoint || !req_.has_metadata_context()) return;
  const auto& namespaces = req_.metadata_context().filter_metadata();
  auto ns = namespaces.find(std::string(kLbNamespace));
  if (ns == namespaces.end()) return;
  auto field = ns->second.fields().find(std::string(kServedKey));
  if (field == ns->second.fields().end() ||
      field->second.kind_case() != google::protobuf::Value::kStringValue) {
    return;
  }
  const std::string& served = field->second.string_value();
  if (served == ctx_.endpoint->ip_port) return;
  // The Gateway fell back to another endpoint of the list: its counters carry the request.
  const auto& endpoints = ctx_.pool->endpoints;
  for (uint32_t i = 0; i < endpoints.size(); ++i) {
    if (endpoints[i].ip_port == served) {
      TakeEndpoint(i);
      ++ctx_.record.retries;
      return;
    }
  }
}

void EppStream::OnResponseHeaders() {
  if (stage_ != Stage::kAnswered || response_seen_) {
    ProtocolError(EppError::kOutOfOrder, response_seen_
                                             ? "response_headers arrived twice on one stream"
                                             : "response_headers arrived before the request "
                                               "was answered");
    return;
  }
  response_seen_ = true;
  const auto& headers = req_.response_headers();
  Response* r = NewResponse();
  CommonResponse* c = r->mutable_response_headers()->mutable_response();
  if (passthrough_) {
    Send(r);
    return;
  }
  int status = 0;
  std::string_view content_type;
  for (const HeaderValue& h : headers.headers().headers()) {
    std::string_view value = ValueOf(h);
    if (h.key() == ":status") std::from_chars(value.data(), value.data() + value.size(), status);
    if (h.key() == "content-type") content_type = value;
  }
  MoveToServedEndpoint();
  RequestRecord& rec = ctx_.record;
  rec.status = status;
  if (ctx_.endpoint) {
    EndpointState& state = *ctx_.endpoint->state;
    WorkerMetrics& m = worker_.metrics();
    if (status >= 500) {
      m.Count(UpstreamError::kStatus5xx);
      state.RecordFailure(ctx_.runtime->config.passive_health, MonotonicNanos());
    } else if (status == 429) {
      m.Count(UpstreamError::kStatus429);
    } else {
      state.RecordSuccess();
    }
  }
  response_sse_ = content_type.substr(0, 17) == "text/event-stream";
  const bool processors = !ctx_.runtime->payload.response.empty();
  const bool duplex = response_body_mode_ == BodySendMode::FULL_DUPLEX_STREAMED;
  response_hold_ = !response_sse_ && status == 200 && processors &&
                   (duplex || response_body_mode_ == BodySendMode::BUFFERED);
  HeaderMutation* mutation = c->mutable_header_mutation();
  SetHeaderLines(mutation, ctx_.governance.headers());
  SetHeaderLines(mutation, ctx_.cache.header_line());
  if (!rec.semantic_route.empty()) {
    std::string value;
    AppendRouteHeaderValue(rec, value);
    SetHeader(mutation, "x-tokenway-route", value);
  }
  if ((response_sse_ && (rec.usage_injected || processors)) || response_hold_) {
    mutation->add_remove_headers("content-length");  // the body may change size
  }
  if (mutation->set_headers_size() == 0 && mutation->remove_headers_size() == 0) {
    c->clear_header_mutation();
  }
  Send(r);
  ctx_.events.Clear();
  response_body_.clear();
  if (headers.end_of_stream()) {
    EndRequest();
    RequestFinish(grpc::Status::OK);
    return;
  }
  // Unchanged chunks from here on are answered on gRPC's thread; the worker only reads them.
  if (!ChunkNeedsRewrite() && !observability_ && overflow_.empty()) {
    echo_.store(kEchoArmed, std::memory_order_release);
  }
}

void EppStream::OnResponseBody() {
  if (stage_ != Stage::kAnswered) {
    ProtocolError(EppError::kOutOfOrder, "response_body arrived before the request was answered");
    return;
  }
  HttpBody* b = req_.mutable_response_body();
  const bool eos = b->end_of_stream();
  const bool duplex = response_body_mode_ == BodySendMode::FULL_DUPLEX_STREAMED;
  Response* r = NewResponse();
  auto* answer = r->mutable_response_body();
  // Answers the chunk unchanged: echoed in FULL_DUPLEX_STREAMED, CONTINUE otherwise.
  auto echo = [&] {
    if (duplex) {
      auto* sr = answer->mutable_response()->mutable_body_mutation()->mutable_streamed_response();
      sr->mutable_body()->swap(*b->mutable_body());
      sr->set_end_of_stream(eos);
    }
  };
  // Answers with `bytes` in place of the chunk.
  auto replace = [&](std::string_view bytes) {
    auto* mutation = answer->mutable_response()->mutable_body_mutation();
    if (duplex) {
      mutation->mutable_streamed_response()->mutable_body()->assign(bytes);
      mutation->mutable_streamed_response()->set_end_of_stream(eos);
    } else {
      mutation->mutable_body()->assign(bytes);
    }
  };
  if (passthrough_) {
    echo();
    Send(r);
    return;
  }
  if (!response_seen_) {
    // Response headers skipped by the Gateway's processing mode: the body still tells usage.
    response_seen_ = true;
    ctx_.record.status = 200;
  }
  RequestRecord& rec = ctx_.record;
  const Runtime& rt = *ctx_.runtime;
  const std::string& chunk = b->body();
  if (!ChunkNeedsRewrite()) {
    RecordChunk(chunk, eos);
    echo();
    Send(r);
    if (eos) {
      EndRequest();
      RequestFinish(grpc::Status::OK);
    }
    return;
  }
  if (!rec.first_byte_ns && !chunk.empty()) rec.first_byte_ns = MonotonicNanos();
  rec.response_bytes += chunk.size();
  if (response_sse_) {
    SseEventSplitter& events = ctx_.events;
    events.Append(chunk);
    out_.clear();
    std::string_view event;
    auto append_processed = [this] {
      for (const std::string& e : ctx_.stream_events)
        out_.append("data: ").append(e).append("\n\n");
    };
    while (!ctx_.stream_ended && events.Next(event)) {
      StreamEventAction action = RelayStreamEvent(ctx_, event);
      if (action == StreamEventAction::kDrop) continue;
      if (action == StreamEventAction::kKeep) {
        out_.append(event);
      } else {
        append_processed();  // kEnd: the last events; every later one is dropped
      }
    }
    if (ctx_.stream_ended) {
      events.Clear();  // nothing after a processor ended the stream
    } else if (eos || events.buffered() > kMaxPendingEventBytes) {
      // The end (or an event too long to hold): what is left goes as it is, after what the
      // processors still held.
      if (eos && FinishStreamEvents(ctx_) != StreamEventAction::kKeep) append_processed();
      out_.append(events.pending());
      events.Clear();
    } else {
      events.Compact();
    }
    replace(out_);
    Send(r);
  } else {
    const bool keep = rec.status == 200 && !response_overflow_;
    if (keep && response_body_.size() + chunk.size() > rt.config.limits.max_response_bytes) {
      // Too large to hold or read: what was held goes on unchanged, usage stays unknown.
      response_overflow_ = true;
      if (response_hold_) {
        response_hold_ = false;
        response_body_.append(chunk);
        replace(response_body_);
        Send(r);
        response_body_.clear();
        if (eos) EndRequest();
        if (eos) RequestFinish(grpc::Status::OK);
        return;
      }
      response_body_.clear();
    } else if (keep) {
      response_body_.append(chunk);
    }
    {
      if (!eos) {
        if (duplex) {
          spare_.push_back(r);  // held: nothing to answer before the end
          r->Clear();
        } else {
          Send(r);  // BUFFERED_PARTIAL's first part: CONTINUE
        }
        return;
      }
      std::string_view whole = response_body_;
      switch (RelayWholeBody(ctx_, response_body_)) {
        case WholeBodyAction::kReplace:
          whole = ctx_.processed;
          break;
        case WholeBodyAction::kWithheld:
          out_.clear();
          AppendOpenAiError(out_, "the response was withheld by a response processor",
                            "upstream_error", {}, "response_withheld");
          rec.error_code = "response_withheld";
          whole = out_;
          break;
        default:
          whole = response_body_;
          break;
      }
      if (duplex) {
        // Chunks of at most kChunkBytes; the last ends the body.
        spare_.push_back(r);
        r->Clear();
        do {
          Response* part = NewResponse();
          auto* sr = part->mutable_response_body()
                         ->mutable_response()
                         ->mutable_body_mutation()
                         ->mutable_streamed_response();
          size_t n = std::min(whole.size(), kChunkBytes);
          sr->mutable_body()->assign(whole.substr(0, n));
          whole.remove_prefix(n);
          sr->set_end_of_stream(whole.empty());
          Send(part);
        } while (!whole.empty());
      } else {
        char digits[24];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, whole.size());
        SetHeader(answer->mutable_response()->mutable_header_mutation(), "content-length",
                  std::string_view(digits, static_cast<size_t>(end - digits)));
        replace(whole);
        Send(r);
      }
    }
  }
  if (eos) {
    EndRequest();
    RequestFinish(grpc::Status::OK);
  }
}

bool EppStream::ChunkNeedsRewrite() const {
  if (response_hold_) return true;
  return response_sse_ && (ctx_.record.usage_injected || !ctx_.runtime->payload.response.empty());
}

void EppStream::RecordChunk(std::string_view chunk, bool eos) {
  RequestRecord& rec = ctx_.record;
  if (!rec.first_byte_ns && !chunk.empty()) rec.first_byte_ns = MonotonicNanos();
  rec.response_bytes += chunk.size();
  if (response_sse_) {
    SseEventSplitter& events = ctx_.events;
    events.Append(chunk);
    std::string_view event;
    while (events.Next(event)) RelayStreamEvent(ctx_, event);
    if (eos || events.buffered() > kMaxPendingEventBytes) {
      events.Clear();
    } else {
      events.Compact();
    }
    return;
  }
  if (rec.status != 200 || response_overflow_) return;
  if (response_body_.size() + chunk.size() > ctx_.runtime->config.limits.max_response_bytes) {
    response_overflow_ = true;  // too large to read: usage stays unknown
    response_body_.clear();
    return;
  }
  response_body_.append(chunk);
  if (eos) RelayWholeBody(ctx_, response_body_);
}

bool EppStream::EchoOnGrpcThread() {
  // This thread owns the answer ring's producer side and the read until it hands them back.
  Reclaim();
  if (ring_tail_ - ring_reclaimed_ == kRing ||
      write_pending_.load(std::memory_order_relaxed) >= static_cast<int64_t>(kMaxQueuedAnswers)) {
    // Back-pressure: the worker takes this message and the stream's writes back.
    if (echo_.exchange(kEchoOff, std::memory_order_acq_rel) == kEchoOff) {
      asio::post(worker_.io(), [this] { HandleEchoReleased(); });  // it had revoked meanwhile
    }
    return false;
  }
  worker_.metrics().epp_messages[Request::kResponseBody - Request::kRequestHeaders].fetch_add(
      1, std::memory_order_relaxed);
  HttpBody* b = req_.mutable_response_body();
  const bool eos = b->end_of_stream();
  std::string chunk = b->body();  // for the worker's accounting
  Response* r = NewResponse();
  auto* answer = r->mutable_response_body();
  if (response_body_mode_ == BodySendMode::FULL_DUPLEX_STREAMED) {
    auto* sr = answer->mutable_response()->mutable_body_mutation()->mutable_streamed_response();
    sr->mutable_body()->swap(*b->mutable_body());
    sr->set_end_of_stream(eos);
  }
  Publish(r);
  asio::post(worker_.io(),
             [this, chunk = std::move(chunk), eos] { HandleEchoedChunk(chunk, eos); });
  if (eos) {
    // The last chunk: the worker ends the request and the stream; no more reads.
    if (echo_.exchange(kEchoOff, std::memory_order_acq_rel) == kEchoOff) {
      asio::post(worker_.io(), [this] { HandleEchoReleased(); });
    }
    return true;
  }
  StartRead(&req_);
  uint8_t busy = kEchoBusy;
  if (!echo_.compare_exchange_strong(busy, kEchoArmed, std::memory_order_acq_rel)) {
    // The worker revoked the fast path meanwhile: it takes everything back from here.
    asio::post(worker_.io(), [this] { HandleEchoReleased(); });
  }
  return true;
}

void EppStream::HandleEchoedChunk(const std::string& chunk, bool eos) {
  RecordChunk(chunk, eos);
  if (eos) {
    EndRequest();
    RequestFinish(grpc::Status::OK);
  }
  MaybeDelete();
}

void EppStream::RevokeEcho() {
  const uint8_t was = echo_.exchange(kEchoOff, std::memory_order_acq_rel);
  if (was == kEchoBusy) echo_in_flight_ = true;  // HandleEchoReleased follows
  // A read the fast path issued may still be out: its completion comes to the worker now.
  if (was != kEchoOff) reading_ = true;
}

void EppStream::HandleEchoReleased() {
  echo_in_flight_ = false;
  MaybeFinish();
  MaybeDelete();
}

void EppStream::OnResponseTrailers() {
  if (stage_ != Stage::kAnswered) {
    ProtocolError(EppError::kOutOfOrder,
                  "response_trailers arrived before the request was answered");
    return;
  }
  Response* r = NewResponse();
  r->mutable_response_trailers();
  Send(r);
  EndRequest();
  RequestFinish(grpc::Status::OK);
}

void EppStream::EndAsGone() {
  if (!begun_ || settled_ || ctx_.record.status == 499) return;
  worker_.metrics().Count(ClientError::kDisconnected);
  ctx_.record.status = 499;
  ctx_.record.error_code = "client_disconnected";
}

void EppStream::EndRequest() {
  if (!begun_ || settled_) return;
  settled_ = true;
  // A pick whose response the Gateway did not show (response processing off) was served.
  if (ctx_.record.status == 0 && stage_ == Stage::kAnswered) ctx_.record.status = 200;
  Settle(ctx_);
  worker_.metrics().in_flight.fetch_sub(1, std::memory_order_relaxed);
  Observe(ctx_);
}

// --- worker thread: the client link ----------------------------------------------------------

void EppStream::WatchClient(boost::asio::ip::tcp::socket*, boost::asio::steady_timer* queue_timer) {
  watched_timer_ = queue_timer;
  if (cancelled_ && queue_timer) queue_timer->cancel();
  const Duration bound = ctx_.runtime->config.epp.message_timeout;
  if (!queue_timer || bound.count() <= 0 || deadline_armed_ || deadline_passed_) return;
  deadline_armed_ = true;
  const int64_t left = ctx_.record.start_ns + bound.count() - MonotonicNanos();
  deadline_timer_.expires_after(std::chrono::nanoseconds(std::max<int64_t>(left, 0)));
  deadline_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // cancelled: the wait ended first (the stream may be gone)
    deadline_armed_ = false;
    deadline_passed_ = true;
    if (watched_timer_) watched_timer_->cancel();
  });
}

void EppStream::StopWatching() {
  watched_timer_ = nullptr;
  if (deadline_armed_) {
    deadline_armed_ = false;
    deadline_timer_.cancel();
  }
}

asio::awaitable<bool> EppStream::Write(std::span<const asio::const_buffer>) {
  co_return false;
}

asio::awaitable<bool> EppStream::Respond(const LocalReply& reply, std::string_view request_id) {
  SendImmediate(reply, request_id);
  co_return true;
}

// --- worker thread: writing and the end of the stream ----------------------------------------

void EppStream::Reclaim() {
  const uint64_t written = ring_head_.load(std::memory_order_acquire);
  while (ring_reclaimed_ < written) {
    Response* r = ring_[ring_reclaimed_ % kRing];
    r->Clear();
    spare_.push_back(r);
    ++ring_reclaimed_;
  }
}

EppStream::Response* EppStream::NewResponse() {
  Reclaim();
  if (!spare_.empty()) {
    Response* r = spare_.back();
    spare_.pop_back();
    return r;
  }
  owned_.push_back(std::make_unique<Response>());
  return owned_.back().get();
}

void EppStream::Send(Response* r) {
  if (observability_ || finish_requested_ || cancelled_ ||
      write_failed_.load(std::memory_order_relaxed)) {
    r->Clear();
    spare_.push_back(r);
    return;
  }
  Reclaim();
  if (!overflow_.empty() || ring_tail_ - ring_reclaimed_ == kRing) {
    overflow_.push_back(r);
    if (AwaitDrain()) asio::post(worker_.io(), [this] { HandleWritesDrained(); });
    return;
  }
  Publish(r);
}

void EppStream::Publish(Response* r) {
  ring_[ring_tail_ % kRing] = r;
  ++ring_tail_;
  // 0 → 1: no write is outstanding and OnWriteDone starts none; this thread starts it.
  if (write_pending_.fetch_add(1, std::memory_order_seq_cst) == 0) StartWrite(r);
}

void EppStream::OnWriteDone(bool ok) {
  // gRPC thread: the next answer, if the worker has published one, goes out from here.
  const uint64_t head = ring_head_.load(std::memory_order_relaxed);
  if (!ok) write_failed_.store(true, std::memory_order_seq_cst);
  ring_head_.store(head + 1, std::memory_order_release);
  const int64_t left = write_pending_.fetch_sub(1, std::memory_order_seq_cst) - 1;
  if (ok && left > 0) {
    StartWrite(ring_[(head + 1) % kRing]);
    return;
  }
  if (!ok || drain_wanted_.load(std::memory_order_seq_cst)) {
    asio::post(worker_.io(), [this] { HandleWritesDrained(); });
  }
}

bool EppStream::AwaitDrain() {
  drain_wanted_.store(true, std::memory_order_seq_cst);
  return write_pending_.load(std::memory_order_seq_cst) == 0 ||
         write_failed_.load(std::memory_order_seq_cst);
}

void EppStream::HandleWritesDrained() {
  drain_wanted_.store(false, std::memory_order_relaxed);
  if (write_failed_.load(std::memory_order_relaxed)) {
    // The stream broke under a write: nothing more goes out (OnCancel/OnDone follow).
    for (Response* r : overflow_) {
      r->Clear();
      spare_.push_back(r);
    }
    overflow_.clear();
    RequestFinish(grpc::Status::CANCELLED);
  } else if (write_pending_.load(std::memory_order_seq_cst) == 0 && !overflow_.empty()) {
    // Answers that did not fit the ring follow now.
    Reclaim();
    while (!overflow_.empty() && ring_tail_ - ring_reclaimed_ < kRing) {
      Response* r = overflow_.front();
      overflow_.pop_front();
      Publish(r);
    }
    if (!overflow_.empty() && AwaitDrain()) {
      asio::post(worker_.io(), [this] { HandleWritesDrained(); });
    }
  }
  if (read_paused_) ContinueReading();
  MaybeFinish();
  MaybeDelete();
}

void EppStream::HandleCancel() {
  cancelled_ = true;
  if (watched_timer_) watched_timer_->cancel();
  if (deadline_armed_) deadline_timer_.cancel();
  if (!begun_ && stage_ == Stage::kRequestBody) worker_.metrics().Count(ClientError::kDisconnected);
  if (!phases_running_) {
    // Cancelled before the response ended: the client (or the Gateway) went away.
    EndAsGone();
    EndRequest();
  }
  // Answers not yet handed to gRPC never will be (those in the ring fail with the stream).
  for (Response* r : overflow_) {
    r->Clear();
    spare_.push_back(r);
  }
  overflow_.clear();
  RequestFinish(grpc::Status::CANCELLED);
  MaybeDelete();
}

void EppStream::HandleDone() {
  rpc_done_ = true;
  if (!phases_running_) {
    EndAsGone();
    EndRequest();
  }
  MaybeDelete();
}

void EppStream::RequestFinish(grpc::Status status) {
  if (finish_requested_) return;
  RevokeEcho();
  finish_requested_ = true;
  finish_status_ = std::move(status);
  MaybeFinish();
}

void EppStream::MaybeFinish() {
  if (!finish_requested_ || finish_sent_ || phases_running_ || echo_in_flight_) return;
  // Finish only once every answer handed over is written; otherwise the last OnWriteDone posts
  // HandleWritesDrained, which comes back here.
  if (!overflow_.empty() || !AwaitDrain()) return;
  finish_sent_ = true;
  Finish(finish_status_);
}

void EppStream::MaybeDelete() {
  // After OnDone gRPC calls nothing more, and every earlier callback's post ran before this one.
  if (rpc_done_ && !phases_running_) delete this;
}

}  // namespace tokenway
