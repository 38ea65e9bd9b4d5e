#include "semantic/embedding_classifier.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tokenway::semantic {
namespace {

double Norm(std::span<const float> v) {
  double sq = 0;
  for (float x : v) sq += double(x) * x;
  return std::sqrt(sq);
}

// Softmax probability of `label` among `scores` at `scale`.
double Probability(const std::vector<double>& scores, size_t label, double scale) {
  double top = -std::numeric_limits<double>::infinity();
  for (double s : scores) top = std::max(top, scale * s);
  double sum = 0;
  for (double s : scores) sum += std::exp(scale * s - top);
  return std::exp(scale * scores[label] - top) / sum;
}

}  // namespace

StatusOr<EmbeddingClassifier> EmbeddingClassifier::Build(
    const std::vector<std::vector<std::vector<float>>>& examples) {
  if (examples.size() < 2) return Status::Error("an embedding classifier needs two routes");
  EmbeddingClassifier c;
  c.routes_ = examples.size();
  for (const auto& route : examples) {
    if (route.empty()) return Status::Error("every route needs at least one embedded example");
    for (const auto& e : route) {
      if (c.dimension_ == 0) c.dimension_ = e.size();
      if (e.empty() || e.size() != c.dimension_) {
        return Status::Error("embeddings of different dimensions (" + std::to_string(e.size()) +
                             " and " + std::to_string(c.dimension_) + ")");
      }
      if (Norm(e) <= 0) return Status::Error("an example's embedding is all zeros");
    }
  }
  const size_t dim = c.dimension_;
  // Sums of the normalised examples per route.
  std::vector<std::vector<double>> sums(c.routes_, std::vector<double>(dim, 0.0));
  for (size_t r = 0; r < c.routes_; ++r) {
    for (const auto& e : examples[r]) {
      const double n = Norm(e);
      for (size_t i = 0; i < dim; ++i) sums[r][i] += e[i] / n;
    }
  }
  c.centroids_.assign(c.routes_ * dim, 0.0f);
  std::vector<double> sum_norm(c.routes_);
  for (size_t r = 0; r < c.routes_; ++r) {
    double sq = 0;
    for (double x : sums[r]) sq += x * x;
    sum_norm[r] = std::sqrt(sq);
    for (size_t i = 0; i < dim; ++i)
      c.centroids_[r * dim + i] = static_cast<float>(sums[r][i] / sum_norm[r]);
  }
  // Leave-one-out scores for the calibration of the softmax scale.
  std::vector<std::vector<double>> held_scores;
  std::vector<size_t> held_labels;
  for (size_t r = 0; r < c.routes_; ++r) {
    if (examples[r].size() < 2) continue;
    for (const auto& e : examples[r]) {
      const double n = Norm(e);
      std::vector<double> scores(c.routes_);
      for (size_t q = 0; q < c.routes_; ++q) {
        double dot = 0, sq = 0;
        for (size_t i = 0; i < dim; ++i) {
          const double centroid = q == r ? sums[q][i] - e[i] / n : sums[q][i];
          dot += centroid * e[i] / n;
          sq += centroid * centroid;
        }
        scores[q] = sq > 0 ? dot / std::sqrt(sq) : 0.0;
      }
      held_scores.push_back(std::move(scores));
      held_labels.push_back(r);
    }
  }
  if (!held_labels.empty()) {
    double best = std::numeric_limits<double>::infinity();
    for (float s :
         {1.0f, 2.0f, 3.0f, 5.0f, 7.0f, 10.0f, 15.0f, 20.0f, 30.0f, 40.0f, 60.0f, 80.0f, 100.0f}) {
      double loss = 0;
      for (size_t k = 0; k < held_labels.size(); ++k)
        loss -= std::log(std::max(Probability(held_scores[k], held_labels[k], s), 1e-9));
      if (loss < best) {
        best = loss;
        c.scale_ = s;
      }
    }
  }
  return c;
}

Classification EmbeddingClassifier::Classify(std::span<const float> embedding) const {
  Classification out;
  if (embedding.size() != dimension_) return out;
  const double n = Norm(embedding);
  if (n <= 0) return out;
  double top = -std::numeric_limits<double>::infinity();
  int best = -1;
  double scores[64];
  double* s = scores;
  std::vector<double> many;
  if (routes_ > 64) {
    many.resize(routes_);
    s = many.data();
  }
  for (size_t r = 0; r < routes_; ++r) {
    double dot = 0;
    const float* c = &centroids_[r * dimension_];
    for (size_t i = 0; i < dimension_; ++i) dot += double(c[i]) * embedding[i];
    s[r] = dot / n;
    if (s[r] > top) {
      top = s[r];
      best = static_cast<int>(r);
    }
  }
  double sum = 0;
  for (size_t r = 0; r < routes_; ++r) sum += std::exp(scale_ * (s[r] - top));
  out.route = best;
  out.confidence = static_cast<float>(1.0 / sum);
  return out;
}

}  // namespace tokenway::semantic
