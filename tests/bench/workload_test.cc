#include "bench/workload.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "common/prompt_text.h"
#include "common/tokenizer.h"

namespace tokenway::bench {
namespace {

// Flattens a body's messages exactly like the simulator's chat template and counts tokens.
int64_t ServerPromptTokens(const std::string& body, std::string* flat_out = nullptr) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(body);
  std::string flat;
  for (simdjson::dom::element m : doc["messages"].get_array()) {
    AppendChatMessage(flat, std::string_view(m["role"]), std::string_view(m["content"]));
  }
  if (flat_out) *flat_out = flat;
  return static_cast<int64_t>(tokenizer::CountTokens(flat));
}

std::string Content(const std::string& body, size_t index) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(body);
  return std::string(std::string_view(doc["messages"].at(index)["content"]));
}

TEST(WorkloadTest, AppendWordsIsOneTokenPerWord) {
  std::mt19937_64 rng(3);
  for (int64_t n : {1, 2, 10, 500}) {
    std::string s;
    AppendWords(s, n, rng);
    EXPECT_EQ(tokenizer::CountTokens(s), static_cast<size_t>(n));
  }
}

TEST(WorkloadTest, RandomHasExactInputTokensAndOutputs) {
  WorkloadOptions o;
  o.kind = "random";
  o.random = {100, 40, 1.0};
  auto w = GenerateWorkload(o, 50);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 50u);
  for (const auto& r : *w) {
    EXPECT_EQ(r.input_tokens, 100);
    EXPECT_EQ(ServerPromptTokens(r.body), 100);
    EXPECT_EQ(r.output_tokens, 40);
    EXPECT_NE(r.body.find("\"max_tokens\":40"), std::string::npos);
    EXPECT_NE(r.body.find("\"ignore_eos\":true"), std::string::npos);
  }
}

TEST(WorkloadTest, ShareGptLengthStatisticsMatchPublishedMeans) {
  WorkloadOptions o;
  o.kind = "sharegpt";
  auto w = GenerateWorkload(o, 4000);
  ASSERT_TRUE(w.ok());
  double in = 0, out = 0;
  int64_t max_in = 0, long_tail = 0;
  for (const auto& r : *w) {
    in += r.input_tokens;
    out += r.output_tokens;
    max_in = std::max(max_in, r.input_tokens);
    EXPECT_GE(r.input_tokens, 4);
    EXPECT_LE(r.input_tokens, 1024);
    EXPECT_LE(r.input_tokens + r.output_tokens, 2048);
    if (r.input_tokens > 600) ++long_tail;
  }
  in /= w->size();
  out /= w->size();
  // Published: 202 in / 179 out (vLLM blog, 500 prompts, Llama-3 tokenizer).
  EXPECT_NEAR(in, 202, 15);
  EXPECT_NEAR(out, 179, 15);
  EXPECT_GT(max_in, 800);    // long tail
  EXPECT_GT(long_tail, 40);  // > 1 % beyond 3x the mean
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(ServerPromptTokens((*w)[i].body), (*w)[i].input_tokens);
}

TEST(WorkloadTest, ShareGptIsDeterministicPerSeed) {
  WorkloadOptions o;
  auto a = GenerateWorkload(o, 20), b = GenerateWorkload(o, 20);
  o.seed = 2;
  auto c = GenerateWorkload(o, 20);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)[7].body, (*b)[7].body);
  EXPECT_NE((*a)[7].body, (*c)[7].body);
}

