// EppStream: one ext_proc stream of the endpoint-picker front door — one HTTP request that a
// Gateway (Envoy, or anything speaking envoy.service.ext_proc.v3) hands tokenway to pick an
// endpoint for, and whose response it then shows tokenway for accounting.
//
// The request side runs the same phases as the HTTP front door up to the pick — inspect, govern,
// process payload, route (admission, pick) — over a RequestContext, with this stream as the
// phases' ClientLink. The answer follows the Gateway API Inference Extension: the header
// `x-gateway-destination-endpoint: ip:port[,fallback…]` (clear_route_cache) and the same string
// in dynamic metadata `envoy.lb`; in FULL_DUPLEX_STREAMED mode the body is held until its end and
// sent back as streamed chunks after the header answer, in BUFFERED mode the header answer is
// CONTINUE and the body answer carries the mutation. A phase's local answer (404, 429, 503, …)
// becomes an ImmediateResponse with the OpenAI-shaped JSON. The response side is answered chunk
// by chunk, unchanged unless usage injection or a response processor needs an edit, while usage,
// the first byte, the served endpoint and the status are recorded; settle and observe run once,
// when the response ends, the Gateway ends the stream, or the stream is cancelled.
//
// Threads: gRPC calls the reactor methods (On*) on its own threads; each posts to the stream's
// worker, where every other method runs — except OnWriteDone, which starts the next queued
// write itself (a lock-free single-producer ring, below) and posts only when the worker waits. The
// stream owns itself: it is deleted on its worker once gRPC has called OnDone and no phase
// coroutine runs.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "envoy/service/ext_proc/v3/external_processor.grpc.pb.h"
#include "gateway/request_context.h"
#include "gateway/worker.h"

