#include "semantic/text_vector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

namespace tokenway::semantic {
namespace {

double Norm(const SparseVector& v) {
  double sq = 0;
  for (float x : v.values) sq += double(x) * x;
  return std::sqrt(sq);
}

TEST(TextVectorTest, VectorsAreNormalisedSortedAndDeterministic) {
  TextVectorizer vectorizer;
  const SparseVector a = vectorizer.Vectorize("Write a Python function that reverses a list.");
  ASSERT_FALSE(a.empty());
  EXPECT_NEAR(Norm(a), 1.0, 1e-5);
  for (size_t i = 1; i < a.indices.size(); ++i) EXPECT_LT(a.indices[i - 1], a.indices[i]);
  for (uint32_t b : a.indices) EXPECT_LT(b, vectorizer.dimension());
  const SparseVector again = vectorizer.Vectorize("Write a Python function that reverses a list.");
  EXPECT_EQ(a.indices, again.indices);
  EXPECT_EQ(a.values, again.values);
  EXPECT_NEAR(Dot(a, a), 1.0f, 1e-5);
}

TEST(TextVectorTest, CaseAndSpacingDoNotMatter) {
  TextVectorizer vectorizer;
  const SparseVector a = vectorizer.Vectorize("Hello   World");
  const SparseVector b = vectorizer.Vectorize("hello world");
  EXPECT_NEAR(Dot(a, b), 1.0f, 1e-5);
}

TEST(TextVectorTest, SimilarTextsAreCloserThanUnrelatedOnes) {
  TextVectorizer vectorizer;
  const auto code1 = vectorizer.Vectorize("write a python function to sort a list of integers");
  const auto code2 =
      vectorizer.Vectorize("Write a Python function that sorts the integers in a list");
  const auto food = vectorizer.Vectorize("what is your favourite recipe for banana bread?");
  EXPECT_GT(Dot(code1, code2), 0.5f);
  EXPECT_LT(Dot(code1, food), 0.25f);
  EXPECT_GT(Dot(code1, code2), Dot(code1, food) + 0.3f);
}

TEST(TextVectorTest, TextWithoutFeaturesGivesAnEmptyVector) {
  TextVectorizer vectorizer;
  EXPECT_TRUE(vectorizer.Vectorize("").empty());
  EXPECT_TRUE(vectorizer.Vectorize("   \n\t ").empty());
  TextVectorOptions words_only;
  words_only.punctuation = false;
  TextVectorizer no_punct(words_only);
  EXPECT_TRUE(no_punct.Vectorize("?!... ---").empty());
  EXPECT_EQ(Dot(SparseVector{}, vectorizer.Vectorize("x")), 0.0f);
}

TEST(TextVectorTest, Utf8TextProducesFeatures) {
  TextVectorizer vectorizer;
  const auto a = vectorizer.Vectorize("Übersetze diesen Satz ins Französische");
  const auto b = vectorizer.Vectorize("übersetze den Satz ins Französische bitte");
  ASSERT_FALSE(a.empty());
  EXPECT_GT(Dot(a, b), 0.4f);
}

TEST(TextVectorTest, FittedIdfDownweightsCommonWords) {
  std::vector<std::string> corpus = {"the cat sat", "the dog ran", "the bird flew",
                                     "the fish swam"};
  TextVectorOptions options;
  options.char_ngram_min = 0;
  options.word_bigrams = false;
  TextVectorizer plain(options);
  TextVectorizer fitted(options);
  fitted.Fit(corpus);
  ASSERT_TRUE(fitted.fitted());
  EXPECT_FALSE(plain.fitted());
  // "the" is in every document, "cat" in one: after fitting, "the cat" leans towards "cat".
  const auto cat = fitted.Vectorize("cat");
  const auto the = fitted.Vectorize("the");
  const auto both = fitted.Vectorize("the cat");
  EXPECT_GT(Dot(both, cat), Dot(both, the) + 0.2f);
  const auto plain_both = plain.Vectorize("the cat");
  EXPECT_NEAR(Dot(plain_both, plain.Vectorize("cat")), Dot(plain_both, plain.Vectorize("the")),
              1e-5);
  // A bucket no document touched gets the largest IDF.
  SparseVector f;
  fitted.Features("the", f);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_LT(fitted.Idf(f.indices[0]), fitted.Idf((f.indices[0] + 1) % fitted.dimension()));
}

TEST(TextVectorTest, RepeatedWordsGrowSublinearly) {
  TextVectorOptions options;
  options.char_ngram_min = 0;
  options.word_bigrams = false;
  TextVectorizer vectorizer(options);
  SparseVector f;
  vectorizer.Features("spam spam spam spam eggs", f);
  ASSERT_EQ(f.size(), 2u);
  const auto v = vectorizer.Vectorize("spam spam spam spam eggs");
  // spam counted 4 times → 1 + ln 4 ≈ 2.386 against eggs' 1.
  const float big = std::max(v.values[0], v.values[1]);
  const float small = std::min(v.values[0], v.values[1]);
  EXPECT_NEAR(big / small, 1.0f + std::log(4.0f), 1e-4);
}

TEST(TextVectorTest, OnlyTheFirstMaxBytesCount) {
  TextVectorOptions options;
  options.max_bytes = 10;
  TextVectorizer vectorizer(options);
  const auto a = vectorizer.Vectorize("alpha beta gamma delta");
  const auto b = vectorizer.Vectorize("alpha beta epsilon zeta");
  EXPECT_NEAR(Dot(a, b), 1.0f, 1e-5);
}

TEST(TextVectorTest, FoldKeepsSimilarityInASmallDenseSpace) {
  TextVectorizer vectorizer;
  std::vector<float> a(256), b(256), c(256);
  TextVectorizer::Fold(vectorizer.Vectorize("translate this sentence into French"), a);
  TextVectorizer::Fold(vectorizer.Vectorize("please translate the sentence into french"), b);
  TextVectorizer::Fold(vectorizer.Vectorize("integrate x squared from zero to one"), c);
  double sq = 0;
  for (float x : a) sq += double(x) * x;
  EXPECT_NEAR(sq, 1.0, 1e-5);
  EXPECT_GT(Cosine(a, b), 0.5f);
  EXPECT_LT(Cosine(a, c), 0.3f);
  std::vector<float> zero(16);
  TextVectorizer::Fold(SparseVector{}, zero);
  for (float x : zero) EXPECT_EQ(x, 0.0f);
  EXPECT_EQ(Cosine(zero, zero), 0.0f);
}

TEST(TextVectorTest, SparseDenseDotMatchesSparseDot) {
  TextVectorizer vectorizer;
  const auto a = vectorizer.Vectorize("summarise the following article in three bullet points");
  const auto b = vectorizer.Vectorize("give me a short summary of this article");
  std::vector<float> dense(vectorizer.dimension(), 0.0f);
  for (size_t i = 0; i < b.size(); ++i) dense[b.indices[i]] = b.values[i];
  EXPECT_NEAR(Dot(a, dense), Dot(a, b), 1e-5);
}

TEST(TextVectorTest, ConcurrentCallsAgree) {
  TextVectorizer vectorizer;
  const std::string text =
      "int main() { std::vector<int> v{3, 1, 2}; std::sort(v.begin(), v.end()); }";
  const SparseVector expected = vectorizer.Vectorize(text);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      SparseVector v;
      for (int i = 0; i < 200; ++i) {
        vectorizer.Vectorize(i % 2 ? text : std::string("other words ") + std::to_string(i), v);
        if (i % 2 && (v.indices != expected.indices || v.values != expected.values))
          ++mismatches[t];
      }
    });
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(TextVectorTest, LongTextsSortCorrectly) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "token" + std::to_string(i * 7919 % 1000) + " ";
  for (uint32_t dim : {1u << 8, 1u << 16, 1u << 22}) {
    TextVectorOptions options;
    options.dimension = dim;
    TextVectorizer vectorizer(options);
    const auto v = vectorizer.Vectorize(text);
    ASSERT_GT(v.size(), 48u);
    for (size_t i = 1; i < v.indices.size(); ++i) ASSERT_LT(v.indices[i - 1], v.indices[i]);
    EXPECT_NEAR(Norm(v), 1.0, 1e-4);
  }
}

TEST(TextVectorTest, OptionsAreValidated) {
  EXPECT_EQ(ValidateTextVectorOptions({}), "");
  TextVectorOptions o;
  o.dimension = 1000;
  EXPECT_NE(ValidateTextVectorOptions(o), "");
  o = {};
  o.char_ngram_min = 5;
  o.char_ngram_max = 3;
  EXPECT_NE(ValidateTextVectorOptions(o), "");
  o = {};
  o.word_unigrams = o.word_bigrams = o.punctuation = false;
  o.char_ngram_min = 0;
  EXPECT_NE(ValidateTextVectorOptions(o), "");
  o = {};
  o.char_weight = -1;
  EXPECT_NE(ValidateTextVectorOptions(o), "");
  o = {};
  o.max_bytes = 0;
  EXPECT_NE(ValidateTextVectorOptions(o), "");
}

}  // namespace
}  // namespace tokenway::semantic