TEST(WorkloadTest, SharedPrefixStructure) {
  WorkloadOptions o;
  o.kind = "shared-prefix";
  o.shared_prefix = {6, 5, 200, 30, 16};
  auto w = GenerateWorkload(o, 0);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 30u);
  std::map<int32_t, std::set<std::string>> systems;
  std::set<std::string> questions;
  bool shuffled = false;
  for (size_t i = 0; i < w->size(); ++i) {
    const auto& r = (*w)[i];
    systems[r.group].insert(Content(r.body, 0));
    questions.insert(Content(r.body, 1));
    // "system: " + 200 words + "\n" + "user: " + 30 words + "\n"
    EXPECT_EQ(r.input_tokens, 200 + 30 + 6);
    EXPECT_EQ(ServerPromptTokens(r.body), r.input_tokens);
    EXPECT_EQ(r.output_tokens, 16);
    if (i > 0 && (*w)[i].group < (*w)[i - 1].group) shuffled = true;
  }
  EXPECT_TRUE(shuffled);
  ASSERT_EQ(systems.size(), 6u);
  std::set<std::string> distinct;
  for (auto& [g, s] : systems) {
    EXPECT_EQ(s.size(), 1u) << "group " << g << " shares one system prompt";
    distinct.insert(*s.begin());
  }
  EXPECT_EQ(distinct.size(), 6u);
  EXPECT_EQ(questions.size(), 30u);
  // The shared part is a token prefix of the flattened prompt.
  std::string a, b;
  ServerPromptTokens((*w)[0].body, &a);
  for (const auto& r : *w) {
    if (r.group == (*w)[0].group && r.body != (*w)[0].body) {
      ServerPromptTokens(r.body, &b);
      break;
    }
  }
  size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  EXPECT_GE(tokenizer::CountTokens(a.substr(0, common)), 200u);
}

TEST(WorkloadTest, SharedPrefixDefaultsAndLongVariant) {
  WorkloadOptions o;
  o.kind = "shared-prefix";
  SharedPrefixParams d;
  EXPECT_EQ(d.groups, 64);
  EXPECT_EQ(d.prompts_per_group, 16);
  EXPECT_EQ(d.system_len, 2048);
  EXPECT_EQ(d.question_len, 128);
  EXPECT_EQ(d.output_len, 256);
  o.kind = "shared-prefix-long";
  auto w = GenerateWorkload(o, 12);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 12u);
  EXPECT_EQ((*w)[0].input_tokens, 6000 + 1200 + 6);
  EXPECT_EQ((*w)[0].output_tokens, 1000);
}

TEST(WorkloadTest, MultiTurnHistoryGrows) {
  WorkloadOptions o;
  o.kind = "multi-turn";
  o.multi_turn = {3, 4, 50, 20, 10, 2};
  auto w = GenerateWorkload(o, 0);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 12u);
  std::map<int32_t, std::vector<const WorkloadRequest*>> sessions;
  for (const auto& r : *w) sessions[r.group].push_back(&r);
  ASSERT_EQ(sessions.size(), 3u);
  for (auto& [id, turns] : sessions) {
    ASSERT_EQ(turns.size(), 4u);
    for (size_t k = 0; k < turns.size(); ++k) {
      EXPECT_EQ(turns[k]->turn, static_cast<int32_t>(k));
      // system + k × (user + assistant) + user; the template adds "<role>", ":" and "\n" per
      // message, and "assistant" (9 bytes) is two tokens.
      EXPECT_EQ(turns[k]->input_tokens, 53 + static_cast<int64_t>(k) * (23 + 14) + 23);
      EXPECT_EQ(ServerPromptTokens(turns[k]->body), turns[k]->input_tokens);
      if (k > 0) {
        std::string prev, cur;
        ServerPromptTokens(turns[k - 1]->body, &prev);
        ServerPromptTokens(turns[k]->body, &cur);
        EXPECT_EQ(cur.compare(0, prev.size(), prev), 0) << "turn " << k << " resends history";
      }
    }
  }
  // Interleaved: the first two requests belong to different sessions.
  EXPECT_NE((*w)[0].group, (*w)[1].group);
}

TEST(WorkloadTest, LoraMixFollowsZipf) {
  WorkloadOptions o;
  o.kind = "lora-mix";
  o.lora.adapters = 4;
  o.lora.zipf_s = 1.0;
  auto w = GenerateWorkload(o, 8000);
  ASSERT_TRUE(w.ok());
  std::map<std::string, int> counts;
  for (const auto& r : *w) {
    counts[r.model]++;
    EXPECT_NE(r.body.find("\"model\":\"" + r.model + "\""), std::string::npos);
  }
  ASSERT_EQ(counts.size(), 4u);
  double h = 1 + 1 / 2.0 + 1 / 3.0 + 1 / 4.0;
  for (int k = 0; k < 4; ++k) {
    double expected = 8000 / (k + 1) / h;
    EXPECT_NEAR(counts["lora-" + std::to_string(k)], expected, expected * 0.1 + 30);
  }
  ZipfSampler z(10, 1.2);
  double sum = 0;
  for (int k = 0; k < 10; ++k) sum += z.probability(k);
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_NEAR(z.probability(0) / z.probability(1), std::pow(2.0, 1.2), 1e-9);
}

