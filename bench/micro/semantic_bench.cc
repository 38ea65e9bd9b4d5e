// Micro-benchmarks of the semantic layer (Google Benchmark): the TF-IDF vector of a 2 KB prompt of
// mixed prose and code (target: <= 50 us, issue 16), and the cosine of two such vectors.
// Run: make bench-micro (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "semantic/text_vector.h"

namespace tokenway::semantic {
namespace {

std::string Text(size_t bytes, int variant) {
  static const char* kLines[] = {
      "The quarterly report shows revenue grew 12% while costs stayed flat at 3.4 million. ",
      "for (size_t i = 0; i < items.size(); ++i) { total += items[i].price * items[i].qty; } ",
      "Bitte prüfen Sie die Änderungen bis Freitag, 15:30 Uhr, und geben Sie Rückmeldung. ",
      "SELECT name, created_at FROM orders WHERE status = 'open' ORDER BY created_at DESC; ",
      "Summarise the discussion above in three bullet points and list the open questions. ",
  };
  std::string text;
  for (size_t i = variant; text.size() < bytes; ++i) text += kLines[i % 5];
  text.resize(bytes);
  return text;
}

TextVectorizer FittedVectorizer() {
  std::vector<std::string> corpus;
  for (int i = 0; i < 50; ++i) corpus.push_back(Text(200, i));
  TextVectorizer vectorizer;
  vectorizer.Fit(corpus);
  return vectorizer;
}

void BM_TextVector2KB(benchmark::State& state) {
  const TextVectorizer vectorizer = FittedVectorizer();
  const std::string text = Text(2048, 0);
  SparseVector v;
  for (auto _ : state) {
    vectorizer.Vectorize(text, v);
    benchmark::DoNotOptimize(v.values.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
}
BENCHMARK(BM_TextVector2KB);

void BM_TextVectorCosine2KB(benchmark::State& state) {
  const TextVectorizer vectorizer = FittedVectorizer();
  const SparseVector a = vectorizer.Vectorize(Text(2048, 0));
  const SparseVector b = vectorizer.Vectorize(Text(2048, 1));
  for (auto _ : state) benchmark::DoNotOptimize(Dot(a, b));
}
BENCHMARK(BM_TextVectorCosine2KB);

}  // namespace
}  // namespace tokenway::semantic
