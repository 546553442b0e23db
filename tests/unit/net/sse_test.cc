#include "net/sse.h"

#include <gtest/gtest.h>

namespace mill::net {
namespace {

TEST(Sse, ParsesEventsSplitAnywhere) {
  std::string stream =
      "data: {\"line\":\"a\"}\n\n: keep-alive\n\nevent: end\r\ndata: "
      "{\"status\":\"exited\"}\r\n\r\n"
      "data: one\ndata: two\n\n";
  // Every split point gives the same events.
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p;
    auto events = p.feed(std::string_view(stream).substr(0, cut));
    auto rest = p.feed(std::string_view(stream).substr(cut));
    events.insert(events.end(), rest.begin(), rest.end());
    ASSERT_EQ(events.size(), 3u) << "cut at " << cut;
    EXPECT_EQ(events[0], (SseEvent{"", "{\"line\":\"a\"}"}));
    EXPECT_EQ(events[1], (SseEvent{"end", "{\"status\":\"exited\"}"}));
    EXPECT_EQ(events[2], (SseEvent{"", "one\ntwo"}));
  }
}

TEST(Sse, IncompleteEventIsHeldBack) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: x\n").empty());
  EXPECT_EQ(p.feed("\n").size(), 1u);
}

TEST(Sse, OverlongLineFails) {
  SseParser p(16);
  p.feed("data: 0123456789abcdef0123");
  EXPECT_TRUE(p.failed());
  EXPECT_TRUE(p.feed("\n\n").empty());
}

}  // namespace
}  // namespace mill::net
