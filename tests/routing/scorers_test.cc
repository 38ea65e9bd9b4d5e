// Scorers, one suite each, over fake endpoint states with scripted engine signals.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <vector>

#include "common/duration.h"
#include "common/request_inspector.h"
#include "routing/capacity_scorer.h"
#include "routing/endpoint_state.h"
#include "routing/kv_cache_scorer.h"
#include "routing/least_request_scorer.h"
#include "routing/lora_affinity_scorer.h"
#include "routing/outstanding_tokens_scorer.h"
#include "routing/prefix_cache_scorer.h"
#include "routing/prefix_index.h"
#include "routing/queue_depth_scorer.h"
#include "routing/saturation_filter.h"
#include "routing/scorer_registry.h"
#include "routing/session_affinity_scorer.h"

// Designated initialisers leave the adapter lists empty on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tokenway {
namespace {

constexpr int64_t kNow = 1'000'000'000'000;
constexpr int64_t kStale = 1'000'000'000;

struct Signals {
  bool valid = true;
  int32_t waiting = 0;
  int32_t in_flight = 0;
  float kv = 0;
  uint32_t max_lora = 0;
  std::vector<std::string> running_loras, waiting_loras;
  int64_t age_ns = 0;
  int64_t prefill = 0;
  int64_t decode = 0;
  double capacity = 1.0;
};

class FakePool {
 public:
  explicit FakePool(const std::vector<Signals>& signals) {
    for (size_t i = 0; i < signals.size(); ++i) {
      states_.emplace_back("http://e" + std::to_string(i) + ":1");
      EndpointState& s = states_.back();
      const Signals& g = signals[i];
      s.in_flight = g.in_flight;
      s.prefill_tokens = g.prefill;
      s.decode_tokens = g.decode;
      s.capacity = g.capacity;
      s.engine.valid = g.valid;
      s.engine.updated_at_ns = kNow - g.age_ns;
      s.engine.waiting = g.waiting;
      s.engine.kv_utilisation = g.kv;
      s.engine.max_lora = g.max_lora;
      for (size_t k = 0; k < g.running_loras.size(); ++k) {
        s.engine.running_lora[k] = LoraNameHash(g.running_loras[k]);
      }
      s.engine.running_lora_count = static_cast<uint32_t>(g.running_loras.size());
      for (size_t k = 0; k < g.waiting_loras.size(); ++k) {
        s.engine.waiting_lora[k] = LoraNameHash(g.waiting_loras[k]);
      }
      s.engine.waiting_lora_count = static_cast<uint32_t>(g.waiting_loras.size());
    }
    for (size_t i = 0; i < states_.size(); ++i) {
      candidates_.push_back({static_cast<uint32_t>(i), &states_[i]});
    }
  }
  std::span<const PickCandidate> candidates() const { return candidates_; }
  std::vector<double> Score(const Scorer& scorer, ScoringContext ctx = {}) const {
    ctx.now_ns = kNow;
    ctx.stale_after_ns = kStale;
    std::vector<double> scores(candidates_.size(), -1);
    scorer.Score(ctx, candidates_, scores);
    return scores;
  }

 private:
  std::deque<EndpointState> states_;
  std::vector<PickCandidate> candidates_;
};

TEST(QueueDepthScorerTest, NormalisesEngineQueuePlusInFlight) {
  FakePool pool({{.waiting = 0, .in_flight = 0},
                 {.waiting = 4, .in_flight = 0},
                 {.waiting = 4, .in_flight = 4},
                 {.valid = false},
                 {.waiting = 0, .age_ns = 2 * kStale}});
  auto s = pool.Score(QueueDepthScorer());
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.5);
  EXPECT_DOUBLE_EQ(s[2], 0.0);
  EXPECT_DOUBLE_EQ(s[3], 0.0);  // invalid: saturated
  EXPECT_DOUBLE_EQ(s[4], 0.0);  // stale: saturated
  FakePool equal({{.waiting = 2}, {.waiting = 2}});
  EXPECT_EQ(equal.Score(QueueDepthScorer()), (std::vector<double>{1, 1}));
}

TEST(KvCacheScorerTest, OneMinusUtilisation) {
  FakePool pool({{.kv = 0}, {.kv = 0.75f}, {.kv = 1.0f}, {.valid = false, .kv = 0}});
  auto s = pool.Score(KvCacheScorer());
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.25);
  EXPECT_DOUBLE_EQ(s[2], 0.0);
  EXPECT_DOUBLE_EQ(s[3], 0.0);
}

TEST(LeastRequestScorerTest, UsesGatewayCountsEvenWithoutEngineSignals) {
  FakePool pool({{.valid = false, .in_flight = 2}, {.valid = false, .in_flight = 6}});
  auto s = pool.Score(LeastRequestScorer());
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.0);
}

