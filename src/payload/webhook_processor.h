// WebhookProcessor: the `webhook` request processor — POSTs a JSON description of the request to
// a service of the user's and follows its answer: allow, deny (with a reason, a status and a
// code) or mutate (a replacement request body, which the payload phase inspects again).
//
// The request it sends (docs/configuration.md, "webhook"):
//   {"request_id": "...", "tenant": "...", "model": "...", "operation": "chat",
//    "stream": false, "prompt_tokens": 12, "prompt": "<flattened prompt>", "body": {...}}
// where `body` is the client's JSON body embedded as it is. The answer (HTTP 200, JSON):
//   {"action": "allow"}
//   {"action": "deny", "reason": "...", "status": 403, "code": "...", "error": {...}}
//   {"action": "mutate", "body": {...}}
// Any other status, a body that is not such an object, or an unknown action is a failed call
// (invalid_answer) and the failure mode applies. ParseWebhookAnswer is exposed for tests.
//
// Calls run on the worker's JsonClient (keep-alive per worker, one deadline per call, retries
// only when the connection failed before anything was sent).
#pragma once

#include <string>
#include <string_view>

#include "http/json_client.h"
#include "payload/external_processor.h"

namespace tokenway {

class WebhookProcessor final : public ExternalRequestProcessor {
 public:
  // `target` is config.url parsed (LoadProcessorsConfig has validated it).
  WebhookProcessor(std::string name, ProcessorMatch match, ExternalProcessorConfig config,
                   HttpTarget target);

 protected:
  boost::asio::awaitable<void> Exchange(const PayloadRequest& request, const ExternalCallSite& site,
                                        std::chrono::steady_clock::time_point deadline,
                                        ExternalAnswer& answer) const override;

 private:
  const HttpTarget target_;
};

// The JSON request a webhook receives for `request`.
void BuildWebhookRequest(const PayloadRequest& request, std::string_view request_id,
                         std::string& out);

// Reads a webhook's 200 answer into `answer` (kAllow, kDeny, kMutate, or kFailed with kBadAnswer
// and why).
void ParseWebhookAnswer(std::string_view body, ExternalAnswer& answer);

}  // namespace tokenway
