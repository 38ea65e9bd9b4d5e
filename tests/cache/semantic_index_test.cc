#include "cache/semantic_index.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "semantic/text_vector.h"

namespace tokenway {
namespace {

std::vector<float> Vec(const std::string& text, uint32_t dim = 256) {
  static const semantic::TextVectorizer vectorizer;
  std::vector<float> out(dim);
  semantic::TextVectorizer::Fold(vectorizer.Vectorize(text), out);
  return out;
}

TEST(SemanticIndexTest, ParaphraseAboveThresholdUnrelatedBelow) {
  SemanticIndex index(256, 4096, 1000);
  ASSERT_EQ(index.Insert(Vec("What is the capital of France?"), 7, CacheKey{1, 1}),
            SemanticIndex::Add::kAdded);
  ASSERT_EQ(index.Insert(Vec("How do I reset my router password?"), 7, CacheKey{2, 2}),
            SemanticIndex::Add::kAdded);
  CacheKey key;
  float similarity = 0;
  ASSERT_EQ(index.Find(Vec("what is the capital of france"), 7, 0.8f, key, similarity),
            SemanticIndex::Result::kFound);
  EXPECT_EQ(key, (CacheKey{1, 1}));
  EXPECT_GE(similarity, 0.8f);
  EXPECT_LE(similarity, 1.0001f);
  // The same question with a threshold above its similarity: no match.
  EXPECT_EQ(index.Find(Vec("what is the capital of france"), 7, std::nextafter(similarity, 2.0f),
                       key, similarity),
            SemanticIndex::Result::kNone);
  EXPECT_EQ(index.Find(Vec("Write a haiku about autumn leaves"), 7, 0.8f, key, similarity),
            SemanticIndex::Result::kNone);
}

TEST(SemanticIndexTest, OtherParametersNeverMatch) {
  SemanticIndex index(256, 4096, 1000);
  index.Insert(Vec("What is the capital of France?"), 7, CacheKey{1, 1});
  CacheKey key;
  float similarity = 0;
  EXPECT_EQ(index.Find(Vec("What is the capital of France?"), 8, 0.5f, key, similarity),
            SemanticIndex::Result::kNone);
}

TEST(SemanticIndexTest, ApproximateSearchAgreesWithExactScan) {
  // exact_below 0: every search goes through the HNSW graph.
  SemanticIndex approximate(256, 0, 5000);
  SemanticIndex exact(256, 1u << 20, 5000);
  for (uint64_t i = 0; i < 2000; ++i) {
    const std::string q = "question number " + std::to_string(i) + " about topic " +
                          std::to_string(i % 37) + " and item " + std::to_string(i * 13);
    approximate.Insert(Vec(q), 1, CacheKey{i, i});
    exact.Insert(Vec(q), 1, CacheKey{i, i});
  }
  EXPECT_EQ(approximate.size(), 2000u);
  int agree = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    const std::string q = "question number " + std::to_string(i * 17) + " about topic " +
                          std::to_string((i * 17) % 37) + " and item " +
                          std::to_string(i * 17 * 13);
    CacheKey a, b;
    float sa = 0, sb = 0;
    const auto ra = approximate.Find(Vec(q), 1, 0.95f, a, sa);
    const auto rb = exact.Find(Vec(q), 1, 0.95f, b, sb);
    ASSERT_EQ(rb, SemanticIndex::Result::kFound);
    if (ra == SemanticIndex::Result::kFound && a == b) ++agree;
  }
  EXPECT_GE(agree, 95) << "HNSW recall on identical prompts";
}

TEST(SemanticIndexTest, FullAndClear) {
  SemanticIndex index(256, 4096, 2);
  EXPECT_EQ(index.Insert(Vec("one"), 1, CacheKey{1, 1}), SemanticIndex::Add::kAdded);
  EXPECT_EQ(index.Insert(Vec("two"), 1, CacheKey{2, 2}), SemanticIndex::Add::kAdded);
  EXPECT_EQ(index.Insert(Vec("three"), 1, CacheKey{3, 3}), SemanticIndex::Add::kFull);
  EXPECT_EQ(index.Insert(std::vector<float>(16), 1, CacheKey{4, 4}), SemanticIndex::Add::kFull)
      << "a vector of the wrong dimension is refused";
  EXPECT_EQ(index.Clear(), 2u);
  EXPECT_EQ(index.size(), 0u);
  CacheKey key;
  float similarity = 0;
  EXPECT_EQ(index.Find(Vec("one"), 1, 0.5f, key, similarity), SemanticIndex::Result::kNone);
}

}  // namespace
}  // namespace tokenway
