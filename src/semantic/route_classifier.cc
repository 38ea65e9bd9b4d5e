#include "semantic/route_classifier.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace tokenway::semantic {
namespace {

struct Doc {
  SparseVector x;
  int label = 0;
  bool keyword = false;
};

struct Model {
  std::vector<float> w;  // [bucket * routes + route]
  std::vector<float> b;
};

void LinearScores(const std::vector<float>& w, const std::vector<float>& b, size_t routes,
                  const SparseVector& x, float* out) {
  for (size_t r = 0; r < routes; ++r) out[r] = b[r];
  for (size_t k = 0; k < x.indices.size(); ++k) {
    const float* row = &w[size_t(x.indices[k]) * routes];
    const float v = x.values[k];
    for (size_t r = 0; r < routes; ++r) out[r] += row[r] * v;
  }
}

void Softmax(const float* scores, size_t n, float scale, float* out) {
  float top = -std::numeric_limits<float>::infinity();
  for (size_t r = 0; r < n; ++r) top = std::max(top, scale * scores[r]);
  float sum = 0.0f;
  for (size_t r = 0; r < n; ++r) sum += (out[r] = std::exp(scale * scores[r] - top));
  for (size_t r = 0; r < n; ++r) out[r] /= sum;
}

Model TrainCentroid(const std::vector<Doc>& docs, const std::vector<size_t>& subset, size_t routes,
                    uint32_t dimension) {
  Model m;
  m.w.assign(size_t(dimension) * routes, 0.0f);
  m.b.assign(routes, 0.0f);
  for (size_t i : subset) {
    const Doc& d = docs[i];
    for (size_t k = 0; k < d.x.indices.size(); ++k)
      m.w[size_t(d.x.indices[k]) * routes + d.label] += d.x.values[k];
  }
  std::vector<double> norm(routes, 0.0);
  for (size_t i = 0; i < m.w.size(); ++i) norm[i % routes] += double(m.w[i]) * m.w[i];
  for (size_t i = 0; i < m.w.size(); ++i) {
    const double n = norm[i % routes];
    if (n > 0) m.w[i] = static_cast<float>(m.w[i] / std::sqrt(n));
  }
  return m;
}

// Deterministic Fisher-Yates shuffle (the same order on every platform for a seed).
void Shuffle(std::vector<size_t>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

Model TrainLogistic(const std::vector<Doc>& docs, const std::vector<size_t>& subset, size_t routes,
                    uint32_t dimension, const ClassifierOptions& o) {
  Model m;
  m.w.assign(size_t(dimension) * routes, 0.0f);
  m.b.assign(routes, 0.0f);
  std::vector<size_t> order = subset;
  std::mt19937_64 rng(o.seed);
  std::vector<float> scores(routes), p(routes);
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    Shuffle(order, rng);
    const float lr = o.learning_rate / (1.0f + 0.1f * epoch);
    for (size_t i : order) {
      const Doc& d = docs[i];
      LinearScores(m.w, m.b, routes, d.x, scores.data());
      Softmax(scores.data(), routes, 1.0f, p.data());
      for (size_t r = 0; r < routes; ++r) {
        const float g = lr * (p[r] - (int(r) == d.label ? 1.0f : 0.0f));
        m.b[r] -= g;
        for (size_t k = 0; k < d.x.indices.size(); ++k)
          m.w[size_t(d.x.indices[k]) * routes + r] -= g * d.x.values[k];
      }
    }
    const float decay = 1.0f - lr * o.l2;
    for (float& w : m.w) w *= decay;
  }
  return m;
}

struct HeldOut {
  std::vector<float> scores;  // [doc * routes + route]
  std::vector<int> labels;
  size_t correct = 0;
};

double LogLoss(const HeldOut& h, size_t routes, float scale) {
  std::vector<float> p(routes);
  double loss = 0;
  for (size_t i = 0; i < h.labels.size(); ++i) {
    Softmax(&h.scores[i * routes], routes, scale, p.data());
    loss -= std::log(std::max(p[h.labels[i]], 1e-9f));
  }
  return loss;
}

void Evaluate(const Model& m, const std::vector<Doc>& docs, const std::vector<size_t>& test,
              size_t routes, HeldOut& out) {
  std::vector<float> s(routes);
  for (size_t i : test) {
    LinearScores(m.w, m.b, routes, docs[i].x, s.data());
    const int best = int(std::max_element(s.begin(), s.end()) - s.begin());
    if (best == docs[i].label) ++out.correct;
    out.scores.insert(out.scores.end(), s.begin(), s.end());
    out.labels.push_back(docs[i].label);
  }
}

}  // namespace

const char* ClassifierKindName(ClassifierKind kind) {
  switch (kind) {
    case ClassifierKind::kAuto:
      return "auto";
    case ClassifierKind::kCentroid:
      return "centroid";
    case ClassifierKind::kLogistic:
      return "logistic";
  }
  return "auto";
}

