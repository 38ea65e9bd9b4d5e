#include "sim/engine.h"

#include <gtest/gtest.h>

#include <map>

#include "common/tokenizer.h"

namespace tokenway::sim {
namespace {

// Drives an engine with a fake clock: every step ends exactly when the profile says.
class FakeClockDriver {
 public:
  explicit FakeClockDriver(Engine& engine) : engine_(engine) {}

  // Runs one step; returns its duration (0 when idle). Records tokens per request.
  double Step() {
    const double duration = engine_.BeginStep(now_);
    if (duration <= 0) return 0;
    now_ += duration;
    for (const TokenEvent& event : engine_.FinishStep(now_)) {
      auto& record = records_[event.request_id];
      record.text += event.text;
      record.tokens = event.completion_tokens;
      record.cached = event.cached_tokens;
      if (event.finish != FinishReason::kNone) record.finish = event.finish;
      if (event.completion_tokens == 1) record.first_token_time = now_;
    }
    return duration;
  }
  void RunUntilIdle(int max_steps = 100000) {
    for (int i = 0; i < max_steps && engine_.HasWork(); ++i) {
      if (Step() == 0) break;
    }
  }
  struct Record {
    std::string text;
    int64_t tokens = 0;
    int64_t cached = 0;
    double first_token_time = 0;
    FinishReason finish = FinishReason::kNone;
  };
  double now() const { return now_; }
  const Record& record(uint64_t id) { return records_[id]; }

 private:
  Engine& engine_;
  double now_ = 0;
  std::map<uint64_t, Record> records_;
};

EngineConfig H100Config() {
  EngineConfig config;
  config.profile = *FindProfile("h100-8b");
  return config;
}

GenerationRequest Request(int64_t prompt_tokens, int64_t max_tokens, uint32_t first_token = 1) {
  GenerationRequest request;
  for (int64_t i = 0; i < prompt_tokens; ++i) {
    request.prompt_tokens.push_back(first_token + static_cast<uint32_t>(i));
  }
  request.max_output_tokens = max_tokens;
  request.seed = first_token;
  return request;
}

TEST(EngineTest, BatchOneDecodeTakesAboutSevenMillisecondsPerToken) {
  Engine engine(H100Config());
  const uint64_t id = engine.Add(Request(1000, 101), 0);
  FakeClockDriver driver(engine);
  driver.Step();  // prefill
  const double start = driver.now();
  driver.RunUntilIdle();
  const double per_token_ms = (driver.now() - start) * 1000 / 100;
  EXPECT_NEAR(per_token_ms, 7.2, 0.15);
  EXPECT_EQ(driver.record(id).tokens, 101);
  EXPECT_EQ(driver.record(id).finish, FinishReason::kLength);
  EXPECT_EQ(engine.stats().generation_tokens, 101u);
  EXPECT_EQ(engine.stats().prompt_tokens, 1000u);
  EXPECT_EQ(engine.stats().success_length, 1u);
  EXPECT_DOUBLE_EQ(engine.kv_usage(), 0.0);
}

TEST(EngineTest, EveryRunningSequenceDecodesOneTokenPerStep) {
  Engine engine(H100Config());
  for (int i = 0; i < 4; ++i) engine.Add(Request(10, 5, 1000 * (i + 1)), 0);
  FakeClockDriver driver(engine);
  driver.Step();  // all four prefilled together: 40 tokens
  EXPECT_EQ(engine.last_step_tokens(), 40);
  EXPECT_EQ(engine.num_running(), 4u);
  driver.Step();
  EXPECT_EQ(engine.last_step_tokens(), 4);
  driver.RunUntilIdle();
  EXPECT_EQ(engine.stats().steps, 5u);  // 1 prefill step (token 1) + 4 decode steps
  EXPECT_EQ(engine.stats().generation_tokens, 20u);
}

TEST(EngineTest, EveryTokenEventCarriesItsRequestsTag) {
  Engine engine(H100Config());
  GenerationRequest a = Request(40, 3, 1);
  a.tag = 1001;
  GenerationRequest b = Request(40, 3, 900);
  b.tag = 2002;
  const uint64_t a_id = engine.Add(std::move(a), 0);
  engine.Add(std::move(b), 0);
  int events = 0;
  for (double now = 0; engine.HasWork();) {
    const double d = engine.BeginStep(now);
    ASSERT_GT(d, 0);
    now += d;
    for (const TokenEvent& event : engine.FinishStep(now)) {
      EXPECT_EQ(event.tag, event.request_id == a_id ? 1001u : 2002u);
      ++events;
    }
  }
  EXPECT_EQ(events, 6);
}

TEST(EngineTest, AdmissionRespectsMaxNumSeqs) {
  EngineConfig config = H100Config();
  config.profile.max_num_seqs = 2;
  Engine engine(config);
  for (int i = 0; i < 5; ++i) engine.Add(Request(10, 3, 100 * (i + 1)), 0);
  FakeClockDriver driver(engine);
  driver.Step();
  EXPECT_EQ(engine.num_running(), 2u);
  EXPECT_EQ(engine.num_waiting(), 3u);
  driver.RunUntilIdle();
  EXPECT_EQ(engine.stats().success_length, 5u);
}

TEST(EngineTest, LongPromptIsPrefilledInChunksWithinTheTokenBudget) {
  Engine engine(H100Config());
  const uint64_t id = engine.Add(Request(20000, 2), 0);
  FakeClockDriver driver(engine);
  driver.Step();
  EXPECT_EQ(engine.last_step_tokens(), 8192);
  EXPECT_EQ(driver.record(id).tokens, 0);
  driver.Step();
  EXPECT_EQ(engine.last_step_tokens(), 8192);
  driver.Step();
  EXPECT_EQ(engine.last_step_tokens(), 20000 - 2 * 8192);
  EXPECT_EQ(driver.record(id).tokens, 1);  // first token at the end of the last chunk
  // A request arriving mid-prefill shares the budget with the remaining chunk.
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(id).finish, FinishReason::kLength);
}

TEST(EngineTest, DecodesAreScheduledBeforeNewPrefills) {
  Engine engine(H100Config());
  engine.Add(Request(100, 50, 1), 0);
  FakeClockDriver driver(engine);
  driver.Step();
  engine.Add(Request(9000, 2, 50000), driver.now());
  driver.Step();
  EXPECT_EQ(engine.last_step_tokens(), 8192);  // 1 decode + 8191 prefill tokens
  EXPECT_EQ(engine.num_running(), 2u);
}

TEST(EngineTest, RepeatedPromptHitsThePrefixCacheAndSkipsCompute) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  const uint64_t first = engine.Add(Request(1000, 2), 0);
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(first).cached, 0);
  const uint64_t second = engine.Add(Request(1000, 2), driver.now());
  driver.Step();
  EXPECT_EQ(driver.record(second).cached, 992);  // 62 full blocks
  EXPECT_EQ(engine.last_step_tokens(), 8);
  driver.RunUntilIdle();
  EXPECT_EQ(engine.stats().prefix_cache_queries, 2000u);
  EXPECT_EQ(engine.stats().prefix_cache_hits, 992u);
}

