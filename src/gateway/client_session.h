// ClientSession: the HTTP/1.1 front door — one client connection on one worker, from accept to
// close.
//
// It reads requests in place from its own buffer (keep-alive and pipelining), enforces the
// connection's limits, answers what the gateway serves itself (the model list, HEAD, 404, 405,
// malformed requests), and hands inference requests to the request path (request_path.h) with
// itself as the ClientLink: writes to the client and the watch for the client leaving. Owned by
// the coroutine that runs it; registered with its worker for draining.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>

#include "common/io_buffer.h"
#include "gateway/request_context.h"
#include "http/deadline_sweep.h"
#include "http/request_parser.h"

namespace tokenway {

class Worker;

// Cancels what a request waits on when its client goes away. One wait on the client socket
// stays armed across requests (arming and cancelling one per request cost a scheduler round
// trip each); it acts only while a request is forwarded or queued. Shared with the wait's
// completion handler, hence held by shared_ptr.
struct ClientAbortWatch {
  boost::asio::ip::tcp::socket* client = nullptr;    // null once the session is gone
  boost::asio::ip::tcp::socket* upstream = nullptr;  // set while a request is forwarded
  boost::asio::steady_timer* queue_timer = nullptr;  // set while a request waits for admission
  bool armed = false;                                // a wait is pending on the client socket
  bool fired = false;
};

class ClientSession final : public ClientLink {
 public:
  ClientSession(Worker& worker, boost::asio::ip::tcp::socket socket);
  ~ClientSession() override;

  boost::asio::awaitable<void> Run();
  // Closes the connection if it is between requests (drain).
  void CloseIfIdle();
  // Worker tick: arms the wait on the client socket when a request is forwarded or queued and
  // no wait is pending, so a client that leaves a long request is noticed within one tick.
  void ArmClientWatch();

  // ClientLink.
  void WatchClient(boost::asio::ip::tcp::socket* upstream,
                   boost::asio::steady_timer* queue_timer) override;
  void StopWatching() override;
  bool client_gone() const override { return abort_->fired; }
  boost::asio::awaitable<bool> Write(std::span<const boost::asio::const_buffer> buffers) override;
  using ClientLink::Write;
  boost::asio::awaitable<bool> Respond(const LocalReply& reply,
                                       std::string_view request_id) override;
  bool http10() const override { return http10_; }
  bool keep_alive() const override { return keep_alive_; }
  void CloseAfterResponse() override { keep_alive_ = false; }

 private:
  enum class ReadOutcome { kRequest, kClosed, kResponded };

  boost::asio::awaitable<ReadOutcome> ReadRequest(RequestParser& parser, size_t& head_size,
                                                  size_t& body_size);
  // Answers a request the parser rejected (431, 413 or 400, counted) and closes afterwards.
  // `reason`: the parser's own reason (a static string), or null to describe `ec`.
  boost::asio::awaitable<ReadOutcome> RejectUnparsable(boost::beast::error_code ec,
                                                       const char* reason);
  boost::asio::awaitable<void> Dispatch(RequestParser& parser, std::string_view body,
                                        size_t padding);
  // A local answer; HEAD requests get the head alone (with the Content-Length of the body).
  boost::asio::awaitable<bool> WriteLocal(int status, std::string_view body,
                                          std::string_view extra_headers = {},
                                          std::string_view content_type = "application/json");
  boost::asio::awaitable<bool> WriteLocalError(int status, std::string_view message,
                                               std::string_view code, std::string_view param = {},
                                               std::string_view extra_headers = {});

  Worker& worker_;
  boost::asio::ip::tcp::socket socket_;
  IoBuffer buffer_;
  Deadline deadline_;
  bool keep_alive_ = true;
  bool idle_ = true;  // between requests
  bool http10_ = false;
  bool head_request_ = false;  // the current request is a HEAD: answers carry no body
  std::shared_ptr<ClientAbortWatch> abort_;
  const Runtime* runtime_ = nullptr;  // the snapshot of the current request (pinned)
  RequestContext ctx_;                // the current request; reused across requests
  std::string out_;                   // local response heads
  std::string error_body_;
  std::vector<HeaderSlice> header_scratch_;
};

}  // namespace tokenway
