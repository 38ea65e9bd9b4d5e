// Micro-benchmarks of the response cache (Google Benchmark): the in-process part of an exact hit
// (key of a 2 KB chat request, store lookup, rendering a 4 KB answer as JSON and as an event
// stream), and the semantic lookup — the prompt's lexical vector folded to 256 dimensions, then
// the index search — at 1k (exact scan) and 100k entries (HNSW; target <= 200 us).
// Run: make bench-micro (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cache/cache_key.h"
#include "cache/cached_response.h"
#include "cache/memory_store.h"
#include "cache/semantic_index.h"
#include "common/json_writer.h"
#include "semantic/text_vector.h"

namespace tokenway {
namespace {

std::string ChatBody(size_t prompt_bytes) {
  std::string text;
  static const char* kWords[] = {"the ",  "quarterly ", "report ", "shows ",  "revenue ",
                                 "grew ", "while ",     "costs ",  "stayed ", "flat "};
  for (size_t i = 0; text.size() < prompt_bytes; ++i) text += kWords[(i * 7) % 10];
  std::string body = R"({"model":"m","temperature":0,"max_tokens":256,"messages":[)"
                     R"({"role":"system","content":"You are helpful."},{"role":"user","content":)";
  AppendJsonString(body, text);
  body += "}]}";
  return body;
}

void BM_CacheExactHit(benchmark::State& state) {
  const bool stream = state.range(0) != 0;
  const std::string body = ChatBody(2048);
  CacheKeyBuilder builder;
  MemoryStore store(64 << 20);
  CacheKey key;
  CacheKeyInput in{"acme", "m", Operation::kChatCompletions, body, 0};
  if (builder.Build(in, {}, key) != CacheBypass::kNone) std::abort();
  auto entry = std::make_shared<CacheEntry>();
  entry->tenant = "acme";
  entry->model = "m";
  entry->response.model = "m";
  entry->response.content.assign(4096, 'a');
  for (size_t i = 5; i < 4096; i += 6) entry->response.content[i] = ' ';
  entry->response.prompt_tokens = 512;
  entry->response.completion_tokens = 800;
  store.Put(key, entry, INT64_MAX);
  std::string out;
  for (auto _ : state) {
    CacheKey k;
    builder.Build(in, {}, k);
    std::shared_ptr<const CacheEntry> found;
    if (store.Find(k, 0, found) != MemoryStore::Lookup::kHit) std::abort();
    out.clear();
    if (stream) {
      RenderCachedStream(found->response, "0123456789abcdef", 1700000000, true, out);
    } else {
      RenderCachedJson(found->response, "0123456789abcdef", 1700000000, out);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(stream ? "sse" : "json");
}
BENCHMARK(BM_CacheExactHit)->Arg(0)->Arg(1);

// Prompts of a RAG-like workload: a question template filled with varying subjects.
std::string Question(uint64_t i) {
  static const char* kVerbs[] = {"explain", "summarise", "compare", "list", "describe"};
  static const char* kTopics[] = {"invoice", "refund",   "contract", "shipment", "warranty",
                                  "account", "password", "policy",   "delivery", "discount"};
  std::string q = kVerbs[i % 5];
  q += " the ";
  q += kTopics[(i / 5) % 10];
  q += " rules for customer " + std::to_string(i) + " in region " + std::to_string(i % 97);
  q += " and quote the relevant section of the handbook";
  return q;
}

struct SemanticFixture {
  explicit SemanticFixture(size_t n) : index(256, 4096, static_cast<uint32_t>(n) + 16) {
    std::vector<float> dense(256);
    semantic::SparseVector sparse;
    for (size_t i = 0; i < n; ++i) {
      vectorizer.Vectorize(Question(i), sparse);
      semantic::TextVectorizer::Fold(sparse, dense);
      index.Insert(dense, 1, CacheKey{i, i});
    }
  }
  semantic::TextVectorizer vectorizer;
  SemanticIndex index;
};

// One index per size for every benchmark (building 100k vectors into HNSW takes seconds).
SemanticFixture& FixtureOf(size_t n) {
  static std::map<size_t, std::unique_ptr<SemanticFixture>> fixtures;
  auto& f = fixtures[n];
  if (!f) f = std::make_unique<SemanticFixture>(n);
  return *f;
}

void BM_CacheSemanticLookup(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  SemanticFixture* fixture = &FixtureOf(n);
  std::vector<float> dense(256);
  semantic::SparseVector sparse;
  uint64_t i = 0, found = 0;
  for (auto _ : state) {
    // A paraphrase of a stored question: same content, other wording at the end.
    std::string q = Question((i++ * 7919) % n);
    q += " please";
    fixture->vectorizer.Vectorize(q, sparse);
    semantic::TextVectorizer::Fold(sparse, dense);
    CacheKey key;
    float similarity = 0;
    if (fixture->index.Find(dense, 1, 0.8f, key, similarity) == SemanticIndex::Result::kFound) {
      ++found;
    }
  }
  state.counters["found"] =
      benchmark::Counter(static_cast<double>(found) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_CacheSemanticLookup)->Arg(1000)->Arg(100000)->Unit(benchmark::kMicrosecond);

// The prompt's vector alone (vectorise + fold), and the index search alone.
void BM_CachePromptVector(benchmark::State& state) {
  semantic::TextVectorizer vectorizer;
  std::vector<float> dense(256);
  semantic::SparseVector sparse;
  const std::string q = Question(4242) + " please";
  for (auto _ : state) {
    vectorizer.Vectorize(q, sparse);
    semantic::TextVectorizer::Fold(sparse, dense);
    benchmark::DoNotOptimize(dense.data());
  }
}
BENCHMARK(BM_CachePromptVector)->Unit(benchmark::kMicrosecond);

void BM_CacheSemanticSearch(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  SemanticFixture& fixture = FixtureOf(n);
  std::vector<std::vector<float>> queries(64, std::vector<float>(256));
  semantic::SparseVector sparse;
  for (size_t i = 0; i < queries.size(); ++i) {
    fixture.vectorizer.Vectorize(Question((i * 7919) % n) + " please", sparse);
    semantic::TextVectorizer::Fold(sparse, queries[i]);
  }
  size_t i = 0;
  for (auto _ : state) {
    CacheKey key;
    float similarity = 0;
    benchmark::DoNotOptimize(
        fixture.index.Find(queries[i++ % queries.size()], 1, 0.8f, key, similarity));
  }
}
BENCHMARK(BM_CacheSemanticSearch)->Arg(1000)->Arg(100000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tokenway
