// ExtProcCall: one `envoy.service.ext_proc.v3.ExternalProcessor/Process` stream, as a data plane
// (Envoy) opens it towards an endpoint picker, made awaitable on an Asio event loop.
//
// The stream runs on gRPC's callback API; every gRPC callback only posts to the owning
// io_context, so all state is touched on that loop's thread and the caller's coroutines read
// and write the stream without locks. Messages travel as raw bytes (a generic stub), so a caller
// can also send bytes that are not a ProcessingRequest (malformed-input tests).
//
// Used by the `ext_proc` payload processor (payload/ext_proc_processor.cc, tokenway as the client
// of a user's ext_proc service, on a worker's loop), the EPP load generator (src/bench/epp_load.cc)
// and the scripted test client (tests/support/ext_proc_client.cc), one call per request. The
// mutexes below are per call and only ever contended by gRPC's thread handing over one answer;
// no two requests share one. The call keeps itself alive until
// gRPC reports the stream done, and holds the io_context's work count until then, so a loop
// does not stop under an unfinished stream. Not thread-safe: use it from its loop's thread
// (only the write queue is shared with gRPC's threads, so writes need no hop through the loop).
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "envoy/service/ext_proc/v3/external_processor.pb.h"

namespace tokenway {

// A wake-up for one coroutine waiting on the loop's thread: Wait() returns after the next
// Notify() (or at once if one is pending).
class LoopSignal {
 public:
  explicit LoopSignal(boost::asio::io_context& io) : timer_(io) {}
  boost::asio::awaitable<void> Wait();
  void Notify();

 private:
  boost::asio::steady_timer timer_;
  bool pending_ = false;
  bool waiting_ = false;
};

class ExtProcCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                          public std::enable_shared_from_this<ExtProcCall> {
 public:
  using Request = envoy::service::ext_proc::v3::ProcessingRequest;
  using Response = envoy::service::ext_proc::v3::ProcessingResponse;

  static constexpr const char* kMethod = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

  // Opens the stream. `timeout` (> 0) becomes the gRPC deadline of the whole stream.
  static std::shared_ptr<ExtProcCall> Start(grpc::GenericStub& stub, boost::asio::io_context& io,
                                            std::chrono::milliseconds timeout);

  // Queues one message for writing, in order, and returns at once (like Envoy, which does not wait
  // for a message to leave before the next one); false when the stream is already known to be
  // broken or half-closed (a later failure shows as the end of the answers, and Finish() says
  // why). May overlap with a Read() from another coroutine of the same loop.
  boost::asio::awaitable<bool> Write(const Request& message);
  boost::asio::awaitable<bool> WriteRaw(const std::string& bytes);
  // Half-closes the request side after the queued writes (no more writes).
  boost::asio::awaitable<void> WritesDone();

  enum class ReadOutcome { kMessage, kEnd, kMalformed };
  // The next response, in arrival order. kEnd: the server closed (or the call failed);
  // kMalformed: bytes that are not a ProcessingResponse (`raw` keeps them).
  struct ReadResult {
    ReadOutcome outcome = ReadOutcome::kEnd;
    Response message;
    std::string raw;
  };
  boost::asio::awaitable<ReadResult> Read();

  // Cancels the stream (RST_STREAM to the server); pending reads and writes fail.
  void Cancel() { context_.TryCancel(); }
  // Waits until gRPC reports the stream done and returns its status. No write starts after it
  // (the stream ends once the server has, or the call was cancelled, or its deadline passed):
  // every call must be finished, or it never ends.
  boost::asio::awaitable<grpc::Status> Finish();
  bool done() const { return done_; }

  // gRPC callbacks (gRPC's threads): each posts to the loop.
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnWritesDoneDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  explicit ExtProcCall(boost::asio::io_context& io);
  bool Enqueue(grpc::ByteBuffer buffer);
  void ReleaseHold();

  boost::asio::io_context& io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::shared_ptr<ExtProcCall> self_;  // until OnDone has been handled on the loop
  grpc::ClientContext context_;
  grpc::ByteBuffer read_buffer_;
  std::deque<grpc::ByteBuffer> received_;
  // Answers read on gRPC's threads, waiting for the loop (OnReadDone).
  std::mutex inbox_mu_;
  std::vector<grpc::ByteBuffer> inbox_;
  bool inbox_posted_ = false;
  LoopSignal read_signal_, done_signal_;
  // The write queue, run by the loop (Enqueue, WritesDone) and by gRPC's OnWriteDone. Recursive:
  // gRPC may complete an operation inline in the call that starts it.
  std::recursive_mutex write_mu_;
  std::deque<grpc::ByteBuffer> pending_;
  grpc::ByteBuffer in_flight_;
  bool write_in_flight_ = false, writes_done_queued_ = false, write_failed_ = false;
  bool holding_ = true;  // the hold taken in Start (see ReleaseHold)
  bool reading_closed_ = false;
  bool done_ = false;
  grpc::Status status_;
  std::mutex done_mu_;  // OnDone's post() against its handler (see OnDone)
};

}  // namespace tokenway
