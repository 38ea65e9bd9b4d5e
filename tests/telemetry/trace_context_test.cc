#include "telemetry/trace_context.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace tokenway {
namespace {

constexpr char kValid[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

std::string Hex(const uint8_t* p, size_t n) {
  std::string s;
  AppendHex(s, p, n);
  return s;
}

bool Parses(std::string_view h) {
  TraceParent p;
  return ParseTraceParent(h, p);
}

TEST(TraceParentTest, ParsesAValidHeader) {
  TraceParent p;
  ASSERT_TRUE(ParseTraceParent(kValid, p));
  EXPECT_EQ(p.version, 0);
  EXPECT_EQ(Hex(p.trace_id.data(), 16), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(Hex(p.parent_id.data(), 8), "b7ad6b7169203331");
  EXPECT_EQ(p.flags, 1);
  ASSERT_TRUE(ParseTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", p));
  EXPECT_EQ(p.flags, 0);
}

TEST(TraceParentTest, UppercaseHexIsInvalid) {
  EXPECT_FALSE(Parses("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"));
  EXPECT_FALSE(Parses("00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01"));
  EXPECT_FALSE(Parses("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0A"));
  EXPECT_FALSE(Parses("0A-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
}

TEST(TraceParentTest, AllZeroIdsAreInvalid) {
  EXPECT_FALSE(Parses("00-00000000000000000000000000000000-b7ad6b7169203331-01"));
  EXPECT_FALSE(Parses("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"));
}

TEST(TraceParentTest, VersionFfIsInvalid) {
  EXPECT_FALSE(Parses("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
}

TEST(TraceParentTest, WrongLengthsAndSeparatorsAreInvalid) {
  std::string v = kValid;
  EXPECT_FALSE(Parses(""));
  EXPECT_FALSE(Parses(v.substr(0, 54)));
  EXPECT_FALSE(Parses(v + "0"));
  EXPECT_FALSE(Parses(v + "-extra"));  // version 00 has exactly four fields
  EXPECT_FALSE(Parses("00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01"));
  EXPECT_FALSE(Parses("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
  EXPECT_FALSE(Parses("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01"));
  EXPECT_FALSE(Parses(" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
}

TEST(TraceParentTest, LaterVersionsMayCarryMoreFields) {
  TraceParent p;
  ASSERT_TRUE(ParseTraceParent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", p));
  EXPECT_EQ(p.version, 0xcc);
  EXPECT_TRUE(Parses("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-next"));
  // The fields after flags must start with '-'.
  EXPECT_FALSE(Parses("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x"));
}

TEST(TraceParentTest, FormatRoundTrips) {
  TraceParent p;
  ASSERT_TRUE(ParseTraceParent(kValid, p));
  char out[kTraceParentSize];
  FormatTraceParent(p.trace_id, p.parent_id, p.flags, out);
  EXPECT_EQ(std::string_view(out, kTraceParentSize), kValid);
}

TEST(StartTraceTest, ContinuesAValidParent) {
  std::mt19937_64 rng(1);
  TraceContext t;
  StartTrace(
      kValid, 0.0, [&] { return rng(); }, t);
  EXPECT_TRUE(t.active);
  EXPECT_TRUE(t.has_parent);
  EXPECT_TRUE(t.sampled());  // parent-based: the parent sampled it, the ratio does not matter
  EXPECT_EQ(Hex(t.trace_id.data(), 16), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(Hex(t.parent_id.data(), 8), "b7ad6b7169203331");
  EXPECT_NE(Hex(t.span_id.data(), 8), "b7ad6b7169203331");
  EXPECT_NE(Hex(t.span_id.data(), 8), "0000000000000000");
}

TEST(StartTraceTest, UnsampledParentIsNotSampledEvenAtRatioOne) {
  std::mt19937_64 rng(1);
  TraceContext t;
  StartTrace(
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", 1.0, [&] { return rng(); }, t);
  EXPECT_TRUE(t.has_parent);
  EXPECT_FALSE(t.sampled());
}

TEST(StartTraceTest, InvalidHeaderStartsANewTrace) {
  std::mt19937_64 rng(1);
  TraceContext t;
  StartTrace(
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", 1.0, [&] { return rng(); }, t);
  EXPECT_FALSE(t.has_parent);
  EXPECT_TRUE(t.sampled());
  EXPECT_NE(Hex(t.trace_id.data(), 16), "0af7651916cd43dd8448eb211c80319c");
}

TEST(StartTraceTest, RatioZeroNeverAndOneAlwaysSamples) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; ++i) {
    TraceContext t;
    StartTrace(
        {}, 0.0, [&] { return rng(); }, t);
    EXPECT_FALSE(t.sampled());
    StartTrace(
        {}, 1.0, [&] { return rng(); }, t);
    EXPECT_TRUE(t.sampled());
  }
}

TEST(StartTraceTest, RatioSamplesAboutThatShare) {
  std::mt19937_64 rng(3);
  int sampled = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    TraceContext t;
    StartTrace(
        {}, 0.1, [&] { return rng(); }, t);
    sampled += t.sampled();
  }
  EXPECT_GT(sampled, kDraws * 0.08);
  EXPECT_LT(sampled, kDraws * 0.12);
}

TEST(StartTraceTest, IdsAreNeverAllZero) {
  uint64_t calls = 0;
  TraceContext t;
  // A generator that returns zero first: the ids are drawn again.
  StartTrace(
      {}, 1.0, [&] { return calls++ < 3 ? 0 : calls; }, t);
  EXPECT_NE(Hex(t.trace_id.data(), 16), std::string(32, '0'));
  EXPECT_NE(Hex(t.span_id.data(), 8), std::string(16, '0'));
}

}  // namespace
}  // namespace tokenway
