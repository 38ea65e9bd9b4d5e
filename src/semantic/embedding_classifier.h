// EmbeddingClassifier: nearest-centroid classification of dense embeddings (from an embeddings
// backend such as any OpenAI-compatible /v1/embeddings endpoint), the counterpart of the lexical
// RouteClassifier for routers that embed prompts. Built once from the embeddings of each route's
// examples and keywords (on whichever thread fetched them); Classify is then thread-safe and
// allocation-free.
//
// Each route's centroid is the normalised sum of its normalised example embeddings; the score of
// a route is the cosine to its centroid, and the confidence the softmax of scale × score, the scale
// calibrated on leave-one-out predictions of the examples (each example against centroids built
// without it) to minimise their log-loss.
#pragma once

#include <span>
#include <vector>

#include "semantic/route_classifier.h"
#include "tokenway/status.h"

namespace tokenway::semantic {

class EmbeddingClassifier {
 public:
  // examples[r]: the embeddings of route r's examples (all of one dimension, none all zeros).
  static StatusOr<EmbeddingClassifier> Build(
      const std::vector<std::vector<std::vector<float>>>& examples);

  Classification Classify(std::span<const float> embedding) const;

  size_t routes() const { return routes_; }
  size_t dimension() const { return dimension_; }
  float scale() const { return scale_; }

 private:
  std::vector<float> centroids_;  // [route * dimension + i]
  size_t routes_ = 0;
  size_t dimension_ = 0;
  float scale_ = 20.0f;
};

}  // namespace tokenway::semantic
