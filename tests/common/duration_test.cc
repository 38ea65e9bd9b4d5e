// ParseDuration / FormatDuration: durations as written in configuration.
#include "common/duration.h"

#include <gtest/gtest.h>

namespace tokenway {
namespace {

using namespace std::chrono_literals;

Duration Parse(std::string_view s) {
  auto d = ParseDuration(s);
  EXPECT_TRUE(d.ok()) << s << ": " << d.status().message();
  return d.ok() ? *d : Duration(-1);
}

TEST(DurationTest, Units) {
  EXPECT_EQ(Parse("5ns"), 5ns);
  EXPECT_EQ(Parse("7us"), 7us);
  EXPECT_EQ(Parse("250ms"), 250ms);
  EXPECT_EQ(Parse("10s"), 10s);
  EXPECT_EQ(Parse("5m"), 5min);
  EXPECT_EQ(Parse("1h"), 1h);
  EXPECT_EQ(Parse("1.5s"), 1500ms);
  EXPECT_EQ(Parse("0.25m"), 15s);
  EXPECT_EQ(Parse("30"), 30s);  // bare number: seconds
  EXPECT_EQ(Parse("2s  "), 2s);
  EXPECT_EQ(Parse("0s"), 0s);
}

TEST(DurationTest, Errors) {
  for (std::string_view bad : {"", "   ", "s", "ms", "-1s", "1x", "1 s", "1.2.3s", "abc", "1sec",
                               "1e3s", "99999999999999h"}) {
    auto d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << "'" << bad << "' parsed";
    if (!d.ok()) {
      EXPECT_FALSE(d.status().message().empty());
    }
  }
  EXPECT_NE(ParseDuration("3d").status().message().find("unit"), std::string::npos);
}

TEST(DurationTest, Format) {
  EXPECT_EQ(FormatDuration(10s), "10s");
  EXPECT_EQ(FormatDuration(5min), "300s");
  EXPECT_EQ(FormatDuration(250ms), "250ms");
  EXPECT_EQ(FormatDuration(1500ms), "1500ms");
  EXPECT_EQ(FormatDuration(7us), "7us");
  EXPECT_EQ(FormatDuration(5ns), "5ns");
  EXPECT_EQ(FormatDuration(0ns), "0s");
}

TEST(DurationTest, FormatParsesBack) {
  for (Duration d : {Duration(1s), Duration(250ms), Duration(3us), Duration(17ns), Duration(2h),
                     Duration(1234567891ns)}) {
    EXPECT_EQ(Parse(FormatDuration(d)), d) << FormatDuration(d);
  }
}

}  // namespace
}  // namespace tokenway
