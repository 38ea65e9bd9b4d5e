// UpstreamConnection and UpstreamPool: a worker's keep-alive connections to model servers.
//
// Each worker keeps its own idle connections per endpoint (no sharing across threads, no
// locks). A connection taken from the pool belongs to one request until it is returned or
// dropped; connections idle for longer than the configured timeout are closed by the worker's
// periodic tick. Most recently used connections are reused first so the rest can age out.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/io_buffer.h"
#include "http/deadline_sweep.h"

namespace tokenway {

struct UpstreamConnection {
  explicit UpstreamConnection(boost::asio::io_context& ioc) : socket(ioc), buffer(16 * 1024) {}

  boost::asio::ip::tcp::socket socket;
  IoBuffer buffer;
  Deadline deadline;
  const void* endpoint_key = nullptr;  // the EndpointState it connects to
  int64_t idle_since_ns = 0;
  uint64_t requests_served = 0;
};

class UpstreamPool {
 public:
  // An idle connection to `key`, or nullptr.
  std::unique_ptr<UpstreamConnection> TakeIdle(const void* key);
  // Keeps `conn` for reuse unless the endpoint already has `max_idle` idle connections.
  void Return(std::unique_ptr<UpstreamConnection> conn, uint32_t max_idle, int64_t now_ns);
  // Closes connections idle since before `cutoff_ns`.
  void CloseIdleBefore(int64_t cutoff_ns);
  void CloseAll();
  size_t idle_count() const;

 private:
  std::unordered_map<const void*, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace tokenway
