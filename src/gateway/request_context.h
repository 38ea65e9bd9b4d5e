// RequestContext: everything one inference request carries through the phases of the request
// path, and the small interface the phases use to reach the client that sent it.
//
// The phases (src/gateway/phases/, declared in phases.h) run in request order — inspect, govern,
// process payload, resolve, cache lookup, route, forward, relay, settle, observe — each taking the
// context and returning a PhaseResult. A front door (the HTTP ClientSession today; the
// endpoint-picker protocol next) owns one context per connection or stream, reuses it across
// requests so its strings and vectors keep their capacity, and runs the phases it needs: the HTTP
// front door all of them, an endpoint-picker front door inspect → govern → payload → route.
//
// Threading: a context lives on one worker thread and is only touched there.
#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_key.h"
#include "cache/cache_stats.h"
#include "cache/cached_response.h"
#include "common/duration.h"
#include "common/request_inspector.h"
#include "common/sse.h"
#include "common/usage.h"
#include "gateway/worker.h"
#include "governance/governance.h"
#include "http/request_parser.h"
#include "http/response_parser.h"
#include "http/upstream_pool.h"
#include "routing/endpoint_state.h"
#include "telemetry/trace_context.h"
#include "tokenway/payload.h"
#include "tokenway/picker.h"

namespace tokenway {

class Worker;
struct Runtime;
struct Pool;
struct PoolEndpoint;
struct ModelRoute;

// What a phase tells the front door.
enum class PhaseResult : uint8_t {
  kContinue,  // go on with the next phase
  kRespond,   // stop; the context's `reply` holds a local answer for the front door to send
  kDone,      // stop; the phase has answered the client itself (or the client is gone)
};

// A local answer (an error, mostly) that a phase leaves for the front door to send.
struct LocalReply {
  int status = 0;
  std::string body;     // JSON, or an event stream (a cached answer to a streamed request)
  std::string headers;  // extra header lines, each ending in "\r\n"
  std::string_view content_type = "application/json";
  void Clear() {
    status = 0;
    body.clear();
    headers.clear();
    content_type = "application/json";
  }
};

// What the response cache did for one request (phases/cache.cc: looked up right after resolve,
// the answer of a miss stored at settle).
struct RequestCacheState {
  enum class Outcome : uint8_t {
    kOff,     // no cache for this request's configuration or model: no header
    kBypass,  // not cacheable, or the client or tenant opted out of reading
    kMiss,
    kHit,
  };
  Outcome outcome = Outcome::kOff;
  bool semantic = false;  // the hit was found by prompt similarity
  bool store = false;     // the answer of this request may be stored (collected in `assembly`)
  CacheKey key;
  CacheStatsRow* row = nullptr;  // the (tenant, model) counters
  ResponseAssembly assembly;
  TokenUsage charge;  // a hit: what governance charges (cache.charge)
  // With cache.semantic: the prompt's folded vector and the hash of the request's other
  // parameters, computed at lookup and filed with the answer when it is stored.
  std::vector<float> vector;
  uint64_t params = 0;
  // The response header line that reports the outcome (empty for kOff).
  std::string_view header_line() const {
    switch (outcome) {
      case Outcome::kBypass:
        return "X-Tokenway-Cache: bypass\r\n";
      case Outcome::kMiss:
        return "X-Tokenway-Cache: miss\r\n";
      case Outcome::kHit:
        return "X-Tokenway-Cache: hit\r\n";
      default:
        return {};
    }
  }
  void Reset() {
    outcome = Outcome::kOff;
    semantic = false;
    store = false;
    key = CacheKey{};
    row = nullptr;
    assembly.Reset();
    charge = TokenUsage{};
    vector.clear();
    params = 0;
  }
};

// Everything recorded about one request for settlement, metrics, the span and the access log.
struct RequestRecord {
  int64_t start_ns = 0;
  int64_t first_byte_ns = 0;  // first response byte written to the client
  int status = 0;
  uint16_t model_slot = 0;
  uint16_t pool_slot = 0;      // 0 until routed
  uint16_t endpoint_slot = 0;  // 0 until forwarded
  uint16_t version_slot = 0;   // 0: the model has no versions
  std::string request_id;
  std::string_view version;  // the model version the split chose; empty: none
  std::string_view tenant;   // empty: no tenant
  std::string_view pool;
  std::string_view endpoint;
  std::string_view picker;      // the pool's picker, for the access log's route
  uint32_t prefix_blocks = 0;   // prompt blocks looked up in the prefix index
  uint32_t prefix_matched = 0;  // of those, held by the chosen endpoint (estimate)
  std::string error_code;       // tokenway's own code when it produced or cut the response
  std::string payload_flags;    // what payload processors flagged, comma-separated
  // The route a virtual model's router chose (resolve phase); empty: the model was not virtual.
  std::string semantic_route;
  float route_confidence = 0.0f;  // the classifier's confidence in its route
  std::string_view route_reason;  // classified, below_threshold, tenant_restricted, ...
  std::string_view route_by;      // "lexical" or "embeddings": the classifier that decided
  TokenUsage usage;
  // The usage above was not reported by the model server but estimated by tokenway (a stream
  // that ended without a usage block): prompt tokens from the token estimator, completion
  // tokens from the content events relayed.
  bool usage_estimated = false;
  uint32_t retries = 0;
  int32_t priority = 0;  // flow-control priority (0 when the pool has none)
  int64_t queue_ns = 0;  // time spent waiting for admission
  uint32_t stream_events = 0;
  bool stream = false;
  bool usage_injected = false;
  uint64_t prompt_hash = 0;
  size_t request_bytes = 0;
  size_t response_bytes = 0;
  // Tracing (phases/trace.cc): the trace context, and for a sampled request what its span
  // reports beyond the above.
  TraceContext trace;
  bool drop_tracestate = false;  // the client's tracestate is not forwarded
  std::string_view trace_state;  // the client's tracestate, when it is propagated
  std::string_view engine;       // the chosen endpoint's engine (gen_ai.provider.name)
  std::string response_model;    // sampled requests only
  PickScores scores;             // the chosen endpoint's scores, sampled requests only

