// The phases of the request path, in request order (docs/architecture.md uses the same names).
//
//   1 inspect   request id, trace context, the JSON body inspected once in place
//   2 govern    API key → tenant; model permission; token reservation
//   3 payload   request processors (may rewrite or reject)
//   4 resolve   the client's model → the model served upstream; usage injection as a body edit
//  4b cache     the response cache: a hit answers here (JSON or an event stream), a miss goes on
//   5 route     model → pool; admission under flow control; filters → scorers → picker
//   6 forward   pooled upstream connection, one gathered write, the response head; retries on
//               the next endpoint while no byte has reached the client
//   7 relay     SSE event by event through the response processors, or the whole body
//   8 settle    usage (reported, or estimated and marked so); reservations settled; the outcome
//               fed back to endpoint health and flow control; a cacheable miss's answer stored
//   9 observe   metrics, span, access-log line
//
// Each phase takes the request's RequestContext, runs on its worker thread, and returns
// kContinue, kRespond (the context's `reply` holds the answer) or kDone (answered already).
// Settle and observe run on every exit path, exactly once, from the front door's request scope.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "gateway/request_context.h"

namespace tokenway {

// 1. The request id every response carries: the client's X-Request-Id when it is short and
// plain, otherwise a fresh random one. The front door calls it for every request it answers,
// also those it answers itself.
void AssignRequestId(RequestContext& ctx);
// 1. Starts the request's record (clock, trace context) and inspects the body.
void BeginRequest(RequestContext& ctx);
PhaseResult Inspect(RequestContext& ctx);

// 2. Identity and governance (no-op when the snapshot has no governance section).
boost::asio::awaitable<PhaseResult> Govern(RequestContext& ctx);

// 3. Payload processing: the request processors whose match selects the request, in order.
boost::asio::awaitable<PhaseResult> ProcessPayload(RequestContext& ctx, ClientLink& client);

// 4. Resolve: the client's model (kept in ctx.requested_model) → the model that goes upstream
// (its resolution steps call RewriteModel), then the outgoing body (ctx.outgoing) with the edit
// that asks a stream for its usage.
boost::asio::awaitable<PhaseResult> Resolve(RequestContext& ctx, ClientLink& client);
// 4. Sends the request upstream as `model`: the body re-serialised once with only its "model"
// token replaced, ctx.inspected updated in place (no second parse). No-op for the same name.
void RewriteModel(RequestContext& ctx, std::string_view model);
// 4. The version of an alias with versions that the request goes to: a match rule's, else the
// weighted sticky split's; null for a model without versions. Pure (no rewrite, no record).
const RouteVersion* ChooseVersion(const RequestContext& ctx, const ModelRoute& route);
// 4. The split step: for an alias with versions, records the chosen version (ctx.version,
// ctx.route, the record's version) and rewrites the body for the version's model.
void SplitVersion(RequestContext& ctx);
// 4. Appends the x-tokenway-route header value of a request a virtual model routed
// ("code; confidence=0.87"); both front doors send it with the response head when
// ctx.record.semantic_route is set.
void AppendRouteHeaderValue(const RequestRecord& rec, std::string& out);

// 4b. The response cache (phases/cache.cc): computes the request's key and looks it up (the
// in-process store, then Redis when configured; a busy shard or a slow Redis is a miss). A hit
// is kRespond with the answer in ctx.reply (200, JSON or text/event-stream, X-Tokenway-Cache:
// hit); otherwise kContinue with ctx.cache saying miss or bypass and whether to store.
boost::asio::awaitable<PhaseResult> LookupCache(RequestContext& ctx, ClientLink& client);
// 8. Stores the answer of a cacheable miss when it is a complete 200 that ended with
// finish_reason "stop" (Settle calls it, both front doors).
void StoreCachedAnswer(RequestContext& ctx);

// 5. Route: finds the model's pool (404 when none), waits for admission on a saturated
// flow-controlled pool (the client watch cancels the wait if the client leaves), and picks the
// ordered endpoints into ctx.fallbacks.
boost::asio::awaitable<PhaseResult> Route(RequestContext& ctx, ClientLink& client);

// 6. Forwards to the fallbacks in order until one answers with a response to relay: kContinue
// with ctx.response (the head; a whole body also collected in ctx.response_body) and ctx.conn.
boost::asio::awaitable<PhaseResult> Forward(RequestContext& ctx, ClientLink& client);
// 6. Shadow traffic: once the primary is forwarded and relayed, a share of an alias's requests is
// mirrored to its shadow.version as a detached copy on this worker (shadow.cc); the primary never
// waits for it. No-op for models without shadow and requests outside the share.
void StartShadow(RequestContext& ctx);
// 7. Relays the response the current attempt holds (ctx.response, ctx.conn): a stream event by
// event, or the collected body in one write.
boost::asio::awaitable<PhaseResult> Relay(RequestContext& ctx, ClientLink& client);

// 7. One event of a relayed stream, for both front doors: its usage recorded (and a sampled
// request's response model), the first content event ending the endpoint's prefill estimate,
// then the response processors (started with the stream's first event, their state in the
// context). kDrop for the usage-only event tokenway asked for, for an event a processor dropped
// and for every event after the stream ended; kReplace: send ctx.stream_events (event data, zero
// or more) instead; kEnd: send ctx.stream_events, then end the stream (a processor blocked it;
// the upstream's rest is not relayed). At "[DONE]" the processors first release what they hold.
enum class StreamEventAction : uint8_t { kKeep, kDrop, kReplace, kEnd };
StreamEventAction RelayStreamEvent(RequestContext& ctx, std::string_view event);
// 7. The end of a relayed stream's body without "[DONE]": what the processors still hold
// (kReplace/kEnd: ctx.stream_events), once; kKeep when there is nothing.
StreamEventAction FinishStreamEvents(RequestContext& ctx);
// 7. A whole 200 response body, for both front doors: usage read (in place), then the response
// processors. kNotJson when the body is not a JSON object; kWithheld when a processor dropped
// it; kReplace with the new body in ctx.processed.
enum class WholeBodyAction : uint8_t { kKeep, kReplace, kNotJson, kWithheld };
WholeBodyAction RelayWholeBody(RequestContext& ctx, std::string& body);

// 8. Settles the request (every exit path, once).
void Settle(RequestContext& ctx);
// 9. Counts and logs the request (every exit path, once, after Settle).
void Observe(RequestContext& ctx);

// Tracing hooks (trace.cc): the request's trace context from its traceparent, the traceparent
// forwarded upstream, and the span of a sampled
// request handed to the exporter.
void BeginTrace(RequestContext& ctx);
void AppendTraceParent(const RequestContext& ctx, std::string& head);
void ExportSpan(const RequestContext& ctx, int64_t end_ns);
// The access-log line (access_log_line.cc), if the configuration wants one for this request.
void WriteAccessLog(RequestContext& ctx, double seconds);

}  // namespace tokenway