namespace tokenway {

// What every stream of one EppServer shares (held by each stream too: one whose phase still
// waits when the server stops may outlive it).
struct EppStreamShared {
  std::atomic<int64_t> open_streams{0};  // bounded by epp.max_streams
};

class EppStream final
    : public grpc::ServerBidiReactor<envoy::service::ext_proc::v3::ProcessingRequest,
                                     envoy::service::ext_proc::v3::ProcessingResponse>,
      public ClientLink {
 public:
  // gRPC thread. Starts the first read; `shared.open_streams` already counts this stream.
  EppStream(Worker& worker, std::shared_ptr<EppStreamShared> shared,
            grpc::CallbackServerContext* rpc);
  ~EppStream() override;

  // gRPC threads: OnReadDone, OnCancel and OnDone hand the event to the worker; OnWriteDone
  // starts the next published answer's write (see the ring below).
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // ClientLink, for the phases (worker thread).
  void WatchClient(boost::asio::ip::tcp::socket* upstream,
                   boost::asio::steady_timer* queue_timer) override;
  void StopWatching() override;
  bool client_gone() const override { return cancelled_; }
  bool deadline_passed() const override { return deadline_passed_; }
  // The endpoint-picker front door never writes HTTP bytes (the Gateway talks to the client):
  // a phase that tried is told the client is gone.
  boost::asio::awaitable<bool> Write(std::span<const boost::asio::const_buffer> buffers) override;
  // Sends a local answer as an ImmediateResponse (status, JSON body, its headers).
  boost::asio::awaitable<bool> Respond(const LocalReply& reply,
                                       std::string_view request_id) override;
  bool http10() const override { return false; }
  bool keep_alive() const override { return false; }
  void CloseAfterResponse() override {}

 private:
  using Request = envoy::service::ext_proc::v3::ProcessingRequest;
  using Response = envoy::service::ext_proc::v3::ProcessingResponse;

  // Where the stream is in Envoy's message order.
  enum class Stage : uint8_t {
    kRequestHeaders,  // waiting for the request headers
    kRequestBody,     // collecting the request body
    kPicking,         // the phases run
    kAnswered,        // the request side is answered; the response side may come
    kClosed,          // nothing more is processed (an immediate response, a protocol error)
  };

  // Worker thread.
  // `cancelled`: the read failed because the call was cancelled (read on gRPC's thread).
  void HandleRead(bool ok, bool cancelled);
  void HandleWritesDrained();
  void HandleCancel();
  void HandleDone();
  void OnRequestHeaders();
  void OnRequestBody();
  void OnRequestTrailers();
  void OnResponseHeaders();
  void OnResponseBody();
  void OnResponseTrailers();
  // A response chunk answered unchanged: its accounting (first byte, usage from the SSE events
  // or the whole JSON body).
  void RecordChunk(std::string_view chunk, bool eos);
  bool ChunkNeedsRewrite() const;
  // The fast path (gRPC thread, inside OnReadDone): answers an unchanged response chunk at once,
  // posts its accounting to the worker and reads the next message. False when back-pressure
  // sends the message to the worker instead.
  bool EchoOnGrpcThread();
  void HandleEchoedChunk(const std::string& chunk, bool eos);
  // Worker: stops the fast path (before the stream finishes); if it is running now, the worker
  // waits for HandleEchoReleased.
  void RevokeEcho();
  void HandleEchoReleased();
  void StartPhases();
  static boost::asio::awaitable<void> RunPhases(EppStream* self);
  void AnswerPick();
  void AnswerPassthrough();
  void SendImmediate(const LocalReply& reply, std::string_view request_id);
  // A message the protocol does not allow here: a 400 while the request side can still be
  // answered, else the stream ends with INVALID_ARGUMENT.
  void ProtocolError(EppError kind, std::string_view message);
  // Before the phases: an OpenAI-shaped error for the Gateway, counted, then the stream ends.
  void RejectEarly(int status, std::string_view message, std::string_view code);
  void TakeEndpoint(uint32_t index);
  void MoveToServedEndpoint();
  void ReadSubsetHint();
  // The client went away before the response ended: recorded as 499, counted once.
  void EndAsGone();
  void EndRequest();
  Response* NewResponse();
  // Hands an answer to gRPC in order (the ring below; `overflow_` when it is full).
  void Send(Response* r);
  void Publish(Response* r);
  // Takes back the answers gRPC has written.
  void Reclaim();
  // Asks OnWriteDone to post HandleWritesDrained once every answer is written; true when that is
  // already so.
  bool AwaitDrain();
  void ContinueReading();
  void RequestFinish(grpc::Status status);
  void MaybeFinish();
  void MaybeDelete();
  std::string_view RequestIdForReply();

  Worker& worker_;
  const std::shared_ptr<EppStreamShared> shared_;
  grpc::CallbackServerContext* const rpc_;  // gRPC threads only, before OnDone
  Request req_;
  // Answers handed to gRPC, written one at a time in order: a ring the worker fills and
  // OnWriteDone drains — starting the next write itself on gRPC's thread, so a write's
  // completion needs no trip through the worker. `write_pending_` counts the answers published
  // and not yet written (its 0 → 1 step tells the worker to start the write); written slots
  // are reclaimed by the worker, lazily. The worker asks (drain_wanted_) to be told when all are
  // written — to finish the stream, to resume reading, to publish what waits in `overflow_`.
  static constexpr uint64_t kRing = 32;
  std::array<Response*, kRing> ring_{};
  uint64_t ring_tail_ = 0;              // worker: the next slot to fill
  uint64_t ring_reclaimed_ = 0;         // worker: slots below it are back in spare_
  std::atomic<uint64_t> ring_head_{0};  // OnWriteDone: slots below it are written
  std::atomic<int64_t> write_pending_{0};
  std::atomic<bool> write_failed_{false};
  std::atomic<bool> drain_wanted_{false};
  std::deque<Response*> overflow_;  // worker: answers beyond a full ring

  // The response-chunk fast path. The worker arms it after the response headers when chunks go
  // back unchanged; OnReadDone takes it (armed → busy) for a response_body message and then owns
  // the read and the ring's producer side until it gives them back (busy → armed, with the next
  // read issued). The worker revokes it (→ off) before finishing; if it was busy,
  // HandleEchoReleased tells the worker when the gRPC thread is out.
  static constexpr uint8_t kEchoOff = 0, kEchoArmed = 1, kEchoBusy = 2;
  std::atomic<uint8_t> echo_{kEchoOff};
  bool echo_in_flight_ = false;  // worker: revoked while busy, waiting for the release
  std::vector<Response*> spare_;
  std::vector<std::unique_ptr<Response>> owned_;
  Stage stage_ = Stage::kRequestHeaders;
  bool first_message_ = true;
  bool observability_ = false;  // Envoy ignores answers: none are sent
  // BodySendMode of each direction, from the first message's protocol_config; a Gateway that
  // sends none is taken to use FULL_DUPLEX_STREAMED both ways, as GIE configures Envoy.
  int request_body_mode_ = 4;
  int response_body_mode_ = 4;
  bool mode_known_ = false;  // protocol_config received
  bool reading_ = false;
  bool read_paused_ = false;  // too many answers queued: reading resumes as they drain
  bool peer_closed_ = false;  // Envoy half-closed the stream
  bool cancelled_ = false;
  bool rpc_done_ = false;  // gRPC called OnDone
  bool phases_running_ = false;
  bool finish_requested_ = false;
  bool finish_sent_ = false;
  grpc::Status finish_status_;
  bool begun_ = false;    // BeginRequest ran: Settle and Observe owed
  bool settled_ = false;  // ... and ran
  bool passthrough_ = false;
  bool headers_only_ = false;
  bool request_trailers_ = false;
  bool response_seen_ = false;
  bool response_sse_ = false;
  bool response_hold_ = false;  // a whole body held for the response processors
  bool response_overflow_ = false;

  // The request as received: header bytes the parser's slices point into, the body.
  std::string head_;
  RequestParser parser_;
  std::string path_;
  Operation operation_ = Operation::kChatCompletions;
  std::string body_;
  // The Gateway's subset hint (metadata, else header): only these "ip:port" may be picked.
  bool has_subset_ = false;
  std::vector<std::string> subset_;
  std::optional<RuntimePin> pin_;
  RequestContext ctx_;
  std::string destination_;
  std::string response_body_;  // a whole (JSON) response, for its usage and the processors
  std::string out_;
  // The epp.message_timeout bound while the request waits for its pick.
  boost::asio::steady_timer deadline_timer_;
  boost::asio::steady_timer* watched_timer_ = nullptr;
  bool deadline_armed_ = false;
  bool deadline_passed_ = false;
};

}  // namespace tokenway
