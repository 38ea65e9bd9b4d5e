// Micro-benchmarks of the semantic layer (Google Benchmark): the TF-IDF vector of a 2 KB prompt of
// mixed prose and code, the cosine of two such vectors, and the semantic router's whole decision
// for a 2 KB prompt over five routes with each model kind (target: <= 50 us, issue 16).
// Run: make bench-micro (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "semantic/route_classifier.h"
#include "semantic/semantic_router.h"
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

RouterConfig FiveRoutes(ClassifierKind kind) {
  RouterConfig c;
  c.routes = {
      {"code",
       "coder",
       {"Write a Python function that reverses a linked list.",
        "Why does my JavaScript code throw undefined is not a function?",
        "Fix the bug in this C++ loop that reads past the end of the vector.",
        "Write a SQL query that returns the ten customers with the most orders."},
       {"python", "function", "bug", "compile error"},
       {}},
      {"math",
       "solver",
       {"What is the derivative of x^3 * sin(x)?", "Solve the equation 3x + 7 = 22 for x.",
        "Compute the integral of 1/(1+x^2) from 0 to 1.",
        "Find the eigenvalues of the matrix [[2, 1], [1, 2]]."},
       {"equation", "integral", "probability"},
       {}},
      {"translation",
       "translator",
       {"Translate 'good morning' into Spanish.",
        "How do you say 'where is the station' in German?",
        "Please translate the following email into Italian.",
        "What does 'arigatou gozaimasu' mean in English?"},
       {"translate", "in french"},
       {}},
      {"summarisation",
       "summariser",
       {"Summarise the following article in three bullet points.",
        "Give me a short summary of this meeting transcript.",
        "Condense this report into one paragraph.", "What are the key points of this blog post?"},
       {"summary", "tl;dr", "recap"},
       {}},
      {"chit-chat",
       "chatter",
       {"Hi! How is your day going?", "Tell me a joke about cats.",
        "What is your favourite movie and why?", "I'm bored, any ideas for tonight?"},
       {"hello", "joke", "weekend"},
       {}},
  };
  c.default_route = "chit-chat";
  c.classifier = kind;
  return c;
}

// The resolve phase's work for a request to a virtual model: RoutingText, classification
// (vector + linear model + softmax), the decision and its counters.
void BM_RouteDecide2KB(benchmark::State& state) {
  const auto kind = state.range(0) == 0 ? ClassifierKind::kCentroid : ClassifierKind::kLogistic;
  auto router = SemanticRouter::Build("bench-auto", FiveRoutes(kind));
  if (!router.ok()) std::abort();
  const std::string prompt = "user: " + Text(2048, 0);
  for (auto _ : state) {
    const std::string_view text = SemanticRouter::RoutingText(prompt, true);
    benchmark::DoNotOptimize((*router)->Decide(text, "").route);
  }
  state.SetLabel(ClassifierKindName(kind));
}
BENCHMARK(BM_RouteDecide2KB)->Arg(0)->Arg(1);

}  // namespace
}  // namespace tokenway::semantic