  // Back to a fresh record, keeping the strings' capacity for the next request.
  void Reset();
};

// The load one forwarding attempt puts on its endpoint, kept right on every exit path: the
// in-flight count, the sent-since-scrape count flow control adds to the engine's queue, and
// estimated prefill tokens (until the first response event) and decode tokens (until the end).
class EndpointLoad {
 public:
  EndpointLoad(EndpointState& state, int64_t prefill, int64_t decode);
  ~EndpointLoad();
  // The first response event: the prefill is over (and, when watched, its time is taken).
  void PrefillDone();
  // A later response event: when watched, the stream's last token time so far (the TPOT ends
  // at the last event read from upstream, not when the client has taken it).
  void NextEvent() {
    if (watched_) last_event_ns_ = MonotonicNanos();
  }
  // Watch this attempt's latency for the endpoint's model (pools with a predicted-latency
  // scorer): what the gateway saw of the endpoint at dispatch, and what the picker predicted
  // (< 0: nothing).
  void Watch(const LatencyFeatures& features, double predicted_ttft_s, double predicted_tpot_s);
  // At settle, for a stream that answered: teaches the endpoint's model its TTFT and (with two
  // tokens or more) TPOT, and gives the relative errors of the predictions (< 0: none).
  struct Learned {
    double ttft_error = -1;
    double tpot_error = -1;
  };
  Learned Learn(int64_t completion_tokens);
  EndpointLoad(const EndpointLoad&) = delete;
  EndpointLoad& operator=(const EndpointLoad&) = delete;

