// TextVectorizer: turns text into a sparse TF-IDF vector over hashed lexical features — word
// unigrams, word bigrams and character n-grams inside words — L2-normalised, so the cosine of two
// texts is the dot product of their vectors. No model weights: the only learned state is the IDF
// table, fitted on a corpus (a router's example prompts, a cache's stored prompts).
//
// Used by the semantic router (semantic/route_classifier.h) to classify prompts on worker threads,
// by the response cache to compare prompts, and by tokenway-sim to answer /v1/embeddings (Fold to
// a small dense dimension). Fit runs once on the control thread while the vectorizer is built;
// afterwards every const method is safe to call from any number of threads at once (each thread
// accumulates in its own scratch table, allocated on its first call).
//
// Features: text is split into words (ASCII letters and digits lowercased, every byte >= 0x80 kept
// as part of a word so UTF-8 text works, everything else a separator); each punctuation character
// is a one-character token of its own (braces, operators and `#` carry meaning in code). A word
// unigram hashes with XXH3; a bigram combines two word hashes; a character n-gram is taken from the
// word padded with boundary marks (" cat " → " ca", "cat", "at "). Each feature lands in one of
// `dimension` buckets; term frequency is sublinear (1 + ln tf), times the feature kind's weight,
// times the bucket's IDF (1 when not fitted).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway::semantic {

struct TextVectorOptions {
  uint32_t dimension = 1u << 16;  // number of hash buckets; a power of two, 2^8 .. 2^22
  bool word_unigrams = true;
  bool word_bigrams = true;
  bool punctuation = true;  // punctuation characters as one-character tokens (unigrams only)
  int char_ngram_min = 3;   // 0 disables character n-grams; otherwise 1 .. 8
  int char_ngram_max = 4;
  float unigram_weight = 1.0f;
  float bigram_weight = 0.8f;
  float char_weight = 0.35f;
  float punctuation_weight = 0.5f;
  size_t max_bytes = 16384;  // only the first max_bytes of a text are read (bounded time)
};

// Validates options; returns an empty string when they are usable, else what is wrong.
std::string ValidateTextVectorOptions(const TextVectorOptions& options);

// A sparse vector: indices strictly ascending, one value each. Vectors produced by TextVectorizer
// are L2-normalised (or empty for a text without features).
struct SparseVector {
  std::vector<uint32_t> indices;
  std::vector<float> values;

  size_t size() const { return indices.size(); }
  bool empty() const { return indices.empty(); }
  void clear() {
    indices.clear();
    values.clear();
  }
};

// Dot product of two sparse vectors (the cosine when both are L2-normalised).
float Dot(const SparseVector& a, const SparseVector& b);
// Dot product of a sparse vector and a dense one; indices beyond dense.size() count as zero.
float Dot(const SparseVector& a, std::span<const float> dense);
// Cosine similarity of two dense vectors of the same length (0 when either is all zeros).
float Cosine(std::span<const float> a, std::span<const float> b);
// Scales `v` to unit L2 norm (left alone when it is all zeros).
void Normalize(std::span<float> v);
void Normalize(SparseVector& v);

class TextVectorizer {
 public:
  // `options` must pass ValidateTextVectorOptions (checked by the caller at config load).
  explicit TextVectorizer(TextVectorOptions options = {});

  // Fits the IDF table on `corpus`: idf = ln((1 + N) / (1 + df)) + 1 per bucket, N documents.
  // Buckets no document touches get the highest IDF. Replaces an earlier fit.
  void Fit(std::span<const std::string> corpus);
  void Fit(std::span<const std::string_view> corpus);

  // The TF-IDF vector of `text`, L2-normalised. The overload with `out` reuses its capacity.
  SparseVector Vectorize(std::string_view text) const;
  void Vectorize(std::string_view text, SparseVector& out) const;

  // The raw feature buckets of `text` with their (unweighted) counts, indices ascending.
  void Features(std::string_view text, SparseVector& out) const;

  // Folds a vector into out.size() dense dimensions (bucket i → i mod n, with a sign drawn from a
  // hash of i so that collisions cancel rather than pile up), then L2-normalises `out`.
  static void Fold(const SparseVector& v, std::span<float> out);

  uint32_t dimension() const { return options_.dimension; }
  bool fitted() const { return !idf_.empty(); }
  const TextVectorOptions& options() const { return options_; }
  // The IDF of a bucket (1 when not fitted).
  float Idf(uint32_t bucket) const { return idf_.empty() ? 1.0f : idf_[bucket]; }

 private:
  template <typename Text>
  void FitImpl(std::span<const Text> corpus);
  // Accumulates weighted sublinear TF per bucket into `out` (indices ascending), no IDF.
  void WeightedTf(std::string_view text, SparseVector& out) const;

  TextVectorOptions options_;
  std::vector<float> idf_;
};

// The deterministic lexical embedding tokenway-sim answers /v1/embeddings with, and that stands
// in for an embedding model in tests and benchmarks: the text's vector under default options
// without IDF, folded to out.size() dimensions (unit length; all zeros for a text without
// features). Similar texts get close vectors.
void LexicalEmbedding(std::string_view text, std::span<float> out);

}  // namespace tokenway::semantic