TEST(OutstandingTokensScorerTest, WeighsWorkNotRequestCount) {
  // One endpoint holds a single 100k-token prompt; the other three short chats.
  FakePool pool({{.valid = false, .in_flight = 1, .prefill = 100000, .decode = 256},
                 {.valid = false, .in_flight = 3, .prefill = 600, .decode = 768},
                 {.valid = false, .in_flight = 0}});
  auto s = pool.Score(OutstandingTokensScorer());
  EXPECT_DOUBLE_EQ(s[2], 1.0);
  EXPECT_DOUBLE_EQ(s[0], 0.0);
  EXPECT_GT(s[1], 0.98);
  // Least-request would rank them the other way round.
  auto lr = pool.Score(LeastRequestScorer());
  EXPECT_GT(lr[0], lr[1]);
}

TEST(LoraAffinityScorerTest, GieRule) {
  FakePool pool({{.max_lora = 2, .running_loras = {"a", "sql"}},                     // active
                 {.max_lora = 2, .running_loras = {"a"}},                            // free slot
                 {.max_lora = 1, .running_loras = {"b"}, .waiting_loras = {"sql"}},  // waiting
                 {.max_lora = 1, .running_loras = {"b"}},  // full, not there
                 {.valid = false, .max_lora = 4}});
  ScoringContext ctx;
  ctx.model_hash = LoraNameHash("sql");
  auto s = pool.Score(LoraAffinityScorer(), ctx);
  EXPECT_EQ(s, (std::vector<double>{1.0, 0.8, 0.6, 0.0, 0.0}));
}

TEST(PrefixCacheScorerTest, MatchedFraction) {
  FakePool pool({{}, {}, {}});
  PrefixIndex index({64, 1000, 8192}, 3);
  std::vector<uint64_t> blocks;
  PrefixIndex::HashBlocks("m", std::string(64 * 4, 'p'), 64, 8192, blocks);
  index.Insert(0, blocks);
  index.Insert(1, std::span<const uint64_t>(blocks).first(1));
  ScoringContext ctx;
  ctx.prefix_blocks = blocks;
  ctx.prefix_index = &index;
  auto s = pool.Score(PrefixCacheScorer(), ctx);
  EXPECT_EQ(s, (std::vector<double>{1.0, 0.25, 0.0}));
  ctx.prefix_blocks = {};
  EXPECT_EQ(pool.Score(PrefixCacheScorer(), ctx), (std::vector<double>{0, 0, 0}));
}

TEST(PrefixCacheScorerTest, LaterLongerBlocksWeighByTheirBytes) {
  // 40 blocks: 32 of 64 bytes, then 8 of 128. Holding the first 32 is 2 KiB of 3 KiB.
  FakePool pool({{}, {}, {}});
  PrefixIndex index({64, 1000, 8192}, 3);
  std::vector<uint64_t> blocks;
  PrefixIndex::HashBlocks("m", std::string(3072, 'q'), 64, 8192, blocks);
  ASSERT_EQ(blocks.size(), 40u);
  index.Insert(0, std::span<const uint64_t>(blocks).first(32));
  index.Insert(2, blocks);
  ScoringContext ctx;
  ctx.prefix_blocks = blocks;
  ctx.prefix_index = &index;
  auto s = pool.Score(PrefixCacheScorer(), ctx);
  EXPECT_NEAR(s[0], 2048.0 / 3072.0, 1e-12);
  EXPECT_EQ(s[1], 0.0);
  EXPECT_EQ(s[2], 1.0);
}

TEST(SessionAffinityScorerTest, OneEndpointPerUserStableAndSpread) {
  FakePool pool({{}, {}, {}, {}});
  std::map<size_t, int> owners;
  for (int u = 0; u < 400; ++u) {
    InspectedRequest req;
    req.user = "user-" + std::to_string(u);
    PickContext pick;
    pick.request = &req;
    ScoringContext ctx;
    ctx.pick = &pick;
    auto s = pool.Score(SessionAffinityScorer(), ctx);
    size_t owner = std::find(s.begin(), s.end(), 1.0) - s.begin();
    ASSERT_LT(owner, s.size());
    EXPECT_EQ(std::count(s.begin(), s.end(), 0.0), 3);
    EXPECT_EQ(pool.Score(SessionAffinityScorer(), ctx), s);  // stable
    ++owners[owner];
  }
  for (auto [owner, n] : owners) EXPECT_NEAR(n, 100, 40) << owner;
  ScoringContext none;
  EXPECT_EQ(pool.Score(SessionAffinityScorer(), none), (std::vector<double>{0, 0, 0, 0}));
}

