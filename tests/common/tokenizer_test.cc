#include "common/tokenizer.h"

#include <gtest/gtest.h>

#include <set>

namespace tokenway::tokenizer {
namespace {

TEST(TokenizerTest, CountsWordsPunctuationAndWhitespaceByTheDocumentedRule) {
  EXPECT_EQ(CountTokens(""), 0u);
  EXPECT_EQ(CountTokens("Hello"), 1u);
  EXPECT_EQ(CountTokens("Hello world"), 2u);        // "Hello", " world"
  EXPECT_EQ(CountTokens("Hello, world!"), 4u);      // "Hello", ",", " world", "!"
  EXPECT_EQ(CountTokens("a  b"), 3u);               // "a", " ", " b"
  EXPECT_EQ(CountTokens("user: hi\n"), 4u);         // "user", ":", " hi", "\n"
  EXPECT_EQ(CountTokens("abcdefghij"), 2u);         // "abcdefgh", "ij"
  EXPECT_EQ(CountTokens(" abcdefgh"), 2u);          // " abcdefg", "h"
  EXPECT_EQ(CountTokens("\xC3\xA9t\xC3\xA9"), 3u);  // non-ASCII run, "t", non-ASCII run
}

TEST(TokenizerTest, EncodeAgreesWithCountAndIsDeterministic) {
  const std::string text = "The quick brown fox, 12345 jumps!\n\n  over\tthe lazy dog.";
  const auto ids = Encode(text);
  EXPECT_EQ(ids.size(), CountTokens(text));
  EXPECT_EQ(ids, Encode(text));
  EXPECT_EQ(Encode("same words")[1], Encode("other words")[1]);  // " words" twice
  for (uint32_t id : ids) EXPECT_LT(id, 0x80000000u);
}

TEST(TokenizerTest, PseudoWordsAreSingleUniqueTokensThatRoundTrip) {
  const auto& vocabulary = PseudoWordVocabulary::Get();
  ASSERT_GE(vocabulary.size(), 1000u);
  std::set<uint32_t> ids;
  std::string text;
  std::vector<uint32_t> expected;
  for (std::size_t i = 0; i < vocabulary.size(); ++i) {
    EXPECT_EQ(CountTokens(vocabulary.word(i)), 1u) << vocabulary.word(i);
    EXPECT_EQ(TokenId(vocabulary.word(i)), vocabulary.id(i));
    ids.insert(vocabulary.id(i));
    text += vocabulary.word(i);
    expected.push_back(vocabulary.id(i));
  }
  EXPECT_EQ(ids.size(), vocabulary.size());
  EXPECT_EQ(Encode(text), expected);
  EXPECT_EQ(Decode(expected), text);
}

TEST(TokenizerTest, UnknownIdsDecodeToReplacementCharacter) {
  EXPECT_EQ(Decode({TokenId("!")}), "\xEF\xBF\xBD");
}

TEST(TokenizerTest, HandlesLongPromptsLinearly) {
  std::string text;
  for (int i = 0; i < 100000; ++i) text += " word";
  EXPECT_EQ(CountTokens(text), 100000u);
  EXPECT_EQ(Encode(text).size(), 100000u);
}

TEST(TokenizerTest, PromptEstimateIsTheTokenCountOfTheFlattenedPrompt) {
  EXPECT_EQ(EstimatePromptTokens(""), 0);
  EXPECT_EQ(EstimatePromptTokens("user: Hello there\n"), 5);  // "user" ":" " Hello" " there" "\n"
  EXPECT_EQ(EstimatePromptTokens(std::string(1000, 'a')), 125);  // 8-byte tokens
}

}  // namespace
}  // namespace tokenway::tokenizer
