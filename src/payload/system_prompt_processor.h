// SystemPromptProcessor: the `system_prompt` processor — a system prompt per model or tenant
// (its `match`), put in front of what the client sent. `prepend` inserts it as the first message
// of a chat request and keeps the client's own system messages; `enforce` also takes out the
// client's system and developer messages (or, with `client_system: refuse`, refuses such a request
// with 400 system_prompt_not_allowed), so the configured prompt is the only instruction of that
// kind. A completions request's `prompt` (a string or a list of strings) gets the text in front of
// each string; a prompt of token ids cannot, and is refused with 400 prompt_not_text.
//
// The body is rewritten once (JsonEdit): the inserted message, or the messages array rebuilt from
// the client's own message tokens, byte for byte. Built on the control thread; worker threads call
// Process() concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "payload/processor_match.h"
#include "tokenway/payload.h"

namespace tokenway {

struct SystemPromptConfig {
  enum class Mode { kPrepend, kEnforce };
  enum class ClientSystem { kRemove, kRefuse };
  std::string text;                                    // the system prompt, as configured
  Mode mode = Mode::kPrepend;                          // prepend | enforce
  ClientSystem client_system = ClientSystem::kRemove;  // enforce: remove | refuse
};

class SystemPromptProcessor final : public MatchedProcessor<RequestProcessor> {
 public:
  SystemPromptProcessor(std::string name, ProcessorMatch match, SystemPromptConfig config);
  void Process(const PayloadRequest& request, RequestVerdict& verdict) const override;

 private:
  SystemPromptConfig config_;
  std::string message_;             // the system message object, serialised once
  std::string prefix_;              // the text as a JSON string's contents (no quotes)
  std::atomic<uint64_t>* added_;    // verdicts: system_prompt / prepend
  std::atomic<uint64_t>* removed_;  // verdicts: system_prompt / remove
  std::atomic<uint64_t>* refused_;  // verdicts: system_prompt / refuse
};

}  // namespace tokenway
