// RouteClassifier: decides which of a few routes a prompt belongs to, from example prompts and
// keywords per route, with a confidence in [0, 1]. The semantic router (semantic_router.h) calls
// Classify on worker threads for every request to a virtual model; Train runs once per
// configuration load on the control thread.
//
// Features are TextVectorizer TF-IDF vectors (IDF fitted on the examples and keywords). Two
// linear models are trained and the better one kept:
//   centroid  — per route the normalised sum of its training vectors; score = cosine;
//   logistic  — multinomial logistic regression, a few epochs of SGD with L2 decay.
// "Better" is k-fold cross-validated accuracy over the examples (keywords always train); ties
// keep the centroid model (fewer assumptions). The same cross-validation calibrates the
// confidence: the softmax of scale × score, with the scale that minimises the log-loss of the
// held-out predictions. Both models are a weight per (bucket, route), stored bucket-major, so
// classifying a prompt is one pass over its features.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "semantic/text_vector.h"
#include "tokenway/status.h"

namespace tokenway::semantic {

struct RouteExamples {
  std::string name;
  std::vector<std::string> examples;  // whole prompts
  std::vector<std::string> keywords;  // words or short phrases
};

enum class ClassifierKind : uint8_t { kAuto, kCentroid, kLogistic };
const char* ClassifierKindName(ClassifierKind kind);

struct ClassifierOptions {
  ClassifierKind kind = ClassifierKind::kAuto;
  TextVectorOptions vectors;
  int epochs = 30;
  float learning_rate = 0.5f;
  float l2 = 1e-4f;
  int folds = 5;  // cross-validation folds (fewer when a route has fewer examples)
  uint64_t seed = 0x5eed;
};

struct Classification {
  int route = -1;           // index into the training routes; -1: the text has no features
  float confidence = 0.0f;  // calibrated probability of `route`
};

class RouteClassifier {
 public:
  // Trains on `routes` (at least two, each with at least one example or keyword).
  static StatusOr<std::shared_ptr<const RouteClassifier>> Train(
      const std::vector<RouteExamples>& routes, const ClassifierOptions& options = {});

  // Thread-safe; allocation-free once the calling thread's scratch has grown.
  Classification Classify(std::string_view text) const;
  // Calibrated probability per route into `out` (size routes()); all zero for an empty text.
  void Probabilities(std::string_view text, std::span<float> out) const;

  size_t routes() const { return bias_.size(); }
  ClassifierKind kind() const { return kind_; }
  // Cross-validated accuracy of the centroid and logistic models (-1 when not measured: too few
  // examples, or the kind was fixed by the options).
  double centroid_cv_accuracy() const { return centroid_cv_; }
  double logistic_cv_accuracy() const { return logistic_cv_; }
  float scale() const { return scale_; }

 private:
  RouteClassifier() = default;
  void Scores(const SparseVector& v, std::span<float> out) const;

  TextVectorizer vectorizer_;
  ClassifierKind kind_ = ClassifierKind::kCentroid;
  std::vector<float> weights_;  // [bucket * routes + route]
  std::vector<float> bias_;
  float scale_ = 10.0f;
  double centroid_cv_ = -1;
  double logistic_cv_ = -1;
};

}  // namespace tokenway::semantic
