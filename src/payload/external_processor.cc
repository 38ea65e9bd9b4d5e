#include "payload/external_processor.h"

#include "common/duration.h"

namespace tokenway {

namespace {

// Adds `name` to a comma-separated flag list.
void AppendFlag(std::string& flagged, std::string_view name) {
  if (!flagged.empty()) flagged.push_back(',');
  flagged.append(name);
}

ExternalCallCounters::Outcome OutcomeOf(ExternalCallCounters::Failure f) {
  switch (f) {
    case ExternalCallCounters::kDeadline:
      return ExternalCallCounters::kTimeout;
    case ExternalCallCounters::kConcurrency:
      return ExternalCallCounters::kOverloaded;
    case ExternalCallCounters::kBadAnswer:
    case ExternalCallCounters::kTooLarge:
      return ExternalCallCounters::kInvalidAnswer;
    default:
      return ExternalCallCounters::kError;
  }
}

// Releases a max_concurrency slot on every exit path.
class InFlightSlot {
 public:
  explicit InFlightSlot(std::atomic<int64_t>& n) : n_(n) {}
  ~InFlightSlot() { n_.fetch_sub(1, std::memory_order_relaxed); }
  InFlightSlot(const InFlightSlot&) = delete;
  InFlightSlot& operator=(const InFlightSlot&) = delete;

 private:
  std::atomic<int64_t>& n_;
};

}  // namespace

ExternalRequestProcessor::ExternalRequestProcessor(std::string name, ProcessorMatch match,
                                                   ExternalProcessorConfig config)
    : MatchedProcessor(std::move(name), std::move(match)),
      config_(std::move(config)),
      counters_(PayloadMetrics::Global().External(name_)) {}

void ExternalRequestProcessor::Process(const PayloadRequest&, RequestVerdict& verdict) const {
  ApplyFailure(ExternalCallCounters::kConnect, "called without an event loop", verdict);
}

void ExternalRequestProcessor::ApplyFailure(ExternalCallCounters::Failure failure,
                                            std::string_view why, RequestVerdict& verdict) const {
  counters_->Fail(failure);
  counters_->Count(OutcomeOf(failure));
  if (config_.failure_mode == FailureMode::kOpen) {
    verdict.kind = RequestVerdict::Kind::kPass;
    std::string flag = name_;
    flag.append(":unavailable");
    AppendFlag(verdict.flagged, flag);
    return;
  }
  verdict.kind = RequestVerdict::Kind::kReject;
  verdict.status = 503;
  verdict.code = "payload_processor_unavailable";
  verdict.message = "payload processor '" + name_ + "' is unavailable: " + std::string(why);
  verdict.reply_body.clear();
}

void ExternalRequestProcessor::Settle(const ExternalAnswer& answer, RequestVerdict& verdict) const {
  switch (answer.kind) {
    case ExternalAnswer::Kind::kAllow:
      counters_->Count(ExternalCallCounters::kAllow);
      verdict.kind = RequestVerdict::Kind::kPass;
      return;
    case ExternalAnswer::Kind::kDeny:
      counters_->Count(ExternalCallCounters::kDeny);
      verdict.kind = RequestVerdict::Kind::kReject;
      verdict.status = answer.status != 0 ? answer.status : static_cast<int>(config_.deny_status);
      verdict.code = answer.code.empty() ? "content_filter" : answer.code;
      verdict.message = answer.message.empty()
                            ? "the request was refused by payload processor '" + name_ + "'"
                            : answer.message;
      verdict.reply_body = answer.body;
      AppendFlag(verdict.flagged, name_);
      return;
    case ExternalAnswer::Kind::kMutate:
      counters_->Count(ExternalCallCounters::kMutate);
      verdict.kind = RequestVerdict::Kind::kReplace;
      verdict.body = answer.body;
      return;
    case ExternalAnswer::Kind::kFailed:
      ApplyFailure(answer.failure, answer.message, verdict);
      return;
  }
}

boost::asio::awaitable<void> ExternalRequestProcessor::Call(PayloadRequest request,
                                                            ExternalCallSite site,
                                                            RequestVerdict& verdict) const {
  // The gate: one atomic add; a call beyond the limit fails at once without waiting.
  const int64_t now_in_flight = counters_->in_flight.fetch_add(1, std::memory_order_relaxed) + 1;
  InFlightSlot slot(counters_->in_flight);
  if (now_in_flight > static_cast<int64_t>(config_.max_concurrency)) {
    ApplyFailure(ExternalCallCounters::kConcurrency,
                 std::to_string(config_.max_concurrency) + " calls are already in flight", verdict);
    co_return;
  }
  if (site.io == nullptr) {
    Process(request, verdict);
    co_return;
  }
  const int64_t start = MonotonicNanos();
  ExternalAnswer answer;
  co_await Exchange(request, site, std::chrono::steady_clock::now() + config_.timeout, answer);
  counters_->Observe(MonotonicNanos() - start);
  Settle(answer, verdict);
}

}  // namespace tokenway
