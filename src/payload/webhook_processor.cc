#include "payload/webhook_processor.h"

#include <simdjson.h>

#include "common/json_writer.h"
#include "common/request_inspector.h"

namespace tokenway {

namespace {

void Invalid(ExternalAnswer& answer, std::string why) {
  answer = ExternalAnswer{};
  answer.kind = ExternalAnswer::Kind::kFailed;
  answer.failure = ExternalCallCounters::kBadAnswer;
  answer.message = std::move(why);
}

ExternalCallCounters::Failure FailureOf(JsonCallError e) {
  switch (e) {
    case JsonCallError::kConnect:
      return ExternalCallCounters::kConnect;
    case JsonCallError::kTimeout:
      return ExternalCallCounters::kDeadline;
    case JsonCallError::kClosed:
      return ExternalCallCounters::kClosed;
    case JsonCallError::kProtocol:
      return ExternalCallCounters::kProtocol;
    case JsonCallError::kTooLarge:
      return ExternalCallCounters::kTooLarge;
    case JsonCallError::kNone:
      break;
  }
  return ExternalCallCounters::kBadAnswer;
}

}  // namespace

WebhookProcessor::WebhookProcessor(std::string name, ProcessorMatch match,
                                   ExternalProcessorConfig config, HttpTarget target)
    : ExternalRequestProcessor(std::move(name), std::move(match), std::move(config)),
      target_(std::move(target)) {}

void BuildWebhookRequest(const PayloadRequest& request, std::string_view request_id,
                         std::string& out) {
  const InspectedRequest& in = *request.inspected;
  out.reserve(out.size() + request.body.size() + in.prompt_text.size() + 256);
  out.append("{\"request_id\":");
  AppendJsonString(out, request_id);
  out.append(",\"tenant\":");
  AppendJsonString(out, request.tenant);
  out.append(",\"model\":");
  AppendJsonString(out, in.model);
  out.append(",\"operation\":");
  AppendJsonString(out, OperationName(in.operation));
  out.append(",\"stream\":").append(in.stream ? "true" : "false");
  out.append(",\"prompt_tokens\":");
  AppendJsonInt(out, request.prompt_tokens);
  out.append(",\"prompt\":");
  AppendJsonString(out, in.prompt_text);
  // The body passed inspection, so it is one valid JSON value: embedded as received.
  out.append(",\"body\":").append(request.body).append("}");
}

void ParseWebhookAnswer(std::string_view body, ExternalAnswer& answer) {
  thread_local simdjson::dom::parser parser;  // keeps its buffers for the thread's next answer
  simdjson::dom::element root;
  if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) {
    return Invalid(answer, "the answer is not JSON");
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    return Invalid(answer, "the answer is not a JSON object");
  }
  std::string_view action;
  if (obj["action"].get_string().get(action) != simdjson::SUCCESS) {
    return Invalid(answer, "the answer has no \"action\" string");
  }
  answer = ExternalAnswer{};
  if (action == "allow") {
    answer.kind = ExternalAnswer::Kind::kAllow;
    return;
  }
  if (action == "deny") {
    answer.kind = ExternalAnswer::Kind::kDeny;
    std::string_view s;
    if (auto r = obj["reason"]; r.error() == simdjson::SUCCESS) {
      if (r.get_string().get(s) != simdjson::SUCCESS) {
        return Invalid(answer, "\"reason\" must be a string");
      }
      answer.message.assign(s);
    }
    if (auto c = obj["code"]; c.error() == simdjson::SUCCESS) {
      if (c.get_string().get(s) != simdjson::SUCCESS || s.empty() || s.size() > 128) {
        return Invalid(answer, "\"code\" must be a non-empty string of at most 128 bytes");
      }
      answer.code.assign(s);
    }
    if (auto st = obj["status"]; st.error() == simdjson::SUCCESS) {
      int64_t status = 0;
      if (st.get_int64().get(status) != simdjson::SUCCESS || status < 400 || status > 599) {
        return Invalid(answer, "\"status\" must be an integer from 400 to 599");
      }
      answer.status = static_cast<int>(status);
    }
    simdjson::dom::element e;
    if (obj["error"].get(e) == simdjson::SUCCESS) {
      if (!e.is_object()) return Invalid(answer, "\"error\" must be an object");
      answer.body = "{\"error\":" + simdjson::minify(e) + "}";
    }
    return;
  }
  if (action == "mutate") {
    simdjson::dom::element b;
    if (obj["body"].get(b) != simdjson::SUCCESS || !b.is_object()) {
      return Invalid(answer, "a mutate answer needs \"body\", the new request body as an object");
    }
    answer.kind = ExternalAnswer::Kind::kMutate;
    answer.body = simdjson::minify(b);
    return;
  }
  Invalid(answer,
          "unknown action '" + std::string(action.substr(0, 64)) + "' (allow, deny or mutate)");
}

boost::asio::awaitable<void> WebhookProcessor::Exchange(
    const PayloadRequest& request, const ExternalCallSite& site,
    std::chrono::steady_clock::time_point deadline, ExternalAnswer& answer) const {
  std::string body;
  BuildWebhookRequest(request, site.request_id, body);
  JsonPostOptions options;
  options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (options.timeout.count() <= 0) options.timeout = std::chrono::milliseconds(1);
  options.max_response_bytes = config().max_answer_bytes;
  options.retries = config().retries;
  options.extra_headers = config().headers;
  JsonResponse r = co_await site.http->Post(target_, body, options);
  if (!r.ok()) {
    answer.kind = ExternalAnswer::Kind::kFailed;
    answer.failure = FailureOf(r.error);
    answer.message = std::move(r.message);
    co_return;
  }
  if (r.status != 200) {
    answer.kind = ExternalAnswer::Kind::kFailed;
    answer.failure = ExternalCallCounters::kHttpStatus;
    answer.message = "the webhook answered HTTP " + std::to_string(r.status);
    co_return;
  }
  ParseWebhookAnswer(r.body, answer);
}

}  // namespace tokenway
