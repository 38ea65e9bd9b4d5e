#include "payload/system_prompt_processor.h"

#include <vector>

#include "common/json_writer.h"
#include "payload/json_text.h"
#include "payload/payload_metrics.h"

namespace tokenway {

namespace {

bool IsClientInstruction(std::string_view role) {
  return role == "system" || role == "developer";
}

void Reject(RequestVerdict& verdict, std::string code, std::string message) {
  verdict.kind = RequestVerdict::Kind::kReject;
  verdict.status = 400;
  verdict.code = std::move(code);
  verdict.message = std::move(message);
}

}  // namespace

SystemPromptProcessor::SystemPromptProcessor(std::string name, ProcessorMatch match,
                                             SystemPromptConfig config)
    : MatchedProcessor(std::move(name), std::move(match)), config_(std::move(config)) {
  message_ = R"({"role":"system","content":)";
  AppendJsonString(message_, config_.text);
  message_.push_back('}');
  AppendJsonString(prefix_, config_.text);
  prefix_ = prefix_.substr(1, prefix_.size() - 2);
  PayloadMetrics& m = PayloadMetrics::Global();
  added_ = m.Verdict(name_, "system_prompt", "prepend", PayloadDirection::kRequest);
  removed_ = m.Verdict(name_, "system_prompt", "remove", PayloadDirection::kRequest);
  refused_ = m.Verdict(name_, "system_prompt", "refuse", PayloadDirection::kRequest);
}

void SystemPromptProcessor::Process(const PayloadRequest& request, RequestVerdict& verdict) const {
  thread_local RequestStructure structure;
  thread_local std::vector<JsonEdit> edits;
  if (!FindRequestStructure(request.body, structure)) return;
  edits.clear();
  if (structure.has_messages) {
    size_t instructions = 0;
    if (config_.mode == SystemPromptConfig::Mode::kEnforce) {
      for (const RequestMessage& m : structure.messages)
        instructions += IsClientInstruction(m.role);
    }
    if (instructions > 0 && config_.client_system == SystemPromptConfig::ClientSystem::kRefuse) {
      refused_->fetch_add(1, std::memory_order_relaxed);
      Reject(verdict, "system_prompt_not_allowed",
             "system and developer messages are not allowed for this model; the system prompt is "
             "set by the gateway (payload processor '" +
                 name_ + "')");
      return;
    }
    JsonEdit edit;
    if (instructions == 0) {
      // Insert right after the array's '['.
      edit.offset = structure.messages_offset + 1;
      edit.replacement = message_;
      if (!structure.messages.empty()) edit.replacement.push_back(',');
    } else {
      // The array again: the configured message, then the client's other messages as they came.
      edit.offset = structure.messages_offset;
      edit.length = structure.messages_length;
      edit.replacement.reserve(structure.messages_length + message_.size() + 2);
      edit.replacement.push_back('[');
      edit.replacement.append(message_);
      for (const RequestMessage& m : structure.messages) {
        if (IsClientInstruction(m.role)) continue;
        edit.replacement.push_back(',');
        edit.replacement.append(request.body.substr(m.offset, m.length));
      }
      edit.replacement.push_back(']');
      removed_->fetch_add(1, std::memory_order_relaxed);
    }
    edits.push_back(std::move(edit));
  } else if (structure.has_prompt) {
    if (!structure.prompt_text || structure.prompt_strings.empty()) {
      refused_->fetch_add(1, std::memory_order_relaxed);
      Reject(verdict, "prompt_not_text",
             "the prompt must be text (a string or a list of strings): payload processor '" +
                 name_ + "' puts a system prompt in front of it");
      return;
    }
    for (const JsonTextField& s : structure.prompt_strings) {
      // Right after the opening quote: the text, escaped, then the client's string as it came.
      edits.push_back({s.offset + 1, 0, prefix_});
    }
  } else {
    return;  // embeddings and other bodies without instructions
  }
  added_->fetch_add(1, std::memory_order_relaxed);
  verdict.kind = RequestVerdict::Kind::kReplace;
  ApplyJsonEdits(request.body, edits, verdict.body);
}

}  // namespace tokenway
