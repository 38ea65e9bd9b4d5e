#include "semantic/route_classifier.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "semantic/embedding_classifier.h"
#include "semantic/route_eval_set.h"

namespace tokenway::semantic {
namespace {

using testing::EvalRoutes;
using testing::EvalSet;

struct Report {
  double accuracy = 0;
  std::vector<std::vector<int>> confusion;  // [truth][predicted]
};

Report Evaluate(const RouteClassifier& c, const std::vector<RouteExamples>& routes) {
  const auto set = EvalSet();
  Report r;
  r.confusion.assign(routes.size(), std::vector<int>(routes.size(), 0));
  size_t correct = 0;
  for (const auto& p : set) {
    const Classification got = c.Classify(p.text);
    EXPECT_GE(got.route, 0) << p.text;
    if (got.route < 0) continue;
    ++r.confusion[p.route][got.route];
    if (got.route == p.route) correct += 1;
  }
  r.accuracy = double(correct) / set.size();
  return r;
}

void Print(const char* title, const Report& r, const std::vector<RouteExamples>& routes) {
  std::printf("%s: accuracy %.1f%% on %zu prompts\n%-14s", title, 100 * r.accuracy,
              EvalSet().size(), "truth\\pred");
  for (const auto& route : routes) std::printf("%14s", route.name.c_str());
  std::printf("\n");
  for (size_t t = 0; t < routes.size(); ++t) {
    std::printf("%-14s", routes[t].name.c_str());
    for (int n : r.confusion[t]) std::printf("%14d", n);
    std::printf("\n");
  }
}

TEST(RouteClassifierTest, EvalSetIsLargeAndCoversEveryRoute) {
  const auto set = EvalSet();
  const auto routes = EvalRoutes();
  EXPECT_GE(set.size(), 500u);
  EXPECT_GE(routes.size(), 5u);
  std::vector<int> per_route(routes.size(), 0);
  for (const auto& p : set) {
    ++per_route[p.route];
    for (const auto& r : routes)
      for (const auto& e : r.examples) EXPECT_NE(p.text, e) << "evaluation prompt is an example";
  }
  for (int n : per_route) EXPECT_GE(n, 100);
  // Deterministic.
  const auto again = EvalSet();
  ASSERT_EQ(again.size(), set.size());
  for (size_t i = 0; i < set.size(); ++i) EXPECT_EQ(again[i].text, set[i].text);
}

TEST(RouteClassifierTest, LexicalClassifierReachesNinetyPercent) {
  const auto routes = EvalRoutes();
  auto c = RouteClassifier::Train(routes);
  ASSERT_TRUE(c.ok()) << c.status().message();
  const Report r = Evaluate(**c, routes);
  std::printf(
      "chosen model: %s (cross-validated accuracy: centroid %.3f, logistic %.3f), "
      "softmax scale %.2f\n",
      ClassifierKindName((*c)->kind()), (*c)->centroid_cv_accuracy(), (*c)->logistic_cv_accuracy(),
      (*c)->scale());
  Print("lexical", r, routes);
  EXPECT_GE(r.accuracy, 0.90);
  EXPECT_GE((*c)->centroid_cv_accuracy(), 0.0);
  EXPECT_GE((*c)->logistic_cv_accuracy(), 0.0);
}

TEST(RouteClassifierTest, BothModelKindsAreReported) {
  const auto routes = EvalRoutes();
  for (ClassifierKind kind : {ClassifierKind::kCentroid, ClassifierKind::kLogistic}) {
    ClassifierOptions o;
    o.kind = kind;
    auto c = RouteClassifier::Train(routes, o);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ((*c)->kind(), kind);
    const Report r = Evaluate(**c, routes);
    Print(ClassifierKindName(kind), r, routes);
    EXPECT_GE(r.accuracy, 0.80) << ClassifierKindName(kind);
  }
}

TEST(RouteClassifierTest, ConfidenceIsAProbability) {
  auto c = RouteClassifier::Train(EvalRoutes());
  ASSERT_TRUE(c.ok());
  std::vector<float> p((*c)->routes());
  (*c)->Probabilities("Translate 'see you tomorrow' into Spanish", p);
  float sum = 0;
  for (float x : p) sum += x;
  EXPECT_NEAR(sum, 1.0f, 1e-4);
  const Classification clear = (*c)->Classify("Translate 'see you tomorrow' into Spanish");
  EXPECT_EQ(clear.route, 2);
  EXPECT_GT(clear.confidence, 0.5f);
  // A prompt with nothing route-like is less certain than a clear one.
  const Classification vague = (*c)->Classify("zzz qqq");
  EXPECT_LT(vague.confidence, clear.confidence);
  // No features at all: no route.
  const Classification none = (*c)->Classify("   ");
  EXPECT_EQ(none.route, -1);
  EXPECT_EQ(none.confidence, 0.0f);
}

TEST(RouteClassifierTest, KeywordsAloneTrainARoute) {
  std::vector<RouteExamples> routes = {{"weather", {}, {"forecast", "rain", "temperature"}},
                                       {"sports", {}, {"football", "match", "score"}}};
  auto c = RouteClassifier::Train(routes);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->Classify("will it rain tomorrow, what's the forecast").route, 0);
  EXPECT_EQ((*c)->Classify("who won the football match yesterday").route, 1);
}

TEST(RouteClassifierTest, BadTrainingInputIsRejected) {
  EXPECT_FALSE(RouteClassifier::Train({{"only", {"one route"}, {}}}).ok());
  auto empty = RouteClassifier::Train({{"a", {"hello there"}, {}}, {"b", {}, {}}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("route 'b'"), std::string::npos);
  ClassifierOptions bad;
  bad.vectors.dimension = 3;
  EXPECT_FALSE(RouteClassifier::Train({{"a", {"x"}, {}}, {"b", {"y"}, {}}}, bad).ok());
  bad = {};
  bad.epochs = 0;
  EXPECT_FALSE(RouteClassifier::Train({{"a", {"x"}, {}}, {"b", {"y"}, {}}}, bad).ok());
}

TEST(RouteClassifierTest, TrainingIsDeterministic) {
  auto a = RouteClassifier::Train(EvalRoutes());
  auto b = RouteClassifier::Train(EvalRoutes());
  ASSERT_TRUE(a.ok() && b.ok());
  for (const auto& p : EvalSet()) {
    const auto x = (*a)->Classify(p.text), y = (*b)->Classify(p.text);
    ASSERT_EQ(x.route, y.route);
    ASSERT_EQ(x.confidence, y.confidence);
  }
}

}  // namespace
}  // namespace tokenway::semantic

