#include "common/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

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

// Every counting kernel this machine can run, and CountTokens itself, must give exactly the
// reference count (the pieces walked one by one, as Encode walks them).
// The text for a failure message (gtest evaluates it only when the assertion fails).
std::string Shown(std::string_view text) {
  return text.size() <= 300 ? testing::PrintToString(std::string(text))
                            : std::to_string(text.size()) + " bytes";
}

void ExpectAllCountsEqualReference(std::string_view text) {
  const std::size_t expected = CountTokensByPieces(text);
  ASSERT_EQ(CountTokens(text), expected) << Shown(text);
  for (CountKernel kernel : {CountKernel::kPortable, CountKernel::kSse2, CountKernel::kAvx2}) {
    if (!CountKernelAvailable(kernel)) continue;
    ASSERT_EQ(CountTokensWith(kernel, text), expected)
        << "kernel " << static_cast<int>(kernel) << ": " << Shown(text);
  }
}

// Bytes of every class, in runs, so the random texts have long pieces and class changes.
std::string RandomText(std::mt19937_64& rng, std::size_t size) {
  static const std::string pool =
      std::string("aZ09 \t\n\r\v\f.,!") + std::string(1, '\0') + "\x7f\x80\xc3\xa9\xff";
  std::string text;
  while (text.size() < size) {
    const uint64_t r = rng();
    const std::size_t run = (r >> 8) % 4 == 0 ? 1 + (r >> 16) % 20 : 1;
    const char c = (r >> 32) % 4 == 0 ? static_cast<char>(r & 0xff) : pool[r % pool.size()];
    text.append(std::min(run, size - text.size()), c);
  }
  return text;
}

// English-like text: words of 1..14 letters, punctuation, digits, newlines, some UTF-8.
std::string EnglishLikeText(std::size_t size) {
  static const char* const kWords[] = {"the",
                                       "of",
                                       "and",
                                       "to",
                                       "in",
                                       "is",
                                       "that",
                                       "for",
                                       "it",
                                       "as",
                                       "with",
                                       "was",
                                       "on",
                                       "be",
                                       "model",
                                       "request",
                                       "gateway",
                                       "tokens",
                                       "throughput",
                                       "latency",
                                       "configuration",
                                       "a",
                                       "characters",
                                       "function",
                                       "Response",
                                       "independent",
                                       "café",
                                       "naïve",
                                       "2026",
                                       "x86",
                                       "I",
                                       "internationalization"};
  std::mt19937_64 rng(7);
  std::string text;
  while (text.size() < size) {
    const uint64_t r = rng();
    text += kWords[r % std::size(kWords)];
    switch ((r >> 16) % 16) {
      case 0:
        text += ", ";
        break;
      case 1:
        text += ".\n\n";
        break;
      case 2:
        text += ": ";
        break;
      case 3:
        text += "  ";
        break;
      case 4:
        text += "\t";
        break;
      default:
        text += ' ';
        break;
    }
  }
  text.resize(size);
  return text;
}

TEST(TokenizerCountTest, KernelsMatchTheReferenceOnTheDocumentedExamples) {
  EXPECT_TRUE(CountKernelAvailable(CountKernel::kPortable));
  for (std::string_view text : {"", "Hello", "Hello world", "Hello, world!", "a  b", "user: hi\n",
                                "abcdefghij", " abcdefgh", "\xC3\xA9t\xC3\xA9", " ", "  ", " a",
                                "\t a", "\n a", "x  y", " \t", "a\xC3 b"}) {
    ExpectAllCountsEqualReference(text);
  }
  EXPECT_EQ(CountTokensWith(CountKernel::kPortable, "Hello, world!"), 4u);
  EXPECT_EQ(CountTokensWith(CountKernel::kSse2, "Hello, world!"), 4u);
  EXPECT_EQ(CountTokensWith(CountKernel::kAvx2, "Hello, world!"), 4u);  // falls back if absent
}

