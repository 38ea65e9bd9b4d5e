// ScriptedUpstream and RawClient: the two ends of an in-process request-path test.
//
// ScriptedUpstream is a model server on a loopback port, run by plain threads with raw sockets:
// it answers every request with a canned JSON completion, or — when the request body says
// "stream":true — with a chunked SSE stream of `stream_events` content events, a usage chunk and
// [DONE]. It records the last request body it received. RawClient is a blocking keep-alive HTTP
// client over a raw socket. Neither allocates per request once warm, so tests that count heap
// allocations can exempt their threads (ScriptedUpstream marks its own threads via a hook).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tokenway::testing {

// Reads one HTTP message (head plus Content-Length or chunked body) from `fd` into `buf`, which
// keeps whatever follows. Sets `head` and `body` (de-chunked) of the message. False when the
// peer closed first.
bool ReadHttpMessage(int fd, std::string& buf, std::string& head, std::string& body);

class ScriptedUpstream {
 public:
  // `on_thread_start` runs first on every thread the upstream starts (e.g. to exempt it from
  // allocation counting).
  explicit ScriptedUpstream(int stream_events = 8, void (*on_thread_start)() = nullptr);
  ~ScriptedUpstream();
  ScriptedUpstream(const ScriptedUpstream&) = delete;
  ScriptedUpstream& operator=(const ScriptedUpstream&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  uint64_t requests() const { return requests_.load(); }
  std::string last_body() const;

 private:
  void AcceptLoop();
  void Serve(int fd);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::string json_response_;
  std::string sse_response_;
  void (*on_thread_start_)();
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> requests_{0};
  mutable std::mutex mu_;
  std::string last_body_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

class RawClient {
 public:
  explicit RawClient(uint16_t port);
  ~RawClient();
  // Sends `request` (a whole HTTP message) and reads the response. False on a closed connection.
  bool Exchange(const std::string& request, std::string& head, std::string& body);
  static std::string Post(std::string_view path, std::string_view body);

 private:
  int fd_ = -1;
  std::string buf_;
};

}  // namespace tokenway::testing
