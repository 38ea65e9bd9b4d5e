#include "payload/ext_proc_processor.h"

#include <simdjson.h>

#include "envoy/service/ext_proc/v3/external_processor.pb.h"
#include "http/ext_proc_call.h"

namespace tokenway {

namespace {

namespace ext_proc = envoy::service::ext_proc::v3;

void AddHeader(ext_proc::HttpHeaders& h, std::string_view key, std::string_view value) {
  auto* hv = h.mutable_headers()->add_headers();
  hv->set_key(std::string(key));
  hv->set_raw_value(std::string(value));
}

bool IsJsonObject(std::string_view text) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  return parser.parse(text.data(), text.size()).get(root) == simdjson::SUCCESS && root.is_object();
}

void Failed(ExternalAnswer& answer, ExternalCallCounters::Failure f, std::string why) {
  answer.kind = ExternalAnswer::Kind::kFailed;
  answer.failure = f;
  answer.message = std::move(why);
}

// Reads an immediate_response into a deny.
void Deny(const ext_proc::ImmediateResponse& im, ExternalAnswer& answer) {
  answer.kind = ExternalAnswer::Kind::kDeny;
  const int code = static_cast<int>(im.status().code());
  answer.status = code >= 400 && code <= 599 ? code : 0;
  const std::string& body = im.body();
  if (!body.empty() && IsJsonObject(body)) {
    answer.body = body;
  } else if (!body.empty()) {
    answer.message = body.substr(0, 1024);
  } else if (!im.details().empty()) {
    answer.message = im.details().substr(0, 1024);
  }
}

// What a CommonResponse says about the body. False: the answer is unusable (`answer` says why).
bool ReadCommon(const ext_proc::CommonResponse& common, size_t limit, ExternalAnswer& answer,
                bool& replaced) {
  replaced = false;
  if (!common.has_body_mutation()) return true;
  const auto& m = common.body_mutation();
  if (m.has_streamed_response()) {
    Failed(answer, ExternalCallCounters::kBadAnswer,
           "a streamed body mutation answers a BUFFERED request body");
    return false;
  }
  if (m.mutation_case() == ext_proc::BodyMutation::kBody) {
    if (m.body().size() > limit) {
      Failed(answer, ExternalCallCounters::kTooLarge, "the body mutation exceeds the limit");
      return false;
    }
    answer.body = m.body();
    replaced = true;
  } else if (m.mutation_case() == ext_proc::BodyMutation::kClearBody && m.clear_body()) {
    answer.body.clear();
    replaced = true;
  }
  return true;
}

}  // namespace

ExtProcProcessor::ExtProcProcessor(std::string name, ProcessorMatch match,
                                   ExternalProcessorConfig config)
    : ExternalRequestProcessor(std::move(name), std::move(match), std::move(config)) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  channel_ =
      grpc::CreateCustomChannel(this->config().url, grpc::InsecureChannelCredentials(), args);
  stub_ = std::make_unique<grpc::GenericStub>(channel_);
}