TEST(EngineTest, OutputBlocksAreCachedSoAFollowUpTurnReusesThem) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  GenerationRequest turn = Request(32, 40);  // 2 prompt blocks, then 40 output tokens
  const std::vector<uint32_t> prompt = turn.prompt_tokens;
  const uint64_t first = engine.Add(std::move(turn), 0);
  driver.RunUntilIdle();
  // The next turn resends the conversation: prompt + the first turn's output (72 tokens, of
  // which 71 were computed: 4 full blocks, 2 of them output).
  GenerationRequest next = Request(0, 2);
  next.prompt_tokens = prompt;
  tokenizer::EncodeAppend(driver.record(first).text, next.prompt_tokens);
  ASSERT_EQ(next.prompt_tokens.size(), 72u);
  const uint64_t second = engine.Add(std::move(next), driver.now());
  driver.Step();
  EXPECT_EQ(driver.record(second).cached, 64);
}

TEST(EngineTest, FullyCachedPromptStillComputesItsLastBlock) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  engine.Add(Request(64, 1), 0);
  driver.RunUntilIdle();
  const uint64_t again = engine.Add(Request(64, 1), driver.now());
  driver.Step();
  EXPECT_EQ(driver.record(again).cached, 48);
  EXPECT_EQ(engine.last_step_tokens(), 16);
}

TEST(EngineTest, DifferentAdaptersDoNotSharePrefixCache) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  engine.Add(Request(256, 1), 0);
  driver.RunUntilIdle();
  GenerationRequest lora = Request(256, 1);
  lora.adapter = "sql-lora";
  const uint64_t id = engine.Add(lora, driver.now());
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(id).cached, 0);
}

