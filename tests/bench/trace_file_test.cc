#include "bench/trace_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

namespace tokenway::bench {
namespace {

std::string Write(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream f(path);
  f << text;
  return path;
}

TEST(TraceFileTest, ParsesAzureLinesWithDateTimesOrSeconds) {
  auto r = ParseAzureTraceLine("2023-11-16 18:15:46.6805900,4808,10");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->input_length, 4808);
  EXPECT_EQ(r->output_length, 10);
  auto base = ParseTraceDateTime("2023-11-16 18:15:46");
  ASSERT_TRUE(base.ok());
  EXPECT_NEAR(r->timestamp_ms - *base, 680.59, 1e-3);
  EXPECT_DOUBLE_EQ(*ParseTraceDateTime("1970-01-02 00:00:01"), 86401000.0);
  auto s = ParseAzureTraceLine(" 12.5 , 100 , 0\r");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_DOUBLE_EQ(s->timestamp_ms, 12500);
  EXPECT_EQ(s->output_length, 0);
}

TEST(TraceFileTest, MalformedAzureLinesSayWhatIsWrong) {
  auto fails = [](const char* line, const char* want) {
    auto r = ParseAzureTraceLine(line);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_NE(r.status().message().find(want), std::string::npos)
        << line << " -> " << r.status().message();
  };
  fails("2023-11-16 18:15:46,4808", "3 fields");
  fails("2023-11-16 18:15:46,1,2,3", "3 fields");
  fails("2023-11-16 18:15:46,abc,2", "ContextTokens");
  fails("2023-11-16 18:15:46,5,-2", "GeneratedTokens");
  fails("2023-11-16 18:15:46,0,2", "at least 1");
  fails("yesterday,5,2", "TIMESTAMP");
  fails("2023-13-16 18:15:46,5,2", "not a valid time");
  fails("2023-11-16 18:15:46xyz,5,2", "trailing");
  fails("-4,5,2", "negative");
  fails("", "3 fields");
}

TEST(TraceFileTest, ReaderDetectsTheFormatAndFailsOrSkipsBadLines) {
  const std::string csv = Write("azure.csv",
                                "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                "2023-11-16 18:15:46.0,100,10\n"
                                "\n"
                                "2023-11-16 18:15:47.5,bad,10\n"
                                "2023-11-16 18:15:48.0,300,30\n");
  auto strict = TraceReader::Open(csv, false);
  ASSERT_TRUE(strict.ok());
  EXPECT_EQ(strict->format(), TraceFormat::kAzure);
  TraceRecord rec;
  ASSERT_TRUE(strict->Next(rec));
  EXPECT_EQ(rec.input_length, 100);
  EXPECT_FALSE(strict->Next(rec));
  ASSERT_FALSE(strict->status().ok());
  EXPECT_NE(strict->status().message().find("azure.csv:4: ContextTokens"), std::string::npos)
      << strict->status().message();

  auto lenient = TraceReader::Open(csv, true);
  ASSERT_TRUE(lenient.ok());
  int n = 0;
  while (lenient->Next(rec)) ++n;
  EXPECT_TRUE(lenient->status().ok());
  EXPECT_EQ(n, 2);
  EXPECT_EQ(lenient->records(), 2);
  EXPECT_EQ(lenient->malformed(), 1);
  ASSERT_EQ(lenient->errors().size(), 1u);
  EXPECT_EQ(rec.input_length, 300);

  // A header names the format whatever the file is called; JSONL otherwise.
  const std::string named =
      Write("azure.txt", "\ntimestamp,ContextTokens,GeneratedTokens\n1,5,6\n");
  auto a = TraceReader::Open(named, false);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->format(), TraceFormat::kAzure);
  ASSERT_TRUE(a->Next(rec));
  EXPECT_EQ(rec.output_length, 6);
  const std::string jsonl = Write(
      "m.jsonl", "{\"timestamp\":0,\"input_length\":9,\"output_length\":2,\"hash_ids\":[1]}\n");
  auto m = TraceReader::Open(jsonl, false);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->format(), TraceFormat::kMooncake);
  ASSERT_TRUE(m->Next(rec));
  EXPECT_EQ(rec.hash_ids, std::vector<int64_t>{1});
  EXPECT_FALSE(TraceReader::Open(::testing::TempDir() + "/missing.jsonl", false).ok());
}

TEST(TraceFileTest, KeepsOnlyTheFirstFewSkippedReasons) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += "garbage\n";
  text += "{\"input_length\":9,\"output_length\":2}\n";
  auto r = TraceReader::Open(Write("many.jsonl", text), true);
  ASSERT_TRUE(r.ok());
  TraceRecord rec;
  ASSERT_TRUE(r->Next(rec));
  EXPECT_EQ(r->malformed(), 20);
  EXPECT_EQ(r->errors().size(), TraceReader::kKeptErrors);
  EXPECT_NE(r->errors()[0].find("many.jsonl:1: not a JSON object"), std::string::npos);
}

TEST(TraceFileTest, SyntheticTracesParseBackWithTheirShape) {
  for (TraceFormat format : {TraceFormat::kMooncake, TraceFormat::kAzure}) {
    SyntheticTraceOptions o;
    o.format = format;
    o.requests = 500;
    o.rate = 20;
    o.groups = 4;
    o.shared_blocks = 2;
    const std::string path =
        ::testing::TempDir() + "/synthetic." + (format == TraceFormat::kAzure ? "csv" : "jsonl");
    ASSERT_TRUE(WriteSyntheticTrace(o, path).ok());
    auto r = TraceReader::Open(path, false);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->format(), format);
    TraceRecord rec;
    double first = -1, last = 0;
    std::map<int64_t, int> first_ids;
    while (r->Next(rec)) {
      if (first < 0) first = rec.timestamp_ms;
      EXPECT_GE(rec.timestamp_ms, last);
      last = rec.timestamp_ms;
      EXPECT_GE(rec.input_length, 1);
      EXPECT_GE(rec.output_length, 1);
      if (format == TraceFormat::kMooncake) {
        ASSERT_FALSE(rec.hash_ids.empty());
        EXPECT_EQ(static_cast<int64_t>(rec.hash_ids.size()),
                  (rec.input_length + o.block_size - 1) / o.block_size);
        ++first_ids[rec.hash_ids[0]];
      }
    }
    ASSERT_TRUE(r->status().ok()) << r->status().message();
    EXPECT_EQ(r->records(), 500);
    EXPECT_NEAR((last - first) / 1000.0, 500 / 20.0, 5.0);  // Poisson at the rate
    if (format == TraceFormat::kMooncake) {
      EXPECT_LE(first_ids.size(), 4u);  // every request starts with its group's block
      EXPECT_GT(first_ids.begin()->second, 100);
    }
  }
  SyntheticTraceOptions bad;
  bad.rate = 0;
  EXPECT_FALSE(WriteSyntheticTrace(bad, ::testing::TempDir() + "/x").ok());
}

}  // namespace
}  // namespace tokenway::bench
