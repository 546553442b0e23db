// The shim's log writer and the agent's log reader, against each other.

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>

#include "common/files.h"
#include "runtime/log_reader.h"
#include "runtime/shim/log_writer.h"
#include "runtime/shim_protocol.h"
#include "support/temp_dir.h"

namespace mill::runtime {
namespace {

using shim::LogWriter;
using shim::Stream;

std::vector<std::string> texts(const std::vector<LogLine>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) out.push_back(l.line);
  return out;
}

void feed(LogWriter& w, Stream s, std::string_view text) { w.feed(s, text.data(), text.size()); }

TEST(LogWriter, WritesOneJsonRecordPerLineWithStreamAndTimestamp) {
  testing::TempDir dir;
  LogWriter w(dir.path(), 1 << 20, 3);
  ASSERT_TRUE(w.open());
  feed(w, Stream::kStdout, "hello\nwor");
  feed(w, Stream::kStderr, "oops \"quoted\" \\ \t\x01\n");
  feed(w, Stream::kStdout, "ld\npartial");
  auto before_finish = read_logs(dir.path());
  ASSERT_TRUE(before_finish);
  EXPECT_EQ(texts(*before_finish),
            (std::vector<std::string>{"hello", "oops \"quoted\" \\ \t\x01", "world"}));
  w.finish(Stream::kStdout);
  auto lines = *read_logs(dir.path());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1].stream, "stderr");
  EXPECT_EQ(lines[0].stream, "stdout");
  EXPECT_EQ(lines[3].line, "partial");
  // "2026-11-28T00:28:21.123Z"
  EXPECT_EQ(lines[0].ts.size(), 24u);
  EXPECT_EQ(lines[0].ts[10], 'T');
  EXPECT_EQ(lines[0].ts.back(), 'Z');
  // Every record is a JSON object on its own line.
  auto text = *read_file(dir.file(std::string(shim::kLogFile)));
  size_t start = 0, n = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1, ++n) {
    EXPECT_TRUE(boost::json::parse(text.substr(start, nl - start)).is_object());
  }
  EXPECT_EQ(n, 4u);
}

TEST(LogWriter, InvalidUtf8IsReplacedAndValidKept) {
  testing::TempDir dir;
  LogWriter w(dir.path(), 1 << 20, 3);
  ASSERT_TRUE(w.open());
  feed(w, Stream::kStdout, "caf\xc3\xa9 \xff\xfe \xe2\x82 \xf0\x9f\x98\x80\n");
  auto lines = *read_logs(dir.path());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].line,
            "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80");
}

TEST(LogWriter, SplitsLongLines) {
  testing::TempDir dir;
  LogWriter w(dir.path(), 1 << 20, 3);
  ASSERT_TRUE(w.open());
  std::string big(shim::kMaxLine * 2 + 10, 'x');
  feed(w, Stream::kStdout, big + "\n");
  auto lines = *read_logs(dir.path());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].line.size(), shim::kMaxLine);
  EXPECT_EQ(lines[2].line.size(), 10u);
}

TEST(LogWriter, RotatesBySizeKeepingNFiles) {
  testing::TempDir dir;
  LogWriter w(dir.path(), 400, 2);
  ASSERT_TRUE(w.open());
  for (int i = 0; i < 40; ++i) feed(w, Stream::kStdout, "line " + std::to_string(i) + "\n");
  namespace fs = std::filesystem;
  std::string base = dir.file(std::string(shim::kLogFile));
  EXPECT_TRUE(fs::exists(base + ".1"));
  EXPECT_TRUE(fs::exists(base + ".2"));
  EXPECT_FALSE(fs::exists(base + ".3"));
  for (auto p : {base, base + ".1", base + ".2"}) EXPECT_LE(fs::file_size(p), 400u);
  // What is kept is the newest lines, contiguous, oldest first.
  auto lines = *read_logs(dir.path());
  ASSERT_GT(lines.size(), 6u);
  EXPECT_EQ(lines.back().line, "line 39");
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(std::stoi(lines[i].line.substr(5)), std::stoi(lines[i - 1].line.substr(5)) + 1);
  }
  auto tail = *tail_logs(dir.path(), 5);
  EXPECT_EQ(texts(tail),
            (std::vector<std::string>{"line 35", "line 36", "line 37", "line 38", "line 39"}));
  EXPECT_EQ(tail_logs(dir.path(), 1000)->size(), lines.size());
}

TEST(LogCursor, FollowsAcrossRotationWithoutLossOrDuplicates) {
  testing::TempDir dir;
  LogWriter w(dir.path(), 300, 3);
  ASSERT_TRUE(w.open());
  feed(w, Stream::kStdout, "before\n");
  auto cursor = *LogCursor::at_end(dir.path());
  auto from_start = LogCursor::at_start(dir.path());
  std::vector<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    feed(w, Stream::kStdout, "n" + std::to_string(i) + "\n");
    // Read now and then: several rotations may happen between reads (fewer than the
    // kept files, so nothing is lost).
    if (i % 4 == 3) {
      for (auto& s : texts(*cursor.next())) seen.push_back(s);
    }
  }
  feed(w, Stream::kStdout, "half");
  for (auto& s : texts(*cursor.next())) seen.push_back(s);
  std::vector<std::string> want;
  for (int i = 0; i < 30; ++i) want.push_back("n" + std::to_string(i));
  EXPECT_EQ(seen, want);
  EXPECT_TRUE(cursor.next()->empty());
  w.finish(Stream::kStdout);
  EXPECT_EQ(texts(*cursor.next()), std::vector<std::string>{"half"});

  // A cursor left behind while its file rotated out of the kept set picks up at the
  // oldest kept line.
  auto rest = texts(*from_start.next());
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back(), "half");
  EXPECT_NE(rest.front(), "before");
}

TEST(LogReader, EmptyOrMissingDirAndMalformedLines) {
  testing::TempDir dir;
  EXPECT_TRUE(read_logs(dir.file("nope"))->empty());
  EXPECT_TRUE(tail_logs(dir.path(), 3)->empty());
  EXPECT_TRUE(LogCursor::at_end(dir.path())->next()->empty());
  std::ofstream(dir.file(std::string(shim::kLogFile)))
      << "garbage\n{\"ts\":\"t\",\"stream\":\"stdout\",\"line\":\"ok\"}\n{\"ts\":1}\n";
  EXPECT_EQ(texts(*read_logs(dir.path())), std::vector<std::string>{"ok"});
}

}  // namespace
}  // namespace mill::runtime