StatusOr<std::shared_ptr<const RouteClassifier>> RouteClassifier::Train(
    const std::vector<RouteExamples>& routes, const ClassifierOptions& options) {
  if (std::string e = ValidateTextVectorOptions(options.vectors); !e.empty())
    return Status::Error(e);
  if (routes.size() < 2) return Status::Error("a classifier needs at least two routes");
  if (options.epochs < 1 || !(options.learning_rate > 0) || !(options.l2 >= 0))
    return Status::Error("epochs, learning_rate and l2 must be positive");
  std::vector<std::string_view> corpus;
  for (const RouteExamples& r : routes) {
    if (r.examples.empty() && r.keywords.empty())
      return Status::Error("route '" + r.name + "' has neither examples nor keywords");
    for (const auto& e : r.examples) corpus.push_back(e);
    for (const auto& k : r.keywords) corpus.push_back(k);
  }
  std::shared_ptr<RouteClassifier> c(new RouteClassifier());
  c->vectorizer_ = TextVectorizer(options.vectors);
  c->vectorizer_.Fit(corpus);
  const size_t n_routes = routes.size();
  const uint32_t dim = c->vectorizer_.dimension();

  std::vector<Doc> docs;
  std::vector<size_t> examples, keywords, all;
  for (size_t r = 0; r < n_routes; ++r) {
    auto add = [&](const std::string& text, bool keyword) -> Status {
      Doc d;
      c->vectorizer_.Vectorize(text, d.x);
      if (d.x.empty()) {
        return Status::Error("route '" + routes[r].name +
                             "': " + (keyword ? "keyword" : "example") + " '" + text +
                             "' has no words to learn from");
      }
      d.label = int(r);
      d.keyword = keyword;
      (keyword ? keywords : examples).push_back(docs.size());
      all.push_back(docs.size());
      docs.push_back(std::move(d));
      return Status::Ok();
    };
    for (const auto& e : routes[r].examples)
      if (Status s = add(e, false); !s.ok()) return s;
    for (const auto& k : routes[r].keywords)
      if (Status s = add(k, true); !s.ok()) return s;
  }

  // Cross-validation over the examples: which model generalises better, and the softmax scale.
  const bool try_centroid = options.kind != ClassifierKind::kLogistic;
  const bool try_logistic = options.kind != ClassifierKind::kCentroid;
  HeldOut centroid_out, logistic_out;
  const size_t folds = std::min<size_t>(std::max(options.folds, 2), examples.size());
  const bool cross_validate = examples.size() >= 2 * n_routes && folds >= 2;
  if (cross_validate) {
    std::vector<size_t> shuffled = examples;
    std::mt19937_64 rng(options.seed ^ 0xc0ffee);
    Shuffle(shuffled, rng);
    for (size_t f = 0; f < folds; ++f) {
      std::vector<size_t> train = keywords, test;
      for (size_t i = 0; i < shuffled.size(); ++i)
        (i % folds == f ? test : train).push_back(shuffled[i]);
      if (try_centroid)
        Evaluate(TrainCentroid(docs, train, n_routes, dim), docs, test, n_routes, centroid_out);
      if (try_logistic)
        Evaluate(TrainLogistic(docs, train, n_routes, dim, options), docs, test, n_routes,
                 logistic_out);
    }
    if (try_centroid) c->centroid_cv_ = double(centroid_out.correct) / examples.size();
    if (try_logistic) c->logistic_cv_ = double(logistic_out.correct) / examples.size();
  }
  ClassifierKind kind = options.kind;
  if (kind == ClassifierKind::kAuto) {
    kind = cross_validate && logistic_out.correct > centroid_out.correct
               ? ClassifierKind::kLogistic
               : ClassifierKind::kCentroid;
  }
  c->kind_ = kind;
  // Uncalibrated defaults: a cosine gap of 0.1 is a factor e between two routes' odds.
  c->scale_ = kind == ClassifierKind::kCentroid ? 10.0f : 1.0f;
  if (cross_validate) {
    const HeldOut& h = kind == ClassifierKind::kCentroid ? centroid_out : logistic_out;
    double best = std::numeric_limits<double>::infinity();
    for (float s : {0.25f, 0.5f,  0.75f, 1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,  8.0f,
                    10.0f, 12.0f, 15.0f, 20.0f, 25.0f, 30.0f, 40.0f, 50.0f, 70.0f, 100.0f}) {
      const double loss = LogLoss(h, n_routes, s);
      if (loss < best) {
        best = loss;
        c->scale_ = s;
      }
    }
  }
  Model m = kind == ClassifierKind::kCentroid ? TrainCentroid(docs, all, n_routes, dim)
                                              : TrainLogistic(docs, all, n_routes, dim, options);
  c->weights_ = std::move(m.w);
  c->bias_ = std::move(m.b);
  return std::shared_ptr<const RouteClassifier>(std::move(c));
}

void RouteClassifier::Scores(const SparseVector& v, std::span<float> out) const {
  LinearScores(weights_, bias_, bias_.size(), v, out.data());
}

void RouteClassifier::Probabilities(std::string_view text, std::span<float> out) const {
  thread_local SparseVector v;
  vectorizer_.Vectorize(text, v);
  if (v.empty()) {
    std::fill(out.begin(), out.end(), 0.0f);
    return;
  }
  thread_local std::vector<float> scores;
  scores.resize(bias_.size());
  Scores(v, scores);
  Softmax(scores.data(), bias_.size(), scale_, out.data());
}

Classification RouteClassifier::Classify(std::string_view text) const {
  thread_local std::vector<float> p;
  p.resize(bias_.size());
  Probabilities(text, p);
  Classification c;
  const auto best = std::max_element(p.begin(), p.end());
  if (*best <= 0.0f) return c;
  c.route = int(best - p.begin());
  c.confidence = *best;
  return c;
}

}  // namespace tokenway::semantic
