#include "model/units.h"

#include <gtest/gtest.h>

#include <chrono>

namespace mill::model {
namespace {

using std::chrono::milliseconds;

TEST(ParseSize, PlainBytesAndUnits) {
  EXPECT_EQ(*parse_size("0"), 0);
  EXPECT_EQ(*parse_size("1024"), 1024);
  EXPECT_EQ(*parse_size("100B"), 100);
  EXPECT_EQ(*parse_size("1K"), 1024);
  EXPECT_EQ(*parse_size("512M"), 536870912);
  EXPECT_EQ(*parse_size("2G"), 2147483648);
  EXPECT_EQ(*parse_size("10G"), 10737418240);
  EXPECT_EQ(*parse_size("1T"), 1099511627776);
}

TEST(ParseSize, SuffixVariants) {
  EXPECT_EQ(*parse_size("512Mi"), 536870912);
  EXPECT_EQ(*parse_size("512MiB"), 536870912);
  EXPECT_EQ(*parse_size("512MB"), 536870912);
  EXPECT_EQ(*parse_size("512m"), 536870912);
  EXPECT_EQ(*parse_size("1KiB"), 1024);
}

TEST(ParseSize, RejectsBadSyntax) {
  for (const char* bad : {"", "M", "-1", "+1", "1.5G", "1 G", " 1G", "1G ", "1X", "1GG", "1iB",
                          "1Bi", "0x10", "1MiBB", "G1"}) {
    auto result = parse_size(bad);
    EXPECT_FALSE(result) << "accepted \"" << bad << "\"";
    if (!result) {
      EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(result.error().message.find("invalid size"), std::string::npos);
    }
  }
}

TEST(ParseSize, RejectsOverflow) {
  EXPECT_FALSE(parse_size("99999999999T"));
  EXPECT_FALSE(parse_size("8388608T"));  // 2^63 bytes
  EXPECT_EQ(*parse_size("8388607T"), std::int64_t{8388607} << 40);
  EXPECT_EQ(*parse_size("9223372036854775807"), INT64_MAX);
  EXPECT_FALSE(parse_size("9223372036854775808"));
  EXPECT_FALSE(parse_size("99999999999999999999999"));
}

TEST(ParseDuration, SingleUnits) {
  EXPECT_EQ(*parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(*parse_duration("2s"), milliseconds(2000));
  EXPECT_EQ(*parse_duration("1m"), milliseconds(60000));
  EXPECT_EQ(*parse_duration("1h"), milliseconds(3600000));
  EXPECT_EQ(*parse_duration("0s"), milliseconds(0));
}

TEST(ParseDuration, Combinations) {
  EXPECT_EQ(*parse_duration("1h30m"), milliseconds(5400000));
  EXPECT_EQ(*parse_duration("1m30s500ms"), milliseconds(90500));
  EXPECT_EQ(*parse_duration("90s"), milliseconds(90000));
}

TEST(ParseDuration, RejectsBadSyntax) {
  for (const char* bad :
       {"", "5", "s", "1.5s", "-1s", "1 s", "1d", "1sec", "1h30", "ms", "1S", "2s ", "1µs"}) {
    auto result = parse_duration(bad);
    EXPECT_FALSE(result) << "accepted \"" << bad << "\"";
    if (!result) {
      EXPECT_NE(result.error().message.find("invalid duration"), std::string::npos);
    }
  }
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_FALSE(parse_duration("9999999999999999h"));
  EXPECT_FALSE(parse_duration("9223372036854775807ms1ms"));
  EXPECT_EQ(*parse_duration("9223372036854775807ms"), milliseconds(INT64_MAX));
  EXPECT_FALSE(parse_duration("99999999999999999999ms"));
}

TEST(FormatUnits, RoundTrips) {
  EXPECT_EQ(format_size(536870912), "512M");
  EXPECT_EQ(format_size(4 << 20), "4M");
  EXPECT_EQ(format_size(1000), "1000");
  EXPECT_EQ(format_size(0), "0");
  EXPECT_EQ(format_size(std::int64_t{3} << 40), "3T");
  EXPECT_EQ(format_duration(milliseconds(5400000)), "1h30m");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(milliseconds(90500)), "1m30s500ms");
  for (const char* text : {"1h30m", "2s", "250ms", "1h1m1s1ms"}) {
    EXPECT_EQ(format_duration(*parse_duration(text)), text);
  }
}

}  // namespace
}  // namespace mill::model
