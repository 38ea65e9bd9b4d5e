// Micro-benchmarks of the payload processors (Google Benchmark): the default PII chain (every
// detector; redact, secrets blocked) on a request whose prompt is 2 KB and 100 KB of mixed prose
// and code (targets: <= 20 us and <= 400 us), clean and with one e-mail address to redact; and
// one SSE event through the streaming response processor (64-character window) of the PII chain
// and of a `patterns` chain.
// Run: make bench-micro (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "common/json_writer.h"
#include "payload/payload_config.h"
#include "tokenway/payload.h"

namespace tokenway {
namespace {

PayloadChain DefaultPiiChain() {
  ProcessorConfig p;
  p.name = "pii";
  p.type = "pii";
  p.detectors = DefaultPiiDetectors();
  auto chain = BuildPayloadChain({p});
  if (!chain.ok()) std::abort();
  return std::move(*chain);
}

std::string Prompt(size_t bytes, bool with_pii) {
  static const char* kLines[] = {
      "The quarterly report shows revenue grew 12% while costs stayed flat at 3.4 million. ",
      "for (size_t i = 0; i < items.size(); ++i) { total += items[i].price * items[i].qty; } ",
      "Bitte prüfen Sie die Änderungen bis Freitag, 15:30 Uhr, und geben Sie Rückmeldung. ",
      "SELECT name, created_at FROM orders WHERE status = 'open' ORDER BY created_at DESC; ",
  };
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) text += kLines[i % 4];
  text.resize(bytes);
  if (with_pii) text.replace(bytes / 2, 24, "write to ann@example.com ");
  std::string body = R"({"model":"m","max_tokens":256,"messages":[{"role":"user","content":)";
  AppendJsonString(body, text);
  body += "}]}";
  return body;
}

void BM_PiiRequest(benchmark::State& state) {
  const PayloadChain chain = DefaultPiiChain();
  const std::string body = Prompt(static_cast<size_t>(state.range(0)), state.range(1) != 0);
  RequestVerdict verdict;
  for (auto _ : state) {
    verdict.kind = RequestVerdict::Kind::kPass;
    verdict.flagged.clear();
    chain.request[0]->Process({body, nullptr, {}, 0}, verdict);
    benchmark::DoNotOptimize(verdict.kind);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_PiiRequest)
    ->ArgNames({"bytes", "pii"})
    ->Args({2048, 0})
    ->Args({2048, 1})
    ->Args({100 * 1024, 0})
    ->Args({100 * 1024, 1});

// Three user patterns (bench/configs/payload-patterns.yaml), whose stream window releases text as
// soon as it cannot begin a match.
PayloadChain PatternsChain() {
  ProcessorConfig p;
  p.name = "policy";
  p.type = "patterns";
  p.patterns = {{"codename", R"(project\s+falcon)", ScanAction::kBlock},
                {"internal_code", R"(\b(?:secret|internal)[- ]?code\b)", ScanAction::kBlock},
                {"api_key", R"(api[_-]?key\s*[:=]\s*\w{8,})", ScanAction::kRedact}};
  auto chain = BuildPayloadChain({p});
  if (!chain.ok()) std::abort();
  return std::move(*chain);
}

void BM_StreamEvent(benchmark::State& state, PayloadChain (*make)()) {
  const PayloadChain chain = make();
  const ResponseProcessor& p = *chain.response[0];
  static const char* kWords[] = {" the", " model", " answers", " with", " tokens",
                                 ",",    " and",   " numbers", " like", " 42"};
  std::vector<std::string> events;
  for (const char* w : kWords) {
    std::string e =
        R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":)";
    AppendJsonString(e, w);
    e += R"(},"finish_reason":null}]})";
    events.push_back(std::move(e));
  }
  auto stream = p.Begin();
  std::vector<std::string> out;
  size_t i = 0;
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(p.Process(*stream, events[i++ % events.size()], out));
  }
}
BENCHMARK_CAPTURE(BM_StreamEvent, pii, DefaultPiiChain);
BENCHMARK_CAPTURE(BM_StreamEvent, patterns, PatternsChain);

}  // namespace
}  // namespace tokenway
