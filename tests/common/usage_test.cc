// UsageReader: token usage from response bodies and stream chunks.
#include "common/usage.h"

#include <gtest/gtest.h>

namespace tokenway {
namespace {

TEST(UsageReaderTest, MayCarryUsage) {
  EXPECT_TRUE(UsageReader::MayCarryUsage(R"({"usage":{"prompt_tokens":1}})"));
  EXPECT_TRUE(UsageReader::MayCarryUsage(R"({"choices":[],"usage" : {}})"));
  EXPECT_FALSE(UsageReader::MayCarryUsage(R"({"usage":null})"));
  EXPECT_FALSE(UsageReader::MayCarryUsage(R"({"choices":[{"delta":{"content":"x"}}]})"));
  EXPECT_FALSE(UsageReader::MayCarryUsage(""));
  EXPECT_FALSE(UsageReader::MayCarryUsage("\"usage\""));
  // A "usage" string in content followed by a real usage object later.
  EXPECT_TRUE(UsageReader::MayCarryUsage(R"({"x":"\"usage\"","usage":{"a":1}})"));
}

TEST(UsageReaderTest, UsageChunkWithEmptyChoices) {
  UsageReader r;
  UsageReading u;
  ASSERT_TRUE(r.Read(R"({"id":"c1","object":"chat.completion.chunk","choices":[],
    "usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})",
                     u));
  EXPECT_TRUE(u.has_usage);
  EXPECT_TRUE(u.choices_empty);
  EXPECT_EQ(u.usage.prompt_tokens, 12);
  EXPECT_EQ(u.usage.completion_tokens, 34);
  EXPECT_EQ(u.usage.cached_tokens, -1);
  EXPECT_TRUE(u.usage.known());
}

TEST(UsageReaderTest, NormalChunk) {
  UsageReader r;
  UsageReading u;
  ASSERT_TRUE(r.Read(R"({"choices":[{"index":0,"delta":{"content":"hi"}}]})", u));
  EXPECT_FALSE(u.has_usage);
  EXPECT_FALSE(u.choices_empty);
  EXPECT_FALSE(u.usage.known());
}

TEST(UsageReaderTest, UsageNull) {
  UsageReader r;
  UsageReading u;
  ASSERT_TRUE(r.Read(R"({"choices":[{"delta":{}}],"usage":null})", u));
  EXPECT_FALSE(u.has_usage);
  EXPECT_EQ(u.usage.prompt_tokens, -1);
}

TEST(UsageReaderTest, CachedTokens) {
  UsageReader r;
  UsageReading u;
  ASSERT_TRUE(r.Read(R"({"usage":{"prompt_tokens":100,"completion_tokens":5,
    "prompt_tokens_details":{"audio_tokens":0,"cached_tokens":64}},"choices":[{"x":1}]})",
                     u));
  EXPECT_TRUE(u.has_usage);
  EXPECT_EQ(u.usage.prompt_tokens, 100);
  EXPECT_EQ(u.usage.completion_tokens, 5);
  EXPECT_EQ(u.usage.cached_tokens, 64);
  EXPECT_FALSE(u.choices_empty);
}

TEST(UsageReaderTest, NonIntegerCountsAreUnknown) {
  UsageReader r;
  UsageReading u;
  ASSERT_TRUE(r.Read(R"({"usage":{"prompt_tokens":"7","completion_tokens":null,
    "prompt_tokens_details":null}})",
                     u));
  EXPECT_TRUE(u.has_usage);
  EXPECT_EQ(u.usage.prompt_tokens, -1);
  EXPECT_EQ(u.usage.completion_tokens, -1);
  EXPECT_FALSE(u.usage.known());
}

TEST(UsageReaderTest, NonJsonIsRejected) {
  UsageReader r;
  UsageReading u;
  EXPECT_FALSE(r.Read("[DONE]", u));
  EXPECT_FALSE(r.Read("", u));
  EXPECT_FALSE(r.Read("not json", u));
  EXPECT_FALSE(r.Read("[1,2]", u));
  EXPECT_FALSE(r.Read(R"({"usage":)", u));
  // The reading is reset even on failure.
  EXPECT_FALSE(u.has_usage);
}

TEST(UsageReaderTest, ReaderIsReusable) {
  UsageReader r;
  UsageReading u;
  ASSERT_TRUE(r.Read(R"({"usage":{"prompt_tokens":1,"completion_tokens":2}})", u));
  ASSERT_TRUE(r.Read(R"({"choices":[]})", u));
  EXPECT_FALSE(u.has_usage);
  EXPECT_TRUE(u.choices_empty);
  EXPECT_EQ(u.usage.prompt_tokens, -1);
}

}  // namespace
}  // namespace tokenway
