#include "bench/sse_client.h"

#include <gtest/gtest.h>

namespace tokenway::bench {
namespace {

const char* kChunk =
    R"({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}],"usage":null})";

std::string Event(const std::string& content, const std::string& eol = "\n") {
  char buf[512];
  snprintf(buf, sizeof buf, kChunk, content.c_str());
  return "data: " + std::string(buf) + eol + eol;
}

std::string Stream(const std::string& eol = "\n") {
  std::string s;
  s += "data: "
       "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
       "\"\"}}]}" +
       eol + eol;
  s += ": keep-alive comment" + eol + eol;
  s += Event(" alpha", eol);
  s += Event(" beta", eol);
  s += Event(" gamma", eol);
  s +=
      "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,"
      "\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":8}}}" +
      eol + eol;
  s += "data: [DONE]" + eol + eol;
  return s;
}

TEST(StreamMeterTest, CarriesToken) {
  EXPECT_TRUE(StreamMeter::CarriesToken(R"({"delta":{"content":"x"}})"));
  EXPECT_TRUE(StreamMeter::CarriesToken(R"({"choices":[{"text": " hi"}]})"));
  EXPECT_FALSE(StreamMeter::CarriesToken(R"({"delta":{"role":"assistant","content":""}})"));
  EXPECT_FALSE(StreamMeter::CarriesToken(R"({"delta":{"content":null}})"));
  EXPECT_FALSE(StreamMeter::CarriesToken(R"({"choices":[],"usage":{}})"));
}

// Every split of the stream into two deliveries gives the same counts; the first token is
// attributed to the delivery that completed its event.
TEST(StreamMeterTest, SplitAtEveryByte) {
  for (const std::string eol : {"\n", "\r\n"}) {
    std::string s = Stream(eol);
    size_t first_token_end = s.find(" alpha");
    first_token_end = s.find(eol + eol, first_token_end) + 2 * eol.size();
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      UsageReader reader;
      std::vector<uint32_t> itl;
      StreamMeter m(&reader, &itl);
      m.buffer()->append(s, 0, cut);
      m.Drain(1000);
      m.buffer()->append(s, cut);
      m.Drain(5000);
      ASSERT_EQ(m.token_chunks(), 3) << "cut " << cut;
      EXPECT_TRUE(m.done()) << cut;
      EXPECT_FALSE(m.malformed()) << cut;
      EXPECT_FALSE(m.error_event()) << cut;
      ASSERT_TRUE(m.has_usage()) << cut;
      EXPECT_EQ(m.usage().completion_tokens, 3);
      EXPECT_EQ(m.usage().cached_tokens, 8);
      EXPECT_EQ(m.first_token_ns(), cut >= first_token_end ? 1000 : 5000) << cut;
      EXPECT_EQ(itl.size(), 2u);
    }
  }
}

TEST(StreamMeterTest, ByteByByteDeliveryMeasuresEveryGap) {
  std::string s = Stream();
  UsageReader reader;
  std::vector<uint32_t> itl;
  StreamMeter m(&reader, &itl);
  int64_t t = 0;
  for (char c : s) {
    m.buffer()->push_back(c);
    t += 1000;  // 1 µs per byte
    m.Drain(t);
  }
  EXPECT_EQ(m.token_chunks(), 3);
  EXPECT_TRUE(m.done());
  ASSERT_EQ(itl.size(), 2u);
  EXPECT_EQ(itl[0], Event(" beta").size());  // one event's bytes apart
  EXPECT_EQ(m.max_gap_ns(), static_cast<int64_t>(Event(" gamma").size()) * 1000);
}

TEST(StreamMeterTest, MalformedAndErrorEvents) {
  UsageReader reader;
  StreamMeter m(&reader, nullptr);
  m.buffer()->append(Event("x") + "data: not json at all\n\n");
  m.Drain(1);
  EXPECT_TRUE(m.malformed());
  EXPECT_FALSE(m.done());
  m.Reset();
  EXPECT_FALSE(m.malformed());
  EXPECT_EQ(m.token_chunks(), 0);
  m.buffer()->append("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n");
  m.Drain(2);
  EXPECT_TRUE(m.error_event());
  m.Reset();
  m.buffer()->append("data: {\"choices\":[],\"usage\":{\"completion_tokens\":}}\n\n");
  m.Drain(3);
  EXPECT_TRUE(m.malformed());  // a usage chunk that does not parse
}

TEST(StreamMeterTest, TruncatedStreamHasNoDone) {
  UsageReader reader;
  StreamMeter m(&reader, nullptr);
  std::string s = Stream();
  m.buffer()->append(s.substr(0, s.size() / 2));
  m.Drain(1);
  EXPECT_FALSE(m.done());
  EXPECT_FALSE(m.malformed());
}

}  // namespace
}  // namespace tokenway::bench