namespace tokenway::semantic {
namespace {

// The embedding path: the deterministic embeddings tokenway-sim's /v1/embeddings answers with
// (LexicalEmbedding, 256 and the default 1024 dimensions), classified by nearest centroid.
TEST(EmbeddingClassifierTest, SimEmbeddingsThroughNearestCentroid) {
  const auto routes = testing::EvalRoutes();
  for (size_t dim : {256u, 1024u}) {
    std::vector<std::vector<std::vector<float>>> examples(routes.size());
    for (size_t r = 0; r < routes.size(); ++r) {
      for (const auto& e : routes[r].examples) {
        examples[r].emplace_back(dim);
        LexicalEmbedding(e, examples[r].back());
      }
      for (const auto& k : routes[r].keywords) {
        examples[r].emplace_back(dim);
        LexicalEmbedding(k, examples[r].back());
      }
    }
    auto c = EmbeddingClassifier::Build(examples);
    ASSERT_TRUE(c.ok()) << c.status().message();
    const auto set = testing::EvalSet();
    std::vector<std::vector<int>> confusion(routes.size(), std::vector<int>(routes.size(), 0));
    size_t right = 0;
    std::vector<float> v(dim);
    for (const auto& p : set) {
      LexicalEmbedding(p.text, v);
      const Classification got = c->Classify(v);
      ASSERT_GE(got.route, 0);
      ++confusion[p.route][got.route];
      right += got.route == p.route;
    }
    const double accuracy = double(right) / set.size();
    std::printf(
        "embedding (sim, %zu-d, nearest centroid, scale %.0f): accuracy %.1f%% on %zu "
        "prompts\n%-14s",
        dim, c->scale(), 100 * accuracy, set.size(), "truth\\pred");
    for (const auto& route : routes) std::printf("%14s", route.name.c_str());
    std::printf("\n");
    for (size_t t = 0; t < routes.size(); ++t) {
      std::printf("%-14s", routes[t].name.c_str());
      for (int n : confusion[t]) std::printf("%14d", n);
      std::printf("\n");
    }
    EXPECT_GE(accuracy, 0.70);
  }
}

TEST(EmbeddingClassifierTest, BadInputIsRejected) {
  EXPECT_FALSE(EmbeddingClassifier::Build({{{1, 0}}}).ok());
  EXPECT_FALSE(EmbeddingClassifier::Build({{{1, 0}}, {}}).ok());
  EXPECT_FALSE(EmbeddingClassifier::Build({{{1, 0}}, {{1, 0, 0}}}).ok());
  EXPECT_FALSE(EmbeddingClassifier::Build({{{0, 0}}, {{1, 0}}}).ok());
  auto c = EmbeddingClassifier::Build({{{1, 0}, {0.9f, 0.1f}}, {{0, 1}, {0.1f, 0.9f}}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Classify(std::vector<float>{0.8f, 0.2f}).route, 0);
  EXPECT_EQ(c->Classify(std::vector<float>{0.2f, 0.8f}).route, 1);
  EXPECT_EQ(c->Classify(std::vector<float>{0, 0}).route, -1);
  EXPECT_EQ(c->Classify(std::vector<float>{1, 0, 0}).route, -1);
}

}  // namespace
}  // namespace tokenway::semantic