// Every string up to 9 bytes over an alphabet with one byte of each kind of piece.
TEST(TokenizerCountTest, KernelsMatchTheReferenceOnEveryShortString) {
  static constexpr char kAlphabet[] = {'a', ' ', '\n', '.', '\xc3'};
  constexpr std::size_t kAlphabetSize = sizeof(kAlphabet);
  std::string text;
  for (std::size_t length = 0; length <= 9; ++length) {
    std::vector<std::size_t> digits(length, 0);
    text.assign(length, kAlphabet[0]);
    for (;;) {
      ExpectAllCountsEqualReference(text);
      std::size_t i = 0;
      while (i < length && ++digits[i] == kAlphabetSize) {
        digits[i] = 0;
        text[i] = kAlphabet[0];
        ++i;
      }
      if (i == length) break;
      text[i] = kAlphabet[digits[i]];
    }
  }
}

// Every string up to 6 bytes placed across a 64-byte block boundary, after prefixes that leave
// different state behind (inside a word, a joining space, a whitespace run, a non-ASCII run).
TEST(TokenizerCountTest, KernelsMatchTheReferenceAcrossBlockBoundaries) {
  static constexpr char kAlphabet[] = {'a', ' ', '\n', '.', '\xc3'};
  constexpr std::size_t kAlphabetSize = sizeof(kAlphabet);
  for (char filler : {'a', ' ', '\n', '.', '\xc3'}) {
    for (std::size_t prefix = 57; prefix <= 64; ++prefix) {
      for (std::size_t length = 1; length <= 6; ++length) {
        std::size_t combos = 1;
        for (std::size_t i = 0; i < length; ++i) combos *= kAlphabetSize;
        for (std::size_t code = 0; code < combos; ++code) {
          std::string text(prefix, filler);
          for (std::size_t i = 0, c = code; i < length; ++i, c /= kAlphabetSize) {
            text += kAlphabet[c % kAlphabetSize];
          }
          ExpectAllCountsEqualReference(text);
          text += "bb";
          ExpectAllCountsEqualReference(text);
        }
      }
    }
  }
}

// Long pieces of every kind, starting at every offset of a block and crossing one or more
// boundaries: their 8-byte slices continue from block to block.
TEST(TokenizerCountTest, KernelsMatchTheReferenceOnLongRunsAtEveryOffset) {
  for (std::string_view lead : {"", " ", ".", "a", "\t"}) {
    for (char c : {'x', '7', ' ', '\n', '\x80', '\xc3', '.'}) {
      for (std::size_t offset = 0; offset <= 70; ++offset) {
        for (std::size_t length = 1; length <= 200; length += (length < 80 ? 1 : 7)) {
          std::string text(offset, '.');
          text += lead;
          text.append(length, c);
          ExpectAllCountsEqualReference(text);
          text += " y";
          ExpectAllCountsEqualReference(text);
        }
      }
    }
  }
}

TEST(TokenizerCountTest, KernelsMatchTheReferenceOnRandomBytes) {
  std::mt19937_64 rng(20261207);
  for (int i = 0; i < 20000; ++i) {
    ExpectAllCountsEqualReference(RandomText(rng, rng() % 300));
  }
  for (int i = 0; i < 20; ++i) ExpectAllCountsEqualReference(RandomText(rng, 100000));
  std::string all_bytes;
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < 256; ++c) all_bytes += static_cast<char>(c);
  }
  ExpectAllCountsEqualReference(all_bytes);
}

TEST(TokenizerCountTest, KernelsMatchTheReferenceOnALongEnglishLikePrompt) {
  const std::string text = EnglishLikeText(432 * 1024);
  ExpectAllCountsEqualReference(text);
  EXPECT_EQ(Encode(text).size(), CountTokens(text));
  EXPECT_EQ(EstimatePromptTokens(text), static_cast<int64_t>(CountTokensByPieces(text)));
}

}  // namespace
}  // namespace tokenway::tokenizer
