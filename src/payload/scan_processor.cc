#include "payload/scan_processor.h"

#include <algorithm>

#include "common/duration.h"
#include "common/json_writer.h"
#include "common/openai_error.h"
#include "payload/json_text.h"
#include "payload/stream_window.h"

namespace tokenway {

namespace {

struct Scratch {
  JsonTexts texts;
  NormalizedText norm;
  std::vector<Finding> findings;
  std::vector<JsonEdit> edits;
  std::string redacted;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// After a very large body, gives the scratch's memory back rather than keeping several times the
// largest prompt per worker thread for good.
void TrimScratch(Scratch& s) {
  constexpr size_t kKeep = 1 << 20;
  if (s.norm.origin.capacity() > kKeep / 4 || s.norm.text.capacity() > kKeep) {
    s.norm = NormalizedText();
  }
  if (s.redacted.capacity() > kKeep) s.redacted = std::string();
  if (s.texts.fields.size() > 1024 ||
      (!s.texts.fields.empty() && s.texts.fields.front().text.capacity() > kKeep)) {
    s.texts = JsonTexts();
  }
}

// Adds the processor's CPU time on the worker to its counters when it goes out of scope. Every
// call is counted; a stream event, which costs well under a microsecond, reads the clock on one
// call in kSampleEvery per thread and counts that call's time kSampleEvery times, so the clock's
// own cost (two reads per event) is not paid on every event.
class ProcessingTimer {
 public:
  static constexpr uint32_t kSampleEvery = 16;
  explicit ProcessingTimer(PayloadTiming* timing, bool sampled = false)
      : timing_(timing), weight_(sampled ? Weight() : 1), start_(weight_ ? MonotonicNanos() : 0) {}
  ~ProcessingTimer() {
    timing_->calls.fetch_add(1, std::memory_order_relaxed);
    if (weight_ == 0) return;
    timing_->nanos.fetch_add(static_cast<uint64_t>(MonotonicNanos() - start_) * weight_,
                             std::memory_order_relaxed);
  }