TEST(SessionAffinityScorerTest, SessionKeyWinsOverUser) {
  FakePool pool({{}, {}, {}, {}, {}, {}, {}, {}});
  auto owner = [&](std::string_view session, const std::string& user) {
    InspectedRequest req;
    req.user = user;
    PickContext pick;
    pick.request = &req;
    pick.session_key = session;
    ScoringContext ctx;
    ctx.pick = &pick;
    auto s = pool.Score(SessionAffinityScorer(), ctx);
    EXPECT_EQ(std::count(s.begin(), s.end(), 1.0), 1);
    return std::find(s.begin(), s.end(), 1.0) - s.begin();
  };
  int moved_by_user = 0;
  std::map<long, int> owners;
  for (int k = 0; k < 100; ++k) {
    std::string session = "conv-" + std::to_string(k);
    // The same session with different users stays put.
    auto first = owner(session, "alice");
    for (int u = 0; u < 5; ++u) EXPECT_EQ(owner(session, "user-" + std::to_string(u)), first);
    EXPECT_EQ(owner(session, ""), first);
    ++owners[first];
    // Without a session key the user decides, so it lands where that user maps.
    if (owner("", "user-" + std::to_string(k)) != owner("", "user-" + std::to_string(k + 1))) {
      ++moved_by_user;
    }
    // The key is hashed like the user field: the same text picks the same endpoint.
    EXPECT_EQ(owner(session, ""), owner("", session));
  }
  EXPECT_GT(moved_by_user, 50);
  EXPECT_GE(owners.size(), 6u);  // sessions spread over the endpoints
}

TEST(CapacityScorerTest, EqualLoadsFavourTheLargerEndpoint) {
  // All idle: the request itself is the load, so 1/2 < 1/1 < 1/0.45.
  FakePool idle({{.capacity = 1.0}, {.capacity = 0.45}, {.capacity = 2.0}});
  auto s = idle.Score(CapacityScorer());
  EXPECT_DOUBLE_EQ(s[2], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.0);
  // (1/1 - 1/2) / (1/0.45 - 1/2) between them.
  EXPECT_NEAR(s[0], (1 / 0.45 - 1.0) / (1 / 0.45 - 0.5), 1e-12);
  FakePool equal({{.capacity = 3}, {.capacity = 3}});
  EXPECT_EQ(equal.Score(CapacityScorer()), (std::vector<double>{1, 1}));
}

TEST(CapacityScorerTest, LoadPerCapacity) {
  // (3 + 1) / 2 == (1 + 1) / 1: a big endpoint with twice the work ties with a small one.
  FakePool tie({{.in_flight = 3, .capacity = 2}, {.in_flight = 1, .capacity = 1}});
  EXPECT_EQ(tie.Score(CapacityScorer()), (std::vector<double>{1, 1}));
  // The engine's own queue counts while fresh: (0 + 4 + 1) / 2 > (1 + 0 + 1) / 1.
  FakePool queued({{.waiting = 4, .capacity = 2}, {.in_flight = 1, .capacity = 1}});
  EXPECT_EQ(queued.Score(CapacityScorer()), (std::vector<double>{0, 1}));
  // Stale or invalid signals drop the queue but keep the in-flight count: never scored 0 for
  // that alone.
  FakePool stale({{.waiting = 4, .age_ns = 2 * kStale, .capacity = 2},
                  {.valid = false, .waiting = 9, .capacity = 2},
                  {.in_flight = 2, .capacity = 1}});
  EXPECT_EQ(stale.Score(CapacityScorer()), (std::vector<double>{1, 1, 0}));
}

TEST(SaturationFilterTest, DropsSaturatedAndUnknown) {
  FakePool pool({{.waiting = 4, .kv = 0.79f},
                 {.waiting = 5},
                 {.kv = 0.8f},
                 {.valid = false},
                 {.age_ns = 2 * kStale},
                 {}});
  FilterConfig config;
  config.name = "saturation";
  SaturationFilter filter(config);
  ScoringContext ctx;
  ctx.now_ns = kNow;
  ctx.stale_after_ns = kStale;
  std::vector<PickCandidate> out(6);
  size_t kept = filter.Apply(ctx, pool.candidates(), out.data());
  ASSERT_EQ(kept, 2u);
  EXPECT_EQ(out[0].index, 0u);
  EXPECT_EQ(out[1].index, 5u);
}

TEST(ScorerRegistryTest, EveryKnownNameBuilds) {
  for (const auto& name : KnownScorers()) {
    auto s = MakeScorer(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->name(), name);
  }
  EXPECT_EQ(MakeScorer("nope"), nullptr);
  for (auto name : kScorerNames) EXPECT_NE(MakeScorer(name), nullptr) << name;
  for (auto name : kFilterNames) {
    FilterConfig fc;
    fc.name = std::string(name);
    EXPECT_NE(MakeFilter(fc), nullptr) << name;
  }
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(CandidatePositionTest, FindsEndpointsInAnyOrder) {
  std::vector<PickCandidate> full, subset, reversed;
  for (uint32_t i = 0; i < 10; ++i) full.push_back({i, nullptr});
  for (uint32_t i = 0; i < 10; i += 3) subset.push_back({i, nullptr});  // 0 3 6 9
  reversed.assign(full.rbegin(), full.rend());
  EXPECT_EQ(CandidatePosition(full, 7), 7u);
  EXPECT_EQ(CandidatePosition(subset, 6), 2u);
  EXPECT_EQ(CandidatePosition(subset, 9), 3u);
  EXPECT_EQ(CandidatePosition(subset, 4), subset.size());
  EXPECT_EQ(CandidatePosition(reversed, 2), 7u);
  EXPECT_EQ(CandidatePosition(reversed, 12), reversed.size());
  EXPECT_EQ(CandidatePosition({}, 0), 0u);
}

}  // namespace
}  // namespace tokenway
