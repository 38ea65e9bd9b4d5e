// HttpGet: one small GET to an endpoint from the control thread (health checks, engine-metric
// scrapes). A fresh connection per call, one deadline for the whole exchange, a bounded body.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "common/duration.h"
#include "control/runtime.h"

namespace tokenway {

// The body of a 2xx answer to GET `path`, or nullopt when the endpoint could not be reached,
// answered otherwise, sent more than `body_limit` bytes or took longer than `timeout`.
boost::asio::awaitable<std::optional<std::string>> HttpGet(PoolEndpoint endpoint, std::string path,
                                                           Duration timeout, uint64_t body_limit,
                                                           std::string user_agent);

}  // namespace tokenway