 private:
  EndpointState& state_;
  int64_t prefill_;
  int64_t decode_;
  bool watched_ = false;
  int64_t dispatched_ns_ = 0;
  int64_t first_event_ns_ = 0;
  int64_t last_event_ns_ = 0;
  double predicted_ttft_s_ = -1;
  double predicted_tpot_s_ = -1;
  LatencyFeatures features_;
};

// The request body as it goes upstream: the client's bytes, unchanged, or those bytes with one
// insertion (a phase that edits the body describes the edit; nothing is copied).
struct OutgoingBody {
  std::string_view before;  // the whole body when there is no insertion
  std::string_view insert;
  std::string_view after;
  size_t size() const { return before.size() + insert.size() + after.size(); }
};

// The batch of events relayed for one upstream read, as byte ranges: runs of the splitter's
// buffer (adjacent kept events merge into one run) or of the replaced-event text.
class RelayBatch {
 public:
  void Clear(const char* events_base) {
    runs_.clear();
    replaced_.clear();
    base_ = events_base;
    bytes_ = 0;
  }
  void Keep(std::string_view event) {
    bytes_ += event.size();
    if (!runs_.empty() && !runs_.back().replaced &&
        base_ + runs_.back().offset + runs_.back().size == event.data()) {
      runs_.back().size += event.size();
      return;
    }
    runs_.push_back({static_cast<size_t>(event.data() - base_), event.size(), false});
  }
  void KeepReplaced(std::string_view data) {
    size_t start = replaced_.size();
    replaced_.append("data: ").append(data).append("\n\n");
    bytes_ += replaced_.size() - start;
    runs_.push_back({start, replaced_.size() - start, true});
  }
  size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  // Appends the runs as buffers (valid until the next Clear or change of the splitter).
  void AppendTo(std::vector<boost::asio::const_buffer>& out) const {
    for (const Run& r : runs_) {
      const char* p = r.replaced ? replaced_.data() + r.offset : base_ + r.offset;
      out.emplace_back(p, r.size);
    }
  }

 private:
  struct Run {
    size_t offset;
    size_t size;
    bool replaced;
  };
  std::vector<Run> runs_;
  std::string replaced_;
  const char* base_ = nullptr;
  size_t bytes_ = 0;
};

// What the phases need from the front door that received the request. The HTTP ClientSession
// implements it; every call happens on the request's worker thread.
class ClientLink {
 public:
  virtual ~ClientLink() = default;
  // Watches the client while the request waits on `queue_timer` or is forwarded over
  // `upstream`; when the client leaves, both are cancelled and client_gone() turns true.
  virtual void WatchClient(boost::asio::ip::tcp::socket* upstream,
                           boost::asio::steady_timer* queue_timer) = 0;
  virtual void StopWatching() = 0;
  virtual bool client_gone() const = 0;
  // The front door's own bound on how long the request may wait for its pick passed (the
  // endpoint-picker front door's epp.message_timeout); it cancels a watched wait like a client
  // leaving, and the waiting phase answers 503 instead of counting a departure.
  virtual bool deadline_passed() const { return false; }
  // Writes the buffers to the client in one gathered write (bounded by limits.write_timeout).
  // False when the client is gone; the connection then closes after the request.
  virtual boost::asio::awaitable<bool> Write(
      std::span<const boost::asio::const_buffer> buffers) = 0;
  boost::asio::awaitable<bool> Write(std::string_view a, std::string_view b = {},
                                     std::string_view c = {}, std::string_view d = {});
  // Sends a local answer (an error) with the request's id.
  virtual boost::asio::awaitable<bool> Respond(const LocalReply& reply,
                                               std::string_view request_id) = 0;
  // The response may not use chunked framing (an HTTP/1.0 client).
  virtual bool http10() const = 0;
  // Whether the connection stays open after this response; CloseAfterResponse() ends that.
  virtual bool keep_alive() const = 0;
  virtual void CloseAfterResponse() = 0;
};

struct RequestContext {
  explicit RequestContext(Worker& w) : worker(w) {}
  RequestContext(const RequestContext&) = delete;
  RequestContext& operator=(const RequestContext&) = delete;

  // Fresh state for a request (keeps every buffer's capacity).
  void Reset(const Runtime* snapshot, const RequestParser* request_parser, const char* base,
             std::string_view request_body, size_t body_padding, Operation op);

  // Records a local error answer (status, tokenway's code) in `reply`: the OpenAI error shape.
  PhaseResult Fail(int status, std::string_view message, std::string_view code,
                   std::string_view param = {}, std::string_view extra_headers = {});

  Worker& worker;
  // --- the request as received (set by the front door) ---
  const Runtime* runtime = nullptr;  // the snapshot this request runs on, pinned by the door
  const RequestParser* parser = nullptr;
  const char* base = nullptr;  // the buffer the parser's slices point into
  std::string_view body;
  size_t padding = 0;  // readable bytes after `body` (simdjson's padding)
  Operation operation = Operation::kChatCompletions;

