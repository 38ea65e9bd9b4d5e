#include "semantic/text_vector.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace tokenway::semantic {
namespace {

constexpr size_t kMaxWordBytes = 64;  // longer words are cut (their first 64 bytes count)
constexpr uint64_t kWordSeed = 0x7e5d1a2b3c4d5e6fULL;

// MurmurHash3's 64-bit finaliser: a cheap, well-mixed hash of a packed n-gram or a pair of hashes.
inline uint64_t Mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

inline bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c >= 0x80;
}
inline bool IsPunctuation(unsigned char c) {
  return c > ' ' && c < 0x7f && !IsWordByte(c);
}
inline unsigned char Lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + ('a' - 'A')) : c;
}

// Calls emit(hash, weight) for every feature of `text`, in text order.
template <typename Emit>
void ForEachFeature(std::string_view text, const TextVectorOptions& o, Emit&& emit) {
  if (text.size() > o.max_bytes) text = text.substr(0, o.max_bytes);
  unsigned char padded[kMaxWordBytes + 2];
  size_t len = 0;  // bytes of the current word in padded[1..]
  uint64_t previous = 0;
  bool have_previous = false;
  const bool char_grams = o.char_ngram_min > 0;
  auto finish_word = [&] {
    if (len == 0) return;
    const uint64_t h = XXH3_64bits_withSeed(padded + 1, len, kWordSeed);
    if (o.word_unigrams) emit(h, o.unigram_weight);
    if (o.word_bigrams && have_previous)
      emit(Mix(previous * 0x9e3779b97f4a7c15ULL ^ h), o.bigram_weight);
    previous = h;
    have_previous = true;
    if (char_grams) {
      // A rolling window of the last 8 bytes of " word "; the n-gram ending at byte j is its low
      // n bytes.
      padded[0] = ' ';
      padded[len + 1] = ' ';
      const size_t plen = len + 2;
      uint64_t window = 0;
      for (size_t j = 0; j < plen; ++j) {
        window = (window << 8) | padded[j];
        for (int n = o.char_ngram_min; n <= o.char_ngram_max && static_cast<size_t>(n) <= j + 1;
             ++n) {
          const uint64_t gram = n == 8 ? window : window & ((uint64_t{1} << (8 * n)) - 1);
          emit(Mix(gram ^ (static_cast<uint64_t>(n) << 58) ^ 0x243f6a8885a308d3ULL), o.char_weight);
        }
      }
    }
    len = 0;
  };
  for (unsigned char c : text) {
    if (IsWordByte(c)) {
      if (len < kMaxWordBytes) padded[1 + len++] = Lower(c);
      continue;
    }
    finish_word();
    if (o.punctuation && IsPunctuation(c))
      emit(Mix(0x70756e6300000000ULL | c), o.punctuation_weight);
  }
  finish_word();
}

// Per-thread accumulation table: a weight per bucket plus the list of buckets touched.
struct Scratch {
  std::vector<float> weight;
  std::vector<uint32_t> touched;
  std::vector<uint32_t> sort_buffer;
};

Scratch& ThreadScratch(uint32_t dimension) {
  thread_local Scratch scratch;
  if (scratch.weight.size() < dimension) scratch.weight.assign(dimension, 0.0f);
  return scratch;
}

// Sorts `keys` (each < 2^bits) ascending: LSD radix sort with 11-bit digits, insertion sort when
// short.
void SortBuckets(std::vector<uint32_t>& keys, std::vector<uint32_t>& buffer, int bits) {
  const size_t n = keys.size();
  if (n < 48) {
    for (size_t i = 1; i < n; ++i) {
      const uint32_t k = keys[i];
      size_t j = i;
      for (; j > 0 && keys[j - 1] > k; --j) keys[j] = keys[j - 1];
      keys[j] = k;
    }
    return;
  }
  constexpr int kDigit = 11;
  constexpr uint32_t kRadix = 1u << kDigit;
  buffer.resize(n);
  uint32_t* from = keys.data();
  uint32_t* to = buffer.data();
  int passes = 0;
  for (int shift = 0; shift < bits; shift += kDigit, ++passes) {
    uint32_t count[kRadix + 1] = {};
    for (size_t i = 0; i < n; ++i) ++count[((from[i] >> shift) & (kRadix - 1)) + 1];
    for (uint32_t d = 0; d < kRadix; ++d) count[d + 1] += count[d];
    for (size_t i = 0; i < n; ++i) to[count[(from[i] >> shift) & (kRadix - 1)]++] = from[i];
    std::swap(from, to);
  }
  if (passes % 2 == 1) std::memcpy(keys.data(), from, n * sizeof(uint32_t));
}

// Collects the touched buckets of `s` into `out` (ascending), values via `value(weight)`, and
// clears the table for the next call.
template <typename Value>
void Collect(Scratch& s, int bits, SparseVector& out, Value&& value) {
  SortBuckets(s.touched, s.sort_buffer, bits);
  out.indices.resize(s.touched.size());
  out.values.resize(s.touched.size());
  for (size_t i = 0; i < s.touched.size(); ++i) {
    const uint32_t b = s.touched[i];
    out.indices[i] = b;
    out.values[i] = value(b, s.weight[b]);
    s.weight[b] = 0.0f;
  }
  s.touched.clear();
}

inline float Sublinear(float c) {
  return c <= 1.0f ? c : 1.0f + std::log(c);
}

}  // namespace

