#include "payload/limits_processor.h"

#include "payload/json_text.h"

namespace tokenway {

LimitsProcessor::LimitsProcessor(std::string name, ProcessorMatch match,
                                 LimitsProcessorConfig config)
    : MatchedProcessor(std::move(name), std::move(match)), config_(std::move(config)) {}

void LimitsProcessor::Process(const PayloadRequest& request, RequestVerdict& verdict) const {
  if (config_.max_prompt_tokens > 0 && request.prompt_tokens > config_.max_prompt_tokens) {
    verdict.kind = RequestVerdict::Kind::kReject;
    verdict.status = 400;
    verdict.code = "prompt_too_long";
    verdict.message = "the prompt has about " + std::to_string(request.prompt_tokens) +
                      " tokens; at most " + std::to_string(config_.max_prompt_tokens) +
                      " are allowed (payload processor '" + name_ + "')";
    return;
  }
  if (config_.deny_fields.empty()) return;
  thread_local JsonTexts texts;
  if (!FindRequestTexts(request.body, texts)) return;
  for (const std::string& key : texts.top_level_keys) {
    for (const std::string& denied : config_.deny_fields) {
      if (key != denied) continue;
      verdict.kind = RequestVerdict::Kind::kReject;
      verdict.status = 400;
      verdict.code = "field_not_allowed";
      verdict.message =
          "the request field '" + key + "' is not allowed (payload processor '" + name_ + "')";
      return;
    }
  }
}

}  // namespace tokenway
