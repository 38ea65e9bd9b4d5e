// LimitsProcessor: the `limits` processor — a maximum prompt size in tokens (the token
// estimator's count) and request fields that are refused (e.g. logprobs, tools), for the requests
// its `match` selects. A refusal is a 400 with code prompt_too_long or field_not_allowed.
// Built on the control thread; worker threads call it concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "payload/processor_match.h"
#include "tokenway/payload.h"

namespace tokenway {

struct LimitsProcessorConfig {
  int64_t max_prompt_tokens = 0;         // 0: no limit
  std::vector<std::string> deny_fields;  // top-level request fields refused when present
};

class LimitsProcessor final : public MatchedProcessor<RequestProcessor> {
 public:
  LimitsProcessor(std::string name, ProcessorMatch match, LimitsProcessorConfig config);
  void Process(const PayloadRequest& request, RequestVerdict& verdict) const override;

 private:
  LimitsProcessorConfig config_;
};

}  // namespace tokenway
