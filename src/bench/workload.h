// Benchmark workloads: the requests tokenway-bench sends, generated up front with exact token
// counts.
//
// Every prompt is built from the simulator's pseudo-word vocabulary (src/common/tokenizer.h: each
// word is exactly one token) and flattened like the simulator's chat template
// (src/common/prompt_text.h), so `input_tokens` equals the prompt_tokens tokenway-sim reports.
// Generation is deterministic for a given seed. Distributions are documented in docs/bench.md.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenway/status.h"

namespace tokenway::bench {

// One request of a workload, ready to send.
struct WorkloadRequest {
  std::string body;           // the JSON body without "stream"/"stream_options" (added per run)
  int64_t input_tokens = 0;   // tokens of the flattened prompt (what the server counts)
  int64_t output_tokens = 0;  // max_tokens (sent with ignore_eos, so the server produces them)
  double arrival_s = -1;      // trace replay: offset from the start; -1 = use the run's arrivals
  int32_t group = -1;         // shared-prefix group / multi-turn session / LoRA index
  int32_t turn = 0;           // multi-turn: 0-based turn within its session
  std::string model;          // model (or LoRA adapter) named in the body
};

struct ShareGptParams {
  // Log-normal lengths fitted to the published ShareGPT statistics (Llama-3 tokenizer,
  // vLLM's filter): mean ≈ 202 input / 179 output tokens with a long right tail.
  double input_mu = 4.95, input_sigma = 1.10;
  double output_mu = 4.72, output_sigma = 1.00;
  int64_t min_len = 4, max_input = 1024, max_total = 2048;
};

struct SharedPrefixParams {  // SGLang generated-shared-prefix defaults
  int64_t groups = 64, prompts_per_group = 16;
  int64_t system_len = 2048, question_len = 128, output_len = 256;
};

struct MultiTurnParams {
  int64_t sessions = 32, turns = 8;
  int64_t system_len = 256, user_len = 96, output_len = 128;
  int64_t active_sessions = 8;  // sessions interleaved at a time
};

struct LoraMixParams {
  int64_t adapters = 8;
  double zipf_s = 1.0;           // P(rank k) ∝ 1 / k^s, rank 1 hottest
  std::string prefix = "lora-";  // adapters are named prefix + index (0-based)
};

struct LongContextParams {
  int64_t min_input = 32768, max_input = 100000;  // uniform
  int64_t output_len = 256;
};

struct RandomParams {  // vLLM "random": lengths uniform in [ratio·L, L]
  int64_t input_len = 128, output_len = 128;
  double range_ratio = 1.0;
};

struct TraceParams {
  // Mooncake-style JSONL (timestamp ms, input_length, output_length, [hash_ids]) or Azure CSV
  // (TIMESTAMP, ContextTokens, GeneratedTokens); bench/trace_file.h.
  std::string path;
  int64_t block_size = 512;  // tokens per hash id (Mooncake)
  double time_scale = 1.0;   // arrival offsets are multiplied by this (0.5 = twice as fast)
  int64_t max_output = 0;    // cap on output_length (0 = none)
};

struct WorkloadOptions {
  std::string kind = "sharegpt";
  std::string model = "meta-llama/Llama-3.1-8B-Instruct";
  uint64_t seed = 1;
  ShareGptParams sharegpt;
  SharedPrefixParams shared_prefix;
  MultiTurnParams multi_turn;
  LoraMixParams lora;
  LongContextParams long_context;
  RandomParams random;
  TraceParams trace;
};

// The names `kind` accepts: sharegpt, shared-prefix, shared-prefix-long, multi-turn, lora-mix,
// long-context, random, trace.
const std::vector<std::string>& WorkloadKinds();

// Generates `count` requests (finite workloads — shared-prefix, multi-turn, trace — produce their
// natural size when `count` <= 0 and otherwise repeat or truncate to `count`).
StatusOr<std::vector<WorkloadRequest>> GenerateWorkload(const WorkloadOptions& options,
                                                        int64_t count);

// Building blocks, exposed for tests.

// Appends `n` pseudo-words (n tokens when preceded by a word or "<role>: ").
void AppendWords(std::string& out, int64_t n, std::mt19937_64& rng);

// A chat request body {"model", "messages", "max_tokens", "ignore_eos":true} and the token count
// of its flattened prompt.
std::pair<std::string, int64_t> ChatBody(
    std::string_view model, const std::vector<std::pair<std::string, std::string>>& messages,
    int64_t max_tokens);

// Zipf sampler over ranks 0..n-1 (P(k) ∝ 1/(k+1)^s).
class ZipfSampler {
 public:
  ZipfSampler(int64_t n, double s);
  int64_t operator()(std::mt19937_64& rng) const;
  double probability(int64_t k) const;

 private:
  std::vector<double> cdf_;
};

// One line of a trace file.
struct TraceRecord {
  double timestamp_ms = 0;
  int64_t input_length = 0;
  int64_t output_length = 0;
  std::vector<int64_t> hash_ids;
  int64_t prefix_group = -1;  // optional "prefix_group"
};
StatusOr<TraceRecord> ParseTraceLine(std::string_view line);

// The request a trace record stands for: a chat prompt of input_length tokens whose hash ids
// (or prefix group) are shared text blocks, arriving at (timestamp − first_ms) × time_scale.
// `rng` fills the unique rest of the prompt. Used by the trace workload and the fleet simulator,
// which builds each request only when it arrives.
WorkloadRequest TraceRequest(const TraceRecord& record, const TraceParams& params,
                             std::string_view model, double first_ms, std::mt19937_64& rng);

}  // namespace tokenway::bench