 private:
  static uint32_t Weight() {
    thread_local uint32_t tick = 0;
    return ++tick % kSampleEvery == 0 ? kSampleEvery : 0;
  }
  PayloadTiming* timing_;
  uint32_t weight_;
  int64_t start_;
};

void AddFlag(std::string& flagged, std::string_view name) {
  size_t at = 0;
  while (at <= flagged.size()) {
    size_t comma = flagged.find(',', at);
    if (comma == std::string::npos) comma = flagged.size();
    if (std::string_view(flagged).substr(at, comma - at) == name) return;
    at = comma + 1;
  }
  if (!flagged.empty()) flagged.push_back(',');
  flagged.append(name);
}

void Count(const std::vector<std::atomic<uint64_t>*>& cells, uint32_t rule) {
  cells[rule]->fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

ScanCounters ScanCounters::Create(const std::string& processor, const TextScanner& scanner) {
  ScanCounters c;
  PayloadMetrics& m = PayloadMetrics::Global();
  for (const ScanRule& rule : scanner.rules()) {
    const std::string action(ScanActionName(rule.action));
    c.request.push_back(m.Verdict(processor, rule.name, action, PayloadDirection::kRequest));
    c.response.push_back(m.Verdict(processor, rule.name, action, PayloadDirection::kResponse));
  }
  c.request_time = m.Timing(processor, PayloadDirection::kRequest);
  c.response_time = m.Timing(processor, PayloadDirection::kResponse);
  return c;
}

// --- request ---

ScanRequestProcessor::ScanRequestProcessor(std::string name, ProcessorMatch match,
                                           std::shared_ptr<const TextScanner> scanner,
                                           ScanCounters counters)
    : MatchedProcessor(std::move(name), std::move(match)),
      scanner_(std::move(scanner)),
      counters_(std::move(counters)) {}

void ScanRequestProcessor::Process(const PayloadRequest& request, RequestVerdict& verdict) const {
  ProcessingTimer timer(counters_.request_time);
  Scratch& s = ThreadScratch();
  struct Trim {
    Scratch& s;
    ~Trim() { TrimScratch(s); }
  } trim{s};
  if (!FindRequestTexts(request.body, s.texts)) return;
  Placeholders placeholders;
  s.edits.clear();
  for (const JsonTextField& field : s.texts.fields) {
    NormalizeText(field.text, s.norm);
    scanner_->Scan(s.norm, s.findings);
    if (s.findings.empty()) continue;
    bool redact = false;
    for (const Finding& f : s.findings) {
      const ScanRule& rule = scanner_->rules()[f.rule];
      Count(counters_.request, f.rule);
      if (rule.action == ScanAction::kBlock) {
        verdict.kind = RequestVerdict::Kind::kReject;
        verdict.status = 400;
        verdict.code = "content_filter";
        verdict.message = "the request was blocked by payload processor '" + name_ +
                          "': " + rule.name + " detected in the prompt";
        return;
      }
      if (rule.action == ScanAction::kRedact) {
        redact = true;
      } else {
        AddFlag(verdict.flagged, rule.name);
      }
    }
    if (!redact) continue;
    if (field.length == field.text.size() + 2) {
      // The string token has no escapes: its bytes are the text's (valid UTF-8, checked when the
      // body was inspected), so each redacted span is replaced in place and nothing is copied or
      // escaped twice.
      for (const Finding& f : s.findings) {
        const ScanRule& rule = scanner_->rules()[f.rule];
        if (rule.action != ScanAction::kRedact) continue;
        JsonEdit edit;
        edit.offset = field.offset + 1 + f.begin;
        edit.length = f.end - f.begin;
        placeholders.Append(rule, f.rule,
                            std::string_view(field.text).substr(f.begin, f.end - f.begin),
                            edit.replacement);
        s.edits.push_back(std::move(edit));
      }
      continue;
    }
    RedactWhole(field.text, s.findings, *scanner_, placeholders, s.redacted);
    JsonEdit edit;
    edit.offset = field.offset;
    edit.length = field.length;
    AppendJsonText(edit.replacement, s.redacted);
    s.edits.push_back(std::move(edit));
  }
  if (s.edits.empty()) return;
  verdict.kind = RequestVerdict::Kind::kReplace;
  ApplyJsonEdits(request.body, s.edits, verdict.body);
}

// --- response ---

class ScanResponseProcessor::StreamState final : public ResponseStreamState {
 public:
  struct Channel {
    int choice = 0;
    int tool = -1;
    StreamWindow window;
  };
  Channel& Get(int choice, int tool) {
    for (Channel& c : channels) {
      if (c.choice == choice && c.tool == tool) return c;
    }
    channels.emplace_back();
    channels.back().choice = choice;
    channels.back().tool = tool;
    return channels.back();
  }
  // An event carrying `text` for one channel, shaped like the upstream's chunks.
  void AppendTextEvent(int choice, int tool, std::string_view text, std::string& out) const {
    AppendHead(out);
    out.append(R"("choices":[{"index":)");
    AppendJsonInt(out, choice);
    if (completion) {
      out.append(R"(,"text":)");
      AppendJsonString(out, text);
    } else if (tool < 0) {
      out.append(R"(,"delta":{"content":)");
      AppendJsonString(out, text);
      out.push_back('}');
    } else {
      out.append(R"(,"delta":{"tool_calls":[{"index":)");
      AppendJsonInt(out, tool);
      out.append(R"(,"function":{"arguments":)");
      AppendJsonString(out, text);
      out.append("}}]}");
    }
    out.append(R"(,"finish_reason":null}]})");
  }
  void AppendFilteredEvent(int choice, std::string& out) const {
    AppendHead(out);
    out.append(R"("choices":[{"index":)");
    AppendJsonInt(out, choice);
    out.append(completion ? R"(,"text":"")" : R"(,"delta":{})");
    out.append(R"(,"finish_reason":"content_filter"}]})");
  }

  std::vector<Channel> channels;
  Placeholders placeholders;
  std::string id, model, created;
  bool completion = false;
  WindowRelease release;
  std::vector<JsonEdit> edits;
  std::string event;

 private:
  void AppendHead(std::string& out) const {
    out.push_back('{');
    if (!id.empty()) out.append(R"("id":)").append(id).push_back(',');
    out.append(completion ? R"("object":"text_completion",)"
                          : R"("object":"chat.completion.chunk",)");
    if (!created.empty()) out.append(R"("created":)").append(created).push_back(',');
    if (!model.empty()) out.append(R"("model":)").append(model).push_back(',');
  }
};

ScanResponseProcessor::ScanResponseProcessor(std::string name, ProcessorMatch match,
                                             std::shared_ptr<const TextScanner> scanner,
                                             ScanCounters counters, size_t window)
    : MatchedProcessor(std::move(name), std::move(match)),
      scanner_(std::move(scanner)),
      counters_(std::move(counters)),
      window_(window) {}

ResponseVerdict ScanResponseProcessor::Process(std::string_view data,
                                               std::string& replacement) const {
  ProcessingTimer timer(counters_.response_time);
  Scratch& s = ThreadScratch();
  struct Trim {
    Scratch& s;
    ~Trim() { TrimScratch(s); }
  } trim{s};
  if (!FindResponseTexts(data, s.texts) || s.texts.fields.empty()) return ResponseVerdict::kPass;
  Placeholders placeholders;
  s.edits.clear();
  std::vector<int> blocked;
  for (const JsonTextField& field : s.texts.fields) {
    NormalizeText(field.text, s.norm);
    scanner_->Scan(s.norm, s.findings);
    if (s.findings.empty()) continue;
    for (const Finding& f : s.findings) Count(counters_.response, f.rule);
    JsonEdit edit;
    edit.offset = field.offset;
    edit.length = field.length;
    if (RedactWhole(field.text, s.findings, *scanner_, placeholders, s.redacted) >= 0) {
      edit.replacement = R"("")";
      blocked.push_back(field.choice);
    } else if (s.redacted != field.text) {
      AppendJsonText(edit.replacement, s.redacted);
    } else {
      continue;
    }
    s.edits.push_back(std::move(edit));
  }
  for (const JsonTexts::Finish& f : s.texts.finishes) {
    if (std::find(blocked.begin(), blocked.end(), f.choice) == blocked.end()) continue;
    s.edits.push_back({f.offset, f.length, R"("content_filter")"});
  }
  if (s.edits.empty()) return ResponseVerdict::kPass;
  ApplyJsonEdits(data, s.edits, replacement);
  return ResponseVerdict::kReplace;
}

std::unique_ptr<ResponseStreamState> ScanResponseProcessor::Begin() const {
  return std::make_unique<StreamState>();
}

ResponseVerdict ScanResponseProcessor::Block(StreamState& s, int choice,
                                             const std::string& released, int tool, uint32_t rule,
                                             std::vector<std::string>& events) const {
  Count(counters_.response, rule);
  events.clear();
  if (!released.empty()) {
    events.emplace_back();
    s.AppendTextEvent(choice, tool, released, events.back());
  }
  events.emplace_back();
  s.AppendFilteredEvent(choice, events.back());
  events.emplace_back();
  AppendOpenAiError(events.back(),
                    "the response was blocked by payload processor '" + name_ +
                        "': " + scanner_->rules()[rule].name + " detected in the output",
                    "invalid_request_error", {}, "content_filter");
  for (auto& c : s.channels) c.window = StreamWindow();
  return ResponseVerdict::kEnd;
}

ResponseVerdict ScanResponseProcessor::Process(ResponseStreamState& state, std::string_view data,
                                               std::vector<std::string>& events) const {
  ProcessingTimer timer(counters_.response_time, /*sampled=*/true);
  auto& s = static_cast<StreamState&>(state);
  JsonTexts& texts = ThreadScratch().texts;
  if (!FindResponseTexts(data, texts)) return ResponseVerdict::kPass;
  if (texts.fields.empty() && texts.finishes.empty()) return ResponseVerdict::kPass;
  if (s.id.empty()) s.id = texts.id;
  if (s.model.empty()) s.model = texts.model;
  if (s.created.empty()) s.created = texts.created;
  s.completion = s.completion || texts.completion;
  auto finishing = [&texts](int choice) {
    return std::any_of(texts.finishes.begin(), texts.finishes.end(),
                       [choice](const JsonTexts::Finish& f) { return f.choice == choice; });
  };
  s.edits.clear();
  for (const JsonTextField& field : texts.fields) {
    StreamState::Channel& ch = s.Get(field.choice, field.tool);
    ch.window.Push(field.text, finishing(field.choice), *scanner_, s.placeholders, window_,
                   s.release);
    for (uint32_t rule : s.release.counted) Count(counters_.response, rule);
    if (s.release.blocked) {
      return Block(s, field.choice, s.release.text, field.tool, s.release.blocked_rule, events);
    }
    if (s.release.text == field.text) continue;
    JsonEdit edit;
    edit.offset = field.offset;
    edit.length = field.length;
    AppendJsonText(edit.replacement, s.release.text);
    s.edits.push_back(std::move(edit));
  }
  // A choice that finishes in this event releases what its other channels still hold, in events
  // of their own before this one.
  for (const JsonTexts::Finish& f : texts.finishes) {
    for (StreamState::Channel& ch : s.channels) {
      if (ch.choice != f.choice || ch.window.held().empty()) continue;
      ch.window.Push({}, true, *scanner_, s.placeholders, window_, s.release);
      for (uint32_t rule : s.release.counted) Count(counters_.response, rule);
      if (s.release.blocked) {
        return Block(s, ch.choice, s.release.text, ch.tool, s.release.blocked_rule, events);
      }
      if (s.release.text.empty()) continue;
      events.emplace_back();
      s.AppendTextEvent(ch.choice, ch.tool, s.release.text, events.back());
    }
  }
  if (s.edits.empty() && events.empty()) return ResponseVerdict::kPass;
  events.emplace_back();
  ApplyJsonEdits(data, s.edits, events.back());
  return ResponseVerdict::kReplace;
}

ResponseVerdict ScanResponseProcessor::Finish(ResponseStreamState& state,
                                              std::vector<std::string>& events) const {
  auto& s = static_cast<StreamState&>(state);
  for (StreamState::Channel& ch : s.channels) {
    if (ch.window.held().empty()) continue;
    ch.window.Push({}, true, *scanner_, s.placeholders, window_, s.release);
    for (uint32_t rule : s.release.counted) Count(counters_.response, rule);
    if (s.release.blocked) {
      return Block(s, ch.choice, s.release.text, ch.tool, s.release.blocked_rule, events);
    }
    if (s.release.text.empty()) continue;
    events.emplace_back();
    s.AppendTextEvent(ch.choice, ch.tool, s.release.text, events.back());
  }
  return events.empty() ? ResponseVerdict::kPass : ResponseVerdict::kReplace;
}

}  // namespace tokenway
