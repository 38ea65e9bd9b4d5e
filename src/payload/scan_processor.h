// ScanRequestProcessor and ScanResponseProcessor: the `patterns` and `pii` processors on each
// side of the request path, sharing one TextScanner.
//
// Request (phase 3): every prompt string of the body (messages[].content and its text parts,
// prompt, input) is normalised and scanned; a `block` finding rejects the request (400,
// code content_filter, naming the detector, never the matched text); `redact` findings rewrite
// those string tokens once with placeholders ([EMAIL_1], stable within the request); `flag`
// findings are named in the verdict's `flagged`.
//
// Response (phase 7): a whole JSON body's generated text (message content, tool-call arguments,
// completions' text) is scanned whole; a block replaces the text by "" and the choice's
// finish_reason by "content_filter". A stream's text deltas go through a StreamWindow per choice
// and tool call (stream_window.h); a block ends the stream with a finish_reason "content_filter"
// chunk and an error event (code content_filter).
//
// Built on the control thread; worker threads call them concurrently (per-call scratch is
// thread-local, per-stream state lives in the request context).
#pragma once

#include <memory>

#include "payload/payload_metrics.h"
#include "payload/processor_match.h"
#include "payload/text_scanner.h"
#include "tokenway/payload.h"

namespace tokenway {

// Counters of one processor, created in PayloadMetrics at build time.
struct ScanCounters {
  std::vector<std::atomic<uint64_t>*> request;   // per rule
  std::vector<std::atomic<uint64_t>*> response;  // per rule
  PayloadTiming* request_time = nullptr;
  PayloadTiming* response_time = nullptr;
  static ScanCounters Create(const std::string& processor, const TextScanner& scanner);
};

class ScanRequestProcessor final : public MatchedProcessor<RequestProcessor> {
 public:
  ScanRequestProcessor(std::string name, ProcessorMatch match,
                       std::shared_ptr<const TextScanner> scanner, ScanCounters counters);
  void Process(const PayloadRequest& request, RequestVerdict& verdict) const override;

 private:
  std::shared_ptr<const TextScanner> scanner_;
  ScanCounters counters_;
};

class ScanResponseProcessor final : public MatchedProcessor<ResponseProcessor> {
 public:
  ScanResponseProcessor(std::string name, ProcessorMatch match,
                        std::shared_ptr<const TextScanner> scanner, ScanCounters counters,
                        size_t window);
  ResponseVerdict Process(std::string_view data, std::string& replacement) const override;
  std::unique_ptr<ResponseStreamState> Begin() const override;
  ResponseVerdict Process(ResponseStreamState& state, std::string_view data,
                          std::vector<std::string>& events) const override;
  ResponseVerdict Finish(ResponseStreamState& state,
                         std::vector<std::string>& events) const override;
  size_t window() const { return window_; }

 private:
  class StreamState;
  ResponseVerdict Block(StreamState& s, int choice, const std::string& released, int tool,
                        uint32_t rule, std::vector<std::string>& events) const;
  std::shared_ptr<const TextScanner> scanner_;
  ScanCounters counters_;
  size_t window_;
};

}  // namespace tokenway
