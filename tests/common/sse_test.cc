// SseEventSplitter and SseEventData: event framing of upstream streams.
#include "common/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tokenway {
namespace {

// Feeds `input` in pieces of `step` bytes, collecting events as they complete; compacts after
// each batch like the relay does.
std::vector<std::string> Split(std::string_view input, size_t step, std::string* rest = nullptr) {
  SseEventSplitter s;
  std::vector<std::string> events;
  for (size_t i = 0; i < input.size(); i += step) {
    s.Append(input.substr(i, step));
    std::string_view ev;
    while (s.Next(ev)) events.emplace_back(ev);
    s.Compact();
  }
  if (rest) *rest = std::string(s.pending());
  return events;
}

TEST(SseSplitterTest, LfEvents) {
  std::string in = "data: one\n\ndata: two\n\n";
  auto ev = Split(in, in.size());
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0], "data: one\n\n");
  EXPECT_EQ(ev[1], "data: two\n\n");
}

TEST(SseSplitterTest, CrLfEvents) {
  std::string in = "data: one\r\n\r\ndata: two\r\n\r\n";
  auto ev = Split(in, in.size());
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0], "data: one\r\n\r\n");
  EXPECT_EQ(ev[1], "data: two\r\n\r\n");
}

TEST(SseSplitterTest, MixedLineEndsAndCr) {
  std::string in = "data: a\r\n\ndata: b\n\r\ndata: c\r\rdata: d\n\n";
  auto ev = Split(in, in.size());
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0], "data: a\r\n\n");
  EXPECT_EQ(ev[1], "data: b\n\r\n");
  EXPECT_EQ(ev[2], "data: c\r\r");
  EXPECT_EQ(ev[3], "data: d\n\n");
}

TEST(SseSplitterTest, EveryStepSizeGivesTheSameEvents) {
  std::string in =
      ": keep-alive comment\n\n"
      "event: message\r\ndata: {\"a\":1}\r\nid: 7\r\n\r\n"
      "data: line1\ndata: line2\n\n"
      "data: cr\r\r"
      "data: [DONE]\n\n"
      "data: partial";
  std::string whole_rest;
  auto whole = Split(in, in.size(), &whole_rest);
  ASSERT_EQ(whole.size(), 5u);
  EXPECT_EQ(whole_rest, "data: partial");
  for (size_t step = 1; step <= in.size(); ++step) {
    std::string rest;
    auto ev = Split(in, step, &rest);
    EXPECT_EQ(ev, whole) << "step " << step;
    EXPECT_EQ(rest, whole_rest) << "step " << step;
    std::string joined;
    for (const auto& e : ev) joined += e;
    EXPECT_EQ(joined + rest, in) << "step " << step;
  }
}

TEST(SseSplitterTest, CrLfSplitBetweenCrAndLf) {
  SseEventSplitter s;
  std::string_view ev;
  s.Append("data: x\r\n\r");
  EXPECT_FALSE(s.Next(ev));  // the final \n may still come
  s.Append("\n");
  ASSERT_TRUE(s.Next(ev));
  EXPECT_EQ(ev, "data: x\r\n\r\n");
  EXPECT_EQ(s.buffered(), 0u);
}

TEST(SseSplitterTest, IncompleteEventStaysPending) {
  SseEventSplitter s;
  std::string_view ev;
  s.Append("data: {\"x\":1}\n");
  EXPECT_FALSE(s.Next(ev));
  EXPECT_EQ(s.pending(), "data: {\"x\":1}\n");
  EXPECT_EQ(s.buffered(), s.pending().size());
  s.Append("\ndata: y");
  ASSERT_TRUE(s.Next(ev));
  EXPECT_EQ(ev, "data: {\"x\":1}\n\n");
  EXPECT_FALSE(s.Next(ev));
  EXPECT_EQ(s.pending(), "data: y");
}

TEST(SseSplitterTest, CompactKeepsPendingAndScanPosition) {
  SseEventSplitter s;
  std::string_view ev;
  s.Append("data: 1\n\ndata: 2");
  ASSERT_TRUE(s.Next(ev));
  EXPECT_FALSE(s.Next(ev));
  s.Compact();
  EXPECT_EQ(s.pending(), "data: 2");
  EXPECT_EQ(*s.mutable_buffer(), "data: 2");
  s.Append("\n");
  EXPECT_FALSE(s.Next(ev));
  s.Compact();  // nothing handed out: a no-op
  s.mutable_buffer()->append("\ndata: 3\n\n");
  ASSERT_TRUE(s.Next(ev));
  EXPECT_EQ(ev, "data: 2\n\n");
  ASSERT_TRUE(s.Next(ev));
  EXPECT_EQ(ev, "data: 3\n\n");
  s.Compact();
  EXPECT_EQ(s.buffered(), 0u);
  EXPECT_TRUE(s.mutable_buffer()->empty());
}

TEST(SseSplitterTest, ClearDropsEverything) {
  SseEventSplitter s;
  std::string_view ev;
  s.Append("data: 1\n\ndata: 2");
  ASSERT_TRUE(s.Next(ev));
  s.Clear();
  EXPECT_EQ(s.buffered(), 0u);
  s.Append("data: 3\n\n");
  ASSERT_TRUE(s.Next(ev));
  EXPECT_EQ(ev, "data: 3\n\n");
}

TEST(SseEventDataTest, SingleLine) {
  std::string scratch;
  EXPECT_EQ(SseEventData("data: {\"a\":1}\n\n", scratch), "{\"a\":1}");
  EXPECT_EQ(SseEventData("data:nospace\r\n\r\n", scratch), "nospace");
  EXPECT_EQ(SseEventData("data:  two spaces\n\n", scratch), " two spaces");
  EXPECT_EQ(SseEventData("data: [DONE]\n\n", scratch), "[DONE]");
}

TEST(SseEventDataTest, MultiLineJoinedWithNewline) {
  std::string scratch;
  EXPECT_EQ(SseEventData("data: a\ndata: b\r\ndata:c\n\n", scratch), "a\nb\nc");
  EXPECT_EQ(SseEventData("event: x\ndata: 1\nid: 2\ndata: 2\n\n", scratch), "1\n2");
}

TEST(SseEventDataTest, CommentsAndOtherFieldsHaveNoData) {
  std::string scratch;
  EXPECT_EQ(SseEventData(": ping\n\n", scratch), "");
  EXPECT_EQ(SseEventData("event: done\nid: 3\n\n", scratch), "");
  EXPECT_EQ(SseEventData(": data: not data\n\n", scratch), "");
  EXPECT_EQ(SseEventData("", scratch), "");
}

TEST(SseEventDataTest, EmptyDataLine) {
  std::string scratch;
  EXPECT_EQ(SseEventData("data:\n\n", scratch), "");
  EXPECT_EQ(SseEventData("data:\ndata: x\n\n", scratch), "\nx");
}

}  // namespace
}  // namespace tokenway