std::string ValidateTextVectorOptions(const TextVectorOptions& o) {
  if (o.dimension < (1u << 8) || o.dimension > (1u << 22) || !std::has_single_bit(o.dimension))
    return "dimension must be a power of two between 256 and 4194304";
  if (o.char_ngram_min < 0 || o.char_ngram_min > 8 || o.char_ngram_max > 8 ||
      (o.char_ngram_min > 0 && o.char_ngram_max < o.char_ngram_min))
    return "character n-gram sizes must satisfy 1 <= min <= max <= 8 (min 0 disables them)";
  if (!o.word_unigrams && !o.word_bigrams && o.char_ngram_min == 0 && !o.punctuation)
    return "at least one feature kind must be enabled";
  for (float w : {o.unigram_weight, o.bigram_weight, o.char_weight, o.punctuation_weight})
    if (!(w >= 0.0f) || !std::isfinite(w)) return "feature weights must be finite and >= 0";
  if (o.max_bytes == 0) return "max_bytes must be positive";
  return {};
}

float Dot(const SparseVector& a, const SparseVector& b) {
  float sum = 0.0f;
  size_t i = 0, j = 0;
  while (i < a.indices.size() && j < b.indices.size()) {
    if (a.indices[i] < b.indices[j]) {
      ++i;
    } else if (a.indices[i] > b.indices[j]) {
      ++j;
    } else {
      sum += a.values[i++] * b.values[j++];
    }
  }
  return sum;
}

float Dot(const SparseVector& a, std::span<const float> dense) {
  float sum = 0.0f;
  for (size_t i = 0; i < a.indices.size(); ++i)
    if (a.indices[i] < dense.size()) sum += a.values[i] * dense[a.indices[i]];
  return sum;
}

float Cosine(std::span<const float> a, std::span<const float> b) {
  const size_t n = std::min(a.size(), b.size());
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < n; ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  if (na <= 0 || nb <= 0) return 0.0f;
  return static_cast<float>(dot / std::sqrt(na * nb));
}

void Normalize(std::span<float> v) {
  double sq = 0;
  for (float x : v) sq += double(x) * x;
  if (sq <= 0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(sq));
  for (float& x : v) x *= inv;
}

void Normalize(SparseVector& v) {
  Normalize(std::span<float>(v.values));
}

TextVectorizer::TextVectorizer(TextVectorOptions options) : options_(options) {}

void TextVectorizer::Features(std::string_view text, SparseVector& out) const {
  Scratch& s = ThreadScratch(options_.dimension);
  const uint32_t mask = options_.dimension - 1;
  ForEachFeature(text, options_, [&](uint64_t h, float w) {
    const uint32_t b = static_cast<uint32_t>(h) & mask;
    if (s.weight[b] == 0.0f) s.touched.push_back(b);
    s.weight[b] += w > 0.0f ? w : 0.0f;
    // A zero-weight feature still marks its bucket; keep it distinguishable from "untouched".
    if (s.weight[b] == 0.0f) s.weight[b] = 1e-30f;
  });
  Collect(s, std::countr_zero(options_.dimension), out, [](uint32_t, float w) { return w; });
}

void TextVectorizer::WeightedTf(std::string_view text, SparseVector& out) const {
  Features(text, out);
  for (float& v : out.values) v = Sublinear(v);
}

void TextVectorizer::Vectorize(std::string_view text, SparseVector& out) const {
  WeightedTf(text, out);
  if (!idf_.empty())
    for (size_t i = 0; i < out.indices.size(); ++i) out.values[i] *= idf_[out.indices[i]];
  Normalize(out);
}

SparseVector TextVectorizer::Vectorize(std::string_view text) const {
  SparseVector out;
  Vectorize(text, out);
  return out;
}

template <typename Text>
void TextVectorizer::FitImpl(std::span<const Text> corpus) {
  std::vector<uint32_t> df(options_.dimension, 0);
  SparseVector features;
  for (const auto& doc : corpus) {
    Features(std::string_view(doc), features);
    for (uint32_t b : features.indices) ++df[b];
  }
  const double n = static_cast<double>(corpus.size());
  idf_.assign(options_.dimension, 0.0f);
  for (uint32_t b = 0; b < options_.dimension; ++b)
    idf_[b] = static_cast<float>(std::log((1.0 + n) / (1.0 + df[b])) + 1.0);
}

void TextVectorizer::Fit(std::span<const std::string> corpus) {
  FitImpl(corpus);
}
void TextVectorizer::Fit(std::span<const std::string_view> corpus) {
  FitImpl(corpus);
}

void TextVectorizer::Fold(const SparseVector& v, std::span<float> out) {
  std::fill(out.begin(), out.end(), 0.0f);
  if (out.empty()) return;
  for (size_t i = 0; i < v.indices.size(); ++i) {
    const uint32_t b = v.indices[i];
    const float sign = (Mix(b) >> 63) ? -1.0f : 1.0f;
    out[b % out.size()] += sign * v.values[i];
  }
  Normalize(out);
}

void LexicalEmbedding(std::string_view text, std::span<float> out) {
  static const TextVectorizer vectorizer;
  thread_local SparseVector v;
  vectorizer.Vectorize(text, v);
  TextVectorizer::Fold(v, out);
}

}  // namespace tokenway::semantic