TEST(WorkloadTest, LongContextRange) {
  WorkloadOptions o;
  o.kind = "long-context";
  auto w = GenerateWorkload(o, 5);
  ASSERT_TRUE(w.ok());
  for (const auto& r : *w) {
    EXPECT_GE(r.input_tokens, 32768);
    EXPECT_LE(r.input_tokens, 100000);
    EXPECT_EQ(ServerPromptTokens(r.body), r.input_tokens);
  }
}

TEST(WorkloadTest, ParseTraceLine) {
  auto r = ParseTraceLine(
      R"({"timestamp": 1500, "input_length": 1200, "output_length": 40, "hash_ids": [1, 2, 3]})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->timestamp_ms, 1500);
  EXPECT_EQ(r->input_length, 1200);
  EXPECT_EQ(r->output_length, 40);
  EXPECT_EQ(r->hash_ids, (std::vector<int64_t>{1, 2, 3}));
  auto g = ParseTraceLine(
      R"({"timestamp": 2.5, "input_length": 10, "output_length": 5, "prefix_group": 7})");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->prefix_group, 7);
  EXPECT_FALSE(ParseTraceLine("not json").ok());
  EXPECT_FALSE(ParseTraceLine(R"({"timestamp": 1})").ok());
  EXPECT_FALSE(ParseTraceLine(R"({"input_length": "x", "output_length": 1})").ok());
  EXPECT_FALSE(
      ParseTraceLine(R"({"input_length": 5, "output_length": 1, "hash_ids": ["a"]})").ok());
}

TEST(WorkloadTest, TraceReplaySharesHashBlocksAndKeepsArrivals) {
  std::string path = ::testing::TempDir() + "/bench_trace_test.jsonl";
  {
    std::ofstream f(path);
    f << R"({"timestamp": 1000, "input_length": 40, "output_length": 7, "hash_ids": [5, 6]})"
      << "\n";
    f << "\n";
    f << R"({"timestamp": 1500, "input_length": 50, "output_length": 9, "hash_ids": [5, 8]})"
      << "\n";
    f << R"({"timestamp": 3000, "input_length": 30, "output_length": 3})"
      << "\n";
  }
  WorkloadOptions o;
  o.kind = "trace";
  o.trace.path = path;
  o.trace.block_size = 16;
  auto w = GenerateWorkload(o, 0);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 3u);
  EXPECT_DOUBLE_EQ((*w)[0].arrival_s, 0.0);
  EXPECT_DOUBLE_EQ((*w)[1].arrival_s, 0.5);
  EXPECT_DOUBLE_EQ((*w)[2].arrival_s, 2.0);
  EXPECT_EQ((*w)[0].input_tokens, 40);
  EXPECT_EQ((*w)[1].input_tokens, 50);
  EXPECT_EQ((*w)[2].output_tokens, 3);
  std::string a, b;
  ServerPromptTokens((*w)[0].body, &a);
  ServerPromptTokens((*w)[1].body, &b);
  size_t common = 0;
  while (common < a.size() && a[common] == b[common]) ++common;
  size_t shared = tokenizer::CountTokens(a.substr(0, common));
  EXPECT_GE(shared, 16u);           // block 5 shared
  EXPECT_LT(shared, 16u + 3 + 16);  // block 6 vs 8 differ

  o.trace.path = path + ".missing";
  EXPECT_FALSE(GenerateWorkload(o, 0).ok());
  {
    std::ofstream f(path);
    f << "{\"input_length\": 3}\n";
  }
  o.trace.path = path;
  auto bad = GenerateWorkload(o, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(":1:"), std::string::npos) << bad.status().message();
  std::remove(path.c_str());
}

TEST(WorkloadTest, UnknownKindFails) {
  WorkloadOptions o;
  o.kind = "nope";
  EXPECT_FALSE(GenerateWorkload(o, 1).ok());
}

}  // namespace
}  // namespace tokenway::bench
