// Micro-benchmarks of the routing hot path (Google Benchmark): the scheduler's pick over 8, 100
// and 1,000 endpoints with the GIE default mix and the tokenway preset, prompt block hashing of a
// 100k-token prompt, the whole gateway CPU for one 100k-token request (inspect + hash + pick +
// learn), prefix-aware routing of a 432 KiB prompt over 1, 8 and 64 endpoints and from 1 and 2
// threads on one index, and the flow controller's admission fast path. Run: make bench-micro
// (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/json_writer.h"
#include "common/request_inspector.h"
#include "routing/endpoint_state.h"
#include "routing/flow_controller.h"
#include "routing/latency_predictor.h"
#include "routing/predicted_latency_scorer.h"
#include "routing/prefix_index.h"
#include "routing/scheduler_config.h"
#include "routing/scheduler_picker.h"

namespace tokenway {
namespace {

// A pool of `n` endpoints with fresh, varied engine signals.
struct FakePool {
  explicit FakePool(size_t n) {
    std::mt19937_64 rng(42);
    int64_t now = MonotonicNanos();
    for (size_t i = 0; i < n; ++i) {
      states.emplace_back("http://10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) +
                          ":8000");
      EndpointState& s = states.back();
      s.engine.valid = true;
      s.engine.updated_at_ns = now + 3'600'000'000'000;  // fresh for the whole run
      s.engine.waiting = static_cast<int32_t>(rng() % 8);
      s.engine.running = static_cast<int32_t>(rng() % 64);
      s.engine.kv_utilisation = static_cast<float>(rng() % 1000) / 1000.0f;
      s.in_flight = static_cast<int32_t>(rng() % 16);
    }
    for (size_t i = 0; i < n; ++i) candidates.push_back({static_cast<uint32_t>(i), &states[i]});
  }
  std::deque<EndpointState> states;
  std::vector<PickCandidate> candidates;
};

SchedulerConfig GieDefault() {
  SchedulerConfig c;
  c.enabled = true;
  c.preset = "gie-default";
  ExpandSchedulerPreset(c.preset, c);
  c.filters.push_back(FilterConfig{"saturation"});
  return c;
}

std::string Words(size_t bytes, uint64_t seed) {
  static const char* kWords[] = {"the ", "model ", "routes ", "tokens ",  "across ",
                                 "a ",   "fleet ", "of ",     "engines ", "quickly "};
  std::mt19937_64 rng(seed);
  std::string s;
  s.reserve(bytes + 16);
  while (s.size() < bytes) s += kWords[rng() % 10];
  s.resize(bytes);
  return s;
}

// Times picker.Pick() for `req` over the pool, with a fresh random value per pick.
void TimePicks(benchmark::State& state, SchedulerPicker& picker, const FakePool& pool,
               const InspectedRequest& req) {
  PickContext ctx;
  ctx.request = &req;
  uint64_t r = 1;
  FallbackList out;
  for (auto _ : state) {
    ctx.random = (r = r * 6364136223846793005ull + 1442695040888963407ull);
    out.clear();
    picker.Pick(ctx, pool.candidates, out);
    benchmark::DoNotOptimize(out);
  }
}

// pick() with the GIE default profile (saturation filter; queue 2, KV 2, prefix 3) and a short
// chat prompt: the per-request routing cost apart from long-prompt hashing.
void BM_PickGieDefault(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  FakePool pool(n);
  SchedulerPicker picker(GieDefault(), static_cast<uint32_t>(n), 1'000'000'000);
  InspectedRequest req;
  req.model = "meta-llama/Llama-3.1-8B-Instruct";
  req.prompt_text = "user: " + Words(200, 1) + "\n";
  TimePicks(state, picker, pool, req);
}
BENCHMARK(BM_PickGieDefault)->Arg(8)->Arg(100)->Arg(1000);

// pick() with the tokenway preset (prefix 3, consistent-prefix 3, queue 2, KV 1, outstanding
// tokens 2; pools over 64 + 16 endpoints score a sample of 64 plus the nominated endpoints), same
// prompt. Arg: endpoints.
void BM_PickTokenway(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  FakePool pool(n);
  SchedulerConfig c;
  c.enabled = true;
  ExpandSchedulerPreset("tokenway", c);
  SchedulerPicker picker(c, static_cast<uint32_t>(n), 1'000'000'000);
  InspectedRequest req;
  req.model = "meta-llama/Llama-3.1-8B-Instruct";
  req.prompt_text = "user: " + Words(200, 1) + "\n";
  TimePicks(state, picker, pool, req);
}
BENCHMARK(BM_PickTokenway)->Arg(8)->Arg(100)->Arg(1000);

// The GIE default mix with `sample: 64`: what sampling alone saves at 1,000 endpoints.
void BM_PickGieDefaultSampled(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  FakePool pool(n);
  SchedulerConfig c = GieDefault();
  c.sample = 64;
  SchedulerPicker picker(c, static_cast<uint32_t>(n), 1'000'000'000);
  InspectedRequest req;
  req.model = "meta-llama/Llama-3.1-8B-Instruct";
  req.prompt_text = "user: " + Words(200, 1) + "\n";
  TimePicks(state, picker, pool, req);
}
BENCHMARK(BM_PickGieDefaultSampled)->Arg(1000);

// The predicted-latency scorer over `n` candidates with trained models (features from each
// endpoint's counters and fresh engine signals, two predictions, the headroom): items are
// candidates, so the time per item is the cost per candidate.
void BM_PredictedLatencyScore(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  FakePool pool(n);
  std::mt19937_64 rng(7);
  const int64_t now = MonotonicNanos();
  for (EndpointState& s : pool.states) {
    for (int i = 0; i < 64; ++i) {
      LatencyFeatures f =
          ComputeLatencyFeatures(s, static_cast<double>(rng() % 4000),
                                 static_cast<double>(rng() % 100) / 100, now, 3'600'000'000'000);
      s.latency.Learn(f, 0.01 + 0.03 * f.ttft[1] + 0.001 * f.ttft[3], 0.008 + 0.0005 * f.tpot[1]);
    }
  }
  SloConfig slo;
  slo.min_samples = 16;
  PredictedLatencyScorer scorer(slo);
  InspectedRequest req;
  req.model = "meta-llama/Llama-3.1-8B-Instruct";
  req.prompt_text = "user: " + Words(2000, 1) + "\n";
  PickContext pick;
  pick.request = &req;
  pick.prompt_tokens = 500;
  ScoringContext sc;
  sc.pick = &pick;
  sc.now_ns = now;
  sc.stale_after_ns = 3'600'000'000'000;
  PredictionScratch out;
  sc.predictions = &out;
  std::vector<double> scores(n);
  for (auto _ : state) {
    scorer.Score(sc, pool.candidates, scores);
    benchmark::DoNotOptimize(scores.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_PredictedLatencyScore)->Arg(8)->Arg(64)->Arg(1000);

// One finished stream teaching an endpoint's model (the settle phase's cost).
void BM_LatencyModelLearn(benchmark::State& state) {
  EndpointState s("http://10.0.0.1:8000");
  s.in_flight = 12;
  s.prefill_tokens = 3000;
  LatencyFeatures f = ComputeLatencyFeatures(s, 1500, 0.5, 0, 1);
  double y = 0.05;
  for (auto _ : state) {
    y = y < 0.2 ? y + 0.001 : 0.05;
    f.ttft[1] = y * 10;
    benchmark::DoNotOptimize(s.latency.Learn(f, y, 0.01));
  }
}
BENCHMARK(BM_LatencyModelLearn);

// The distribution of single picks at 1,000 endpoints, each timed on its own (the clock reads
// add ≈ 20 ns): counters p50_us and p99_us. Arg 0: gie-default, 1: tokenway. Each pick has a
// new prompt (a new prefix group every 8 picks), so prefix learning and lookups are included.
void BM_PickLatency1000(benchmark::State& state) {
  constexpr size_t kEndpoints = 1000;
  FakePool pool(kEndpoints);
  SchedulerConfig c;
  if (state.range(0) == 0) {
    c = GieDefault();
  } else {
    c.enabled = true;
    ExpandSchedulerPreset("tokenway", c);
  }
  SchedulerPicker picker(c, kEndpoints, 1'000'000'000);
  std::vector<InspectedRequest> requests(64);
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].model = "meta-llama/Llama-3.1-8B-Instruct";
    requests[i].prompt_text = "system: " + Words(1024, i / 8) + "\nuser: " + Words(200, i) + "\n";
  }
  std::vector<double> ns;
  ns.reserve(1 << 20);
  PickContext ctx;
  uint64_t r = 1;
  size_t k = 0;
  FallbackList out;
  for (auto _ : state) {
    ctx.request = &requests[k++ % requests.size()];
    ctx.random = (r = r * 6364136223846793005ull + 1442695040888963407ull);
    out.clear();
    const int64_t t0 = MonotonicNanos();
    picker.Pick(ctx, pool.candidates, out);
    const int64_t t1 = MonotonicNanos();
    benchmark::DoNotOptimize(out);
    if (ns.size() < ns.capacity()) ns.push_back(static_cast<double>(t1 - t0));
  }
  if (!ns.empty()) {
    auto at = [&](double q) {
      auto it = ns.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(ns.size() - 1));
      std::nth_element(ns.begin(), it, ns.end());
      return *it / 1000.0;
    };
    state.counters["p50_us"] = at(0.50);
    state.counters["p99_us"] = at(0.99);
  }
}
BENCHMARK(BM_PickLatency1000)->Arg(0)->Arg(1);

// pick() with load-only scorers (no prefix hashing at all).
void BM_PickLoadOnly(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  FakePool pool(n);
  SchedulerConfig c;
  c.enabled = true;
  c.scorers = {{"queue-depth", 2}, {"kv-cache", 2}, {"outstanding-tokens", 1}};
  SchedulerPicker picker(c, static_cast<uint32_t>(n), 1'000'000'000);
  InspectedRequest req;
  req.model = "m";
  TimePicks(state, picker, pool, req);
}
BENCHMARK(BM_PickLoadOnly)->Arg(8)->Arg(100)->Arg(1000);

// Chained block hashing of a 100k-token (~400 KB) prompt with the default 64-byte first tier
// (blocks then grow: 153 blocks) and the default max_blocks (8192), and with no cap.
void BM_HashPrompt100kTokens(benchmark::State& state) {
  const std::string text = Words(400 * 1024, 2);
  const uint32_t max_blocks = static_cast<uint32_t>(state.range(0));
  std::vector<uint64_t> blocks;
  for (auto _ : state) {
    PrefixIndex::HashBlocks("meta-llama/Llama-3.1-8B-Instruct", text, 64, max_blocks, blocks);
    benchmark::DoNotOptimize(blocks.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_HashPrompt100kTokens)->Arg(8192)->Arg(1 << 20);

// Everything the gateway's CPU does for one 100k-token chat request before forwarding it:
// inspect the JSON body (model, stream, messages flattened), hash the prompt into blocks, score
// 8 endpoints with the GIE default mix, and record the blocks for the chosen endpoint.
void BM_Gateway100kTokenRequest(benchmark::State& state) {
  std::string body =
      "{\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"stream\":true,"
      "\"max_tokens\":256,\"messages\":[{\"role\":\"system\",\"content\":";
  AppendJsonString(body, Words(300 * 1024, 3));
  body += "},{\"role\":\"user\",\"content\":";
  AppendJsonString(body, Words(100 * 1024, 4));
  body += "}]}";
  const size_t size = body.size();
  body.append(64, ' ');  // the inspector's padding
  RequestInspector inspector;
  InspectedRequest req;
  InspectError err;
  FakePool pool(8);
  SchedulerPicker picker(GieDefault(), 8, 1'000'000'000);
  PickContext ctx;
  ctx.request = &req;
  uint64_t r = 1;
  FallbackList out;
  for (auto _ : state) {
    req.Reset();
    if (!inspector.Inspect(Operation::kChatCompletions, body.data(), size, 64, req, err)) {
      state.SkipWithError("inspection failed");
      break;
    }
    ctx.random = (r = r * 6364136223846793005ull + 1442695040888963407ull);
    out.clear();
    picker.Pick(ctx, pool.candidates, out);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}
BENCHMARK(BM_Gateway100kTokenRequest)->Unit(benchmark::kMicrosecond);

// Prefix-aware routing of one 432 KiB chat prompt (≈100k tokens) with the prefix-cache scorer
// alone, so the figure is the prefix work: hash the prompt, score every candidate, learn the
// blocks for the chosen endpoint. Arg 0: endpoints in the pool. Arg 1: 0 = the same prompt every
// time (a warm prefix: the walk matches every block), 1 = a new prompt every time (its first
// bytes change: nothing matches and every block is learnt, evicting old ones). The index starts
// full (FillPrefixIndex), as in a gateway that has run for a while.
SchedulerConfig PrefixOnly() {
  SchedulerConfig c;
  c.enabled = true;
  c.scorers = {{"prefix-cache", 1}};
  return c;
}

void SetPromptVariant(std::string& prompt, uint64_t n) {
  for (int i = 0; i < 16; ++i)
    prompt[static_cast<size_t>(i)] = static_cast<char>('a' + (n >> (4 * i)) % 16);
}

// Fills the index as a long-running gateway's would be: as many random entries as it has
// slots, spread over the endpoints, so every table page is mapped and inserts replace entries.
void FillPrefixIndex(PrefixIndex& index) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> blocks(512);
  const uint32_t endpoints = std::max<uint32_t>(index.endpoints(), 1);
  for (uint64_t done = 0; done < index.slots(); done += blocks.size()) {
    for (auto& b : blocks) b = rng();
    index.Insert(static_cast<uint32_t>(done / blocks.size()) % endpoints, blocks);
  }
}

void BM_PrefixPick432KiB(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const bool novel = state.range(1) != 0;
  FakePool pool(n);
  SchedulerPicker picker(PrefixOnly(), static_cast<uint32_t>(n), 1'000'000'000);
  FillPrefixIndex(*picker.prefix_index());
  InspectedRequest req;
  req.model = "meta-llama/Llama-3.1-8B-Instruct";
  req.prompt_text = Words(432 * 1024, 5);
  PickContext ctx;
  ctx.request = &req;
  uint64_t r = 1, variant = 0;
  FallbackList out;
  for (auto _ : state) {
    if (novel) SetPromptVariant(req.prompt_text, ++variant);
    ctx.random = (r = r * 6364136223846793005ull + 1442695040888963407ull);
    out.clear();
    picker.Pick(ctx, pool.candidates, out);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * req.prompt_text.size()));
}
BENCHMARK(BM_PrefixPick432KiB)
    ->ArgsProduct({{1, 8, 64}, {0, 1}})
    ->ArgNames({"endpoints", "novel"})
    ->Unit(benchmark::kMicrosecond);

// The same on one picker (one prefix index) shared by 1 and 2 threads, 8 endpoints: whether
// workers slow each other down. Each thread routes its own prompts; arg 1 as above.
void BM_PrefixPick432KiBShared(benchmark::State& state) {
  static FakePool pool(8);
  static SchedulerPicker picker = [] {
    SchedulerPicker p(PrefixOnly(), 8, 1'000'000'000);
    FillPrefixIndex(*p.prefix_index());
    return p;
  }();
  const bool novel = state.range(1) != 0;
  InspectedRequest req;
  req.model = "meta-llama/Llama-3.1-8B-Instruct";
  req.prompt_text = Words(432 * 1024, 6 + static_cast<uint64_t>(state.thread_index()));
  PickContext ctx;
  ctx.request = &req;
  uint64_t r = 1 + static_cast<uint64_t>(state.thread_index()), variant = 0;
  FallbackList out;
  for (auto _ : state) {
    if (novel)
      SetPromptVariant(req.prompt_text,
                       (++variant << 1) | static_cast<uint64_t>(state.thread_index()));
    ctx.random = (r = r * 6364136223846793005ull + 1442695040888963407ull);
    out.clear();
    picker.Pick(ctx, pool.candidates, out);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * req.prompt_text.size()));
}
BENCHMARK(BM_PrefixPick432KiBShared)
    ->ArgsProduct({{8}, {0, 1}})
    ->ArgNames({"endpoints", "novel"})
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Flow control on an unsaturated pool: the lock-free admission every request takes.
void BM_FlowAdmitFastPath(benchmark::State& state) {
  FakePool pool(static_cast<size_t>(state.range(0)));
  std::vector<EndpointState*> raw;
  for (auto& s : pool.states) {
    s.engine.waiting = 0;
    s.engine.kv_utilisation = 0.1f;
    raw.push_back(&s);
  }
  FlowControlConfig settings;
  FlowView view{&settings, raw};
  FlowController controller("p");
  std::shared_ptr<FlowWaiter> none;
  int64_t now = MonotonicNanos();
  for (auto _ : state) {
    benchmark::DoNotOptimize(controller.Admit(view, 0, 0, none, now));
  }
}
BENCHMARK(BM_FlowAdmitFastPath)->Arg(8)->Arg(1000);

}  // namespace
}  // namespace tokenway

BENCHMARK_MAIN();
