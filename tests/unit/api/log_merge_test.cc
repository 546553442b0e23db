// A service's log from several nodes as one stream (api/log_merge.h): without follow,
// the parts are merged by time and the tail is of the merged log; with follow, whole
// events pass on as they come; a node that cannot answer is named and the others'
// lines still come; the client leaving reaches every part.

#include "api/log_merge.h"

#include <gtest/gtest.h>

#include "support/recording_writer.h"

namespace mill::api {
namespace {

using mill::testing::RecordingWriter;

std::string event(const std::string& ts, const std::string& line) {
  return R"(data: {"ts":")" + ts + R"(","stream":"stdout","line":")" + line + "\"}\n\n";
}

net::HttpResponse answer(int status, const std::string& body) {
  net::HttpResponse r;
  r.status = status;
  r.body = body;
  return r;
}

TEST(LogMerge, WithoutFollowThePartsAreMergedByTimeAndTailIsOfTheWhole) {
  auto client = std::make_shared<RecordingWriter>();
  auto parts = split_log(client, {"node-1", "node-2"}, /*follow=*/false, /*tail=*/3);
  parts[0]->begin_stream(200, "text/event-stream", {});
  parts[1]->begin_stream(200, "text/event-stream", {});
  parts[0]->write(event("2026-12-07T10:00:01.000Z", "a1") +
                  event("2026-12-07T10:00:03.000Z", "a3"));
  // node-2's part comes in two chunks that split an event.
  std::string two =
      event("2026-12-07T10:00:02.000Z", "b2") + event("2026-12-07T10:00:04.000Z", "b4");
  parts[1]->write(two.substr(0, 30));
  EXPECT_EQ(client->status(), 0) << "nothing reaches the client before every part is in";
  parts[1]->write(two.substr(30));
  parts[0]->close();
  EXPECT_FALSE(client->done());
  parts[1]->close();
  ASSERT_TRUE(client->wait_done());
  EXPECT_EQ(client->status(), 200);
  EXPECT_EQ(client->body(), event("2026-12-07T10:00:02.000Z", "b2") +
                                event("2026-12-07T10:00:03.000Z", "a3") +
                                event("2026-12-07T10:00:04.000Z", "b4"));
}

TEST(LogMerge, ANodeThatCannotAnswerIsNamedAndTheOthersLinesStillCome) {
  auto client = std::make_shared<RecordingWriter>();
  auto parts = split_log(client, {"node-1", "node-2"}, false, std::nullopt);
  parts[1]->respond(answer(503, R"({"error":"node-2's agent is not\nconnected"})"));
  parts[0]->respond(answer(200, event("2026-12-07T10:00:01.000Z", "a1")));
  ASSERT_TRUE(client->wait_done());
  EXPECT_EQ(client->status(), 200);
  EXPECT_EQ(client->body(), ": node-2: node-2's agent is not connected\n\n" +
                                event("2026-12-07T10:00:01.000Z", "a1"));
}

TEST(LogMerge, WhenNoNodeAnswersTheClientHearsTheFirstError) {
  auto client = std::make_shared<RecordingWriter>();
  auto parts = split_log(client, {"node-1", "node-2"}, false, std::nullopt);
  parts[1]->respond(answer(503, R"({"error":"later"})"));
  parts[0]->respond(answer(404, R"({"error":"no log for 'web' on this node"})"));
  ASSERT_TRUE(client->wait_done());
  EXPECT_TRUE(client->responded());
  EXPECT_EQ(client->status(), 404);
  EXPECT_EQ(client->body(), R"({"error":"no log for 'web' on this node"})");
}

TEST(LogMerge, FollowingWholeEventsPassAsTheyComeUntilTheClientLeaves) {
  auto client = std::make_shared<RecordingWriter>();
  auto parts = split_log(client, {"node-1", "node-2"}, /*follow=*/true, std::nullopt);
  int gone = 0;
  for (auto& p : parts) p->on_client_gone([&gone] { ++gone; });
  parts[1]->respond(answer(503, R"({"error":"not connected"})"));
  parts[0]->begin_stream(200, "text/event-stream", {});
  ASSERT_TRUE(client->wait([](const auto& v) { return v.status == 200; }));
  EXPECT_EQ(client->body(), ": node-2: not connected\n\n");
  std::string e = event("2026-12-07T10:00:05.000Z", "live");
  EXPECT_TRUE(parts[0]->write(e.substr(0, 10)));
  EXPECT_EQ(client->body(), ": node-2: not connected\n\n") << "half an event waits";
  EXPECT_TRUE(parts[0]->write(e.substr(10)));
  EXPECT_EQ(client->body(), ": node-2: not connected\n\n" + e);
  EXPECT_FALSE(client->done()) << "a service's log follows until the client leaves";
  client->leave();
  EXPECT_EQ(gone, 1) << "the part still streaming hears it (node-2's part had ended)";
  EXPECT_FALSE(parts[0]->write(e));
}

TEST(LogMerge, FollowingEndsWhenEveryPartHasEnded) {
  auto client = std::make_shared<RecordingWriter>();
  auto parts = split_log(client, {"node-1", "node-2"}, true, std::nullopt);
  parts[0]->begin_stream(200, "text/event-stream", {});
  parts[1]->begin_stream(200, "text/event-stream", {});
  parts[0]->close();
  EXPECT_FALSE(client->done());
  parts[1]->close();
  EXPECT_TRUE(client->wait_done());
}

}  // namespace
}  // namespace mill::api
