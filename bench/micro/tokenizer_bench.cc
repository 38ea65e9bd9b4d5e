// Micro-benchmarks of the prompt-token count (common/tokenizer.h), which the gateway runs on every
// request's prompt: CountTokens (the kernel the CPU selects), the SSE2 and portable kernels, and
// the reference piece walk (CountTokensByPieces, what Encode does) on 432 KiB of English-like text
// and on adversarial text: one long word ("xxx..."), spaces, bytes >= 0x80, and a space before
// every letter (" x x x...", the most pieces per byte). Target: 432 KiB within 60 us.
// Run: make bench-micro (docs/benchmarks.md), or e.g.
//   build/bench/tokenway-micro-bench --benchmark_filter=CountTokens
#include <benchmark/benchmark.h>

#include <iterator>
#include <random>
#include <string>

#include "common/tokenizer.h"

namespace tokenway::tokenizer {
namespace {

constexpr std::size_t kPromptBytes = 432 * 1024;

std::string EnglishLike() {
  static const char* const kWords[] = {
      "the",     "of",       "and",        "to",         "in",       "is",      "that",
      "for",     "it",       "as",         "with",       "was",      "on",      "be",
      "by",      "this",     "are",        "from",       "at",       "or",      "an",
      "model",   "request",  "gateway",    "tokens",     "latency",  "prompt",  "server",
      "answer",  "question", "throughput", "configured", "response", "between", "independent",
      "because", "2026",     "I",          "café",       "we",       "which",   "characters"};
  std::mt19937_64 rng(1);
  std::string text;
  while (text.size() < kPromptBytes) {
    const uint64_t r = rng();
    text += kWords[r % std::size(kWords)];
    switch ((r >> 16) % 24) {
      case 0:
      case 1:
        text += ", ";
        break;
      case 2:
        text += ".\n\n";
        break;
      case 3:
        text += ". ";
        break;
      case 4:
        text += ": ";
        break;
      default:
        text += ' ';
        break;
    }
  }
  text.resize(kPromptBytes);
  return text;
}

const std::string& Text(int64_t kind) {
  static const std::string texts[] = {EnglishLike(), std::string(kPromptBytes, 'x'),
                                      std::string(kPromptBytes, ' '),
                                      std::string(kPromptBytes, '\xC3'), [] {
                                        std::string s;
                                        while (s.size() < kPromptBytes) s += " x";
                                        return s;
                                      }()};
  return texts[kind];
}

const char* const kTextNames[] = {"english", "x_run", "spaces", "high_bytes", "space_x"};

template <typename Count>
void RunCount(benchmark::State& state, Count count) {
  const std::string& text = Text(state.range(0));
  for (auto _ : state) {
    std::size_t n = count(text);
    benchmark::DoNotOptimize(n);
  }
  state.SetLabel(kTextNames[state.range(0)]);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_CountTokens(benchmark::State& state) {
  RunCount(state, CountTokens);
}
void BM_CountTokensPortable(benchmark::State& state) {
  RunCount(state, [](std::string_view t) { return CountTokensWith(CountKernel::kPortable, t); });
}
void BM_CountTokensSse2(benchmark::State& state) {
  RunCount(state, [](std::string_view t) { return CountTokensWith(CountKernel::kSse2, t); });
}
void BM_CountTokensByPieces(benchmark::State& state) {
  RunCount(state, CountTokensByPieces);
}

BENCHMARK(BM_CountTokens)->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CountTokensSse2)->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CountTokensPortable)->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CountTokensByPieces)->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tokenway::tokenizer
