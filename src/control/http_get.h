// HttpGet: one small GET to an endpoint from the control thread (health checks, engine-metric
// scrapes). One deadline for the whole exchange, a bounded body. Without a KeptConnection each
// call uses a fresh connection and asks the server to close it; with one, the connection is kept
// open between calls (engine scrapes every 50 ms would otherwise open 20 connections per second
// per endpoint), and a kept connection the server has closed meanwhile is replaced once.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/duration.h"
#include "control/runtime.h"

namespace tokenway {

// A connection kept between HttpGet calls to one endpoint. Used by one call at a time (the
// caller guarantees it); destroying it closes the connection.
class KeptConnection {
 public:
  KeptConnection();
  ~KeptConnection();
  KeptConnection(const KeptConnection&) = delete;
  KeptConnection& operator=(const KeptConnection&) = delete;
  bool open() const;
  uint64_t connects() const { return connects_; }  // connections opened so far (tests)

  // HttpGet's view of the connection.
  struct State;
  State& state() { return *state_; }
  void CountConnect() { ++connects_; }

 private:
  std::unique_ptr<State> state_;
  uint64_t connects_ = 0;
};

// The body of a 2xx answer to GET `path`, or nullopt when the endpoint could not be reached,
// answered otherwise, sent more than `body_limit` bytes or took longer than `timeout`.
boost::asio::awaitable<std::optional<std::string>> HttpGet(
    PoolEndpoint endpoint, std::string path, Duration timeout, uint64_t body_limit,
    std::string user_agent, std::shared_ptr<KeptConnection> keep = nullptr);

}  // namespace tokenway