  // --- 1 inspect ---
  InspectedRequest inspected;
  InspectError inspect_error;
  int64_t prompt_tokens = 0;  // the token estimator's count of the prompt

  // --- 2 govern ---
  RequestGovernance governance;

  // --- 3 process payload ---
  RequestVerdict verdict;     // a request processor's answer
  std::string replaced_body;  // a body a request processor or RewriteModel replaced, padded

  // --- 4 resolve ---
  std::string requested_model;  // the model the client named (inspected.model: the one served)
  // Whether the front door can take back the usage chunk that usage injection asks for (the
  // endpoint-picker front door cannot when the Gateway does not send it the response body).
  bool may_inject_usage = true;
  OutgoingBody outgoing;
  // The alias's version the split chose (ctx.route is then the alias), or null. With
  // response_model: alias and a version served under another name, responses' "model" is
  // rewritten from response_model_from back to response_model_to.
  const RouteVersion* version = nullptr;
  std::string_view response_model_from;
  std::string_view response_model_to;

  // --- 4b cache ---
  RequestCacheState cache;

  // --- 5 route ---
  // Set by the endpoint-picker front door when the Gateway restricts the pick to a subset of
  // endpoints ("ip:port" views that live as long as the request): only those are candidates.
  bool restrict_to_subset = false;
  std::vector<std::string_view> endpoint_subset;
  // A request that waited for a pool's first endpoint (scale from zero) continues on the
  // snapshot that brought it, pinned here; the front door's pin keeps the first one alive too.
  std::optional<RuntimePin> refreshed_runtime;
  const ModelRoute* route = nullptr;
  const Pool* pool = nullptr;
  FallbackList fallbacks;
  LatencyPrediction prediction;  // the predicted-latency scorer's forecast for fallbacks[0]
  // A request released from a flow-control queue owes its controller DispatchDone() once it has
  // taken its endpoint's counters (forward) or given up (settle).
  const Pool* flow_release = nullptr;
  void FinishFlowRelease();

  // --- 6 forward / 7 relay ---
  // A request tokenway makes itself (a shadow copy) has no parser: the path it is sent to.
  std::string own_target;
  const PoolEndpoint* endpoint = nullptr;  // of the current attempt
  std::optional<EndpointLoad> load;
  // An attempt goes to `endpoint`: its load (and, in a pool that predicts latency, the watch
  // that teaches the endpoint's model) is put on it, and a flow-control release is finished.
  void Dispatch(const PoolEndpoint& endpoint);
  std::unique_ptr<UpstreamConnection> conn;
  std::optional<ResponseParser> response;
  std::string content_type_storage;  // a finished response's Content-Type capacity, reused
  // Ends the current response parser, keeping its strings' capacity for the next one.
  void ResetResponse() {
    if (response) content_type_storage = std::move(response->content_type);
    response.reset();
  }
  bool streaming_response = false;  // the response is an event stream relayed event by event

  // --- results ---
  RequestRecord record;
  LocalReply reply;

  // --- scratch, reused ---
  std::string upstream_head;
  std::string response_body;  // non-streaming upstream body
  std::string out;            // response heads
  std::string chunk_head;
  std::string scratch;
  std::string processed;  // a payload a response processor replaced
  // Stream state of the response processors (index-aligned with the chain; null: the processor
  // keeps none), and whether each applies to this request; events they emit, double-buffered.
  std::vector<std::unique_ptr<ResponseStreamState>> stream_states;
  std::vector<uint8_t> response_applies;
  std::vector<std::string> stream_events, stream_events_next;
  bool stream_processing = false;  // response processors run on this stream
  bool stream_flushed = false;     // they released what they held (end of the stream)
  bool stream_ended = false;       // one of them ended the stream (kEnd)
  SseEventSplitter events;
  RelayBatch relay_batch;  // the events of one upstream read (per request: writes interleave)
  std::vector<boost::asio::const_buffer> gather;  // a relayed batch of events, as runs
  std::vector<PickCandidate> candidates;
};

}  // namespace tokenway