boost::asio::awaitable<void> ExtProcProcessor::Exchange(
    const PayloadRequest& request, const ExternalCallSite& site,
    std::chrono::steady_clock::time_point deadline, ExternalAnswer& answer) const {
  ext_proc::ProcessingRequest headers;
  {
    ext_proc::HttpHeaders* h = headers.mutable_request_headers();
    AddHeader(*h, ":method", "POST");
    AddHeader(*h, ":path", site.path);
    AddHeader(*h, ":authority", site.authority);
    AddHeader(*h, ":scheme", "http");
    AddHeader(*h, "content-type", "application/json");
    AddHeader(*h, "content-length", std::to_string(request.body.size()));
    AddHeader(*h, "x-request-id", site.request_id);
    if (!request.tenant.empty()) AddHeader(*h, "x-tokenway-tenant", request.tenant);
    h->set_end_of_stream(false);
  }
  ext_proc::ProcessingRequest body;
  body.mutable_request_body()->set_body(std::string(request.body));
  body.mutable_request_body()->set_end_of_stream(true);

  for (uint32_t attempt = 0;; ++attempt) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      Failed(answer, ExternalCallCounters::kDeadline, "no answer in time");
      co_return;
    }
    std::shared_ptr<ExtProcCall> call = ExtProcCall::Start(*stub_, *site.io, left);
    bool answered = false;  // any answer arrived (the service has the request)
    bool decided = false;
    // Reads the next answer; false when the stream ended or sent garbage (`answer` says why
    // unless the status at Finish() explains it better).
    auto next = [&]() -> boost::asio::awaitable<std::optional<ext_proc::ProcessingResponse>> {
      ExtProcCall::ReadResult r = co_await call->Read();
      if (r.outcome == ExtProcCall::ReadOutcome::kMessage) {
        answered = true;
        co_return std::move(r.message);
      }
      if (r.outcome == ExtProcCall::ReadOutcome::kMalformed) {
        answered = true;
        Failed(answer, ExternalCallCounters::kBadAnswer,
               "the service sent bytes that are not a ProcessingResponse");
        decided = true;
      }
      co_return std::nullopt;
    };

    co_await call->Write(headers);
    std::optional<ext_proc::ProcessingResponse> first = co_await next();
    if (first) {
      if (first->has_immediate_response()) {
        Deny(first->immediate_response(), answer);
        decided = true;
      } else if (first->has_request_headers()) {
        const auto& common = first->request_headers().response();
        bool replaced = false;
        if (!ReadCommon(common, config().max_answer_bytes, answer, replaced)) {
          decided = true;
        } else if (common.status() == ext_proc::CommonResponse::CONTINUE_AND_REPLACE) {
          answer.kind = replaced ? ExternalAnswer::Kind::kMutate : ExternalAnswer::Kind::kAllow;
          decided = true;
        }
      } else {
        Failed(answer, ExternalCallCounters::kBadAnswer,
               "expected a request_headers answer, got response case " +
                   std::to_string(static_cast<int>(first->response_case())));
        decided = true;
      }
      if (!decided) {
        co_await call->Write(body);
        std::optional<ext_proc::ProcessingResponse> second = co_await next();
        if (second) {
          decided = true;
          if (second->has_immediate_response()) {
            Deny(second->immediate_response(), answer);
          } else if (second->has_request_body()) {
            bool replaced = false;
            if (ReadCommon(second->request_body().response(), config().max_answer_bytes, answer,
                           replaced)) {
              answer.kind = replaced ? ExternalAnswer::Kind::kMutate : ExternalAnswer::Kind::kAllow;
            }
          } else {
            Failed(answer, ExternalCallCounters::kBadAnswer,
                   "expected a request_body answer, got response case " +
                       std::to_string(static_cast<int>(second->response_case())));
          }
        }
      }
    }
    // The exchange is over either way: end the stream now rather than wait for the service to.
    if (decided) call->Cancel();
    const grpc::Status status = co_await call->Finish();
    if (decided) co_return;
    // The stream ended before a decision: the status says why.
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !answered &&
        attempt < config().retries) {
      continue;  // the channel could not reach the service: nothing was processed
    }
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      Failed(answer, ExternalCallCounters::kDeadline, "no answer in time");
    } else if (status.ok()) {
      Failed(answer, ExternalCallCounters::kClosed,
             "the service ended the stream without an answer");
    } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !answered) {
      Failed(answer, ExternalCallCounters::kConnect,
             "cannot reach the service: " + status.error_message());
    } else {
      Failed(answer, ExternalCallCounters::kGrpcStatus,
             "the stream ended with gRPC status " + std::to_string(status.error_code()) + ": " +
                 status.error_message());
    }
    co_return;
  }
}

}  // namespace tokenway