TEST(EngineTest, LeastRecentlyFreedCachedBlocksAreEvictedFirst) {
  EngineConfig config = H100Config();
  config.kv_blocks = 6;  // 96 tokens: B must reuse A's blocks
  Engine engine(config);
  FakeClockDriver driver(engine);
  engine.Add(Request(64, 1, 1), 0);  // A: 4 full blocks + 1 for the output token
  driver.RunUntilIdle();
  engine.Add(Request(64, 1, 5000), driver.now());  // B: evicts some of A
  driver.RunUntilIdle();
  const uint64_t b_again = engine.Add(Request(64, 1, 5000), driver.now());
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(b_again).cached, 48);  // B, freed most recently, is still cached
  const uint64_t a_again = engine.Add(Request(64, 1, 1), driver.now());
  driver.RunUntilIdle();
  EXPECT_LT(driver.record(a_again).cached, 48);
  EXPECT_GT(engine.kv_pool().evictions(), 0u);
}

TEST(EngineTest, FullPoolPreemptsTheNewestSequenceAndEverythingCompletes) {
  EngineConfig config = H100Config();
  config.kv_blocks = 20;  // 320 tokens
  Engine engine(config);
  FakeClockDriver driver(engine);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(engine.Add(Request(48, 60, 10000 * (i + 1)), 0));
  driver.Step();
  EXPECT_EQ(engine.num_running(), 4u);  // 4 x 4 blocks fit; growth does not
  driver.RunUntilIdle();
  EXPECT_GT(engine.stats().preemptions, 0u);
  for (uint64_t id : ids) {
    EXPECT_EQ(driver.record(id).tokens, 60) << id;
    EXPECT_EQ(driver.record(id).finish, FinishReason::kLength);
  }
  EXPECT_EQ(engine.stats().success_length, 4u);
  EXPECT_EQ(engine.kv_pool().num_free_blocks(), 20);
}

TEST(EngineTest, NewWorkWaitsWhileTheCacheIsFull) {
  EngineConfig config = H100Config();
  config.kv_blocks = 10;
  Engine engine(config);
  FakeClockDriver driver(engine);
  engine.Add(Request(150, 5, 1), 0);
  engine.Add(Request(100, 5, 9000), 0);
  driver.Step();
  EXPECT_EQ(engine.num_running(), 1u);
  EXPECT_EQ(engine.num_waiting(), 1u);
  driver.RunUntilIdle();
  EXPECT_EQ(engine.stats().success_length, 2u);
}

TEST(EngineTest, LoraRequestsWaitForASlotAndLoadingCostsTime) {
  EngineConfig config = H100Config();
  config.max_loras = 1;
  Engine engine(config);
  FakeClockDriver driver(engine);
  GenerationRequest a = Request(10, 3, 1);
  a.adapter = "a";
  GenerationRequest b = Request(10, 3, 500);
  b.adapter = "b";
  engine.Add(a, 0);
  const uint64_t b_id = engine.Add(b, 0);
  engine.Add(Request(10, 3, 900), 0);  // base model is not blocked by the LoRA queue
  const double first = driver.Step();
  EXPECT_NEAR(first * 1000, config.profile.StepMs(20, 20) + config.profile.lora_load_ms, 1e-6);
  EXPECT_EQ(engine.num_running(), 2u);
  EXPECT_EQ(engine.RunningAdapters(), std::vector<std::string>{"a"});
  EXPECT_EQ(engine.WaitingAdapters(), std::vector<std::string>{"b"});
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(b_id).tokens, 3);
  EXPECT_EQ(engine.stats().lora_loads, 2u);
}

TEST(EngineTest, AbortFreesBlocksAndIsCounted) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  const uint64_t id = engine.Add(Request(500, 100), 0);
  driver.Step();
  EXPECT_GT(engine.kv_usage(), 0.0);
  engine.BeginStep(driver.now());
  engine.Abort(id, driver.now());  // during a step
  EXPECT_TRUE(engine.FinishStep(driver.now() + 0.01).empty());
  EXPECT_DOUBLE_EQ(engine.kv_usage(), 0.0);
  EXPECT_EQ(engine.stats().success_abort, 1u);
  EXPECT_FALSE(engine.HasWork());
}

TEST(EngineTest, StopStringEndsGenerationWithStop) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  // Find the third token's text, then ask to stop on it.
  const uint64_t probe = engine.Add(Request(10, 3, 77), 0);
  driver.RunUntilIdle();
  const std::string full = driver.record(probe).text;
  const std::size_t last_space = full.rfind(' ');
  GenerationRequest request = Request(10, 50, 77);
  request.stop = {full.substr(last_space)};
  const uint64_t id = engine.Add(request, driver.now());
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(id).finish, FinishReason::kStop);
  EXPECT_EQ(driver.record(id).tokens, 3);
  EXPECT_EQ(driver.record(id).text, full.substr(0, last_space));
}

