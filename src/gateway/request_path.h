// The request path of an inference request through the HTTP front door: the phases of
// phases/phases.h in order, with settle and observe on every exit path.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "gateway/request_context.h"

namespace tokenway {

// Runs one inference request whose context the front door has reset (RequestContext::Reset)
// and given its id (AssignRequestId). Worker thread; returns when the response is complete, the
// client has gone, or a local answer has been sent.
boost::asio::awaitable<void> ServeInferenceRequest(RequestContext& ctx, ClientLink& client);

}  // namespace tokenway