TEST(EngineTest, SampledLengthFinishesWithStop) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  GenerationRequest request = Request(10, 4);
  request.limit_is_eos = true;
  const uint64_t id = engine.Add(request, 0);
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(id).finish, FinishReason::kStop);
  EXPECT_EQ(engine.stats().success_stop, 1u);
}

TEST(EngineTest, SameSeedGivesSameOutput) {
  Engine first(H100Config()), second(H100Config());
  FakeClockDriver d1(first), d2(second);
  const uint64_t a = first.Add(Request(10, 20, 3), 0);
  const uint64_t b = second.Add(Request(10, 20, 3), 0);
  d1.RunUntilIdle();
  d2.RunUntilIdle();
  EXPECT_EQ(d1.record(a).text, d2.record(b).text);
  EXPECT_EQ(d1.record(a).text.size() > 20, true);
}

TEST(EngineTest, WorkCountersFollowAdmissionPrefillDecodePreemptionAndAbort) {
  EngineConfig config = H100Config();
  config.kv_blocks = 20;  // small: growth preempts
  Engine engine(config);
  FakeClockDriver driver(engine);
  EXPECT_EQ(engine.uncomputed_tokens(), 0);
  const uint64_t a = engine.Add(Request(48, 60, 10000), 0);
  engine.Add(Request(48, 60, 20000), 0);
  engine.Add(Request(48, 60, 30000), 0);
  engine.Add(Request(48, 60, 40000), 0);
  EXPECT_EQ(engine.uncomputed_tokens(), 4 * 48);  // whole prompts wait
  EXPECT_EQ(engine.queued_tokens(), 4 * 48);
  EXPECT_EQ(engine.queued_uncached_tokens(), 4 * 48);
  EXPECT_EQ(engine.computed_tokens(), 0);
  driver.Step();  // all four prefilled, each samples its first token
  EXPECT_EQ(engine.computed_tokens(), 4 * 48);
  EXPECT_EQ(engine.uncomputed_tokens(), 4);  // one new token each, to decode next
  EXPECT_EQ(engine.queued_tokens(), 0);
  // Through preemptions (which drop computed work) and completions the counters stay equal to
  // what the sequences hold; at the end nothing is left.
  for (int i = 0; i < 40 && engine.HasWork(); ++i) {
    driver.Step();
    EXPECT_GE(engine.uncomputed_tokens(), 0);
    EXPECT_GE(engine.computed_tokens(), 0);
    EXPECT_LE(engine.computed_tokens(), 20 * 16);  // never more than the pool holds
  }
  engine.Abort(a, driver.now());
  driver.RunUntilIdle();
  EXPECT_GT(engine.stats().preemptions, 0u);
  EXPECT_EQ(engine.uncomputed_tokens(), 0);
  EXPECT_EQ(engine.computed_tokens(), 0);
  EXPECT_EQ(engine.queued_tokens(), 0);
  EXPECT_EQ(engine.queued_uncached_tokens(), 0);
}

TEST(EngineTest, QueuedPrefillEstimateDiscountsCachedPrefixes) {
  EngineConfig config = H100Config();
  config.estimate_queued_prefill = true;
  config.profile.max_num_seqs = 1;  // the second request waits behind the first
  Engine engine(config);
  FakeClockDriver driver(engine);
  engine.Add(Request(320, 2, 7), 0);
  driver.RunUntilIdle();  // its 20 blocks stay cached
  engine.Add(Request(64, 50, 90000), driver.now());
  driver.Step();                                 // running; the next one queues
  engine.Add(Request(320, 2, 7), driver.now());  // the same prompt
  EXPECT_EQ(engine.queued_tokens(), 320);
  EXPECT_EQ(engine.queued_uncached_tokens(), 320 - 19 * 16);  // all but the last block cached
  driver.RunUntilIdle();
  EXPECT_EQ(engine.queued_uncached_tokens(), 0);
}

TEST(EngineTest, AbortOfAScheduledSequenceDuringAStepLeavesTheOthersIntact) {
  Engine engine(H100Config());
  FakeClockDriver driver(engine);
  const uint64_t a = engine.Add(Request(100, 5, 1), 0);
  const uint64_t b = engine.Add(Request(100, 5, 5000), 0);
  driver.Step();
  engine.BeginStep(driver.now());  // both scheduled
  engine.Abort(a, driver.now());
  const auto& events = engine.FinishStep(driver.now() + 0.01);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].request_id, b);
  driver.RunUntilIdle();
  EXPECT_EQ(driver.record(b).tokens, 5);
  EXPECT_EQ(engine.uncomputed_tokens(), 0);
}

}  // namespace
}  // namespace tokenway::sim
