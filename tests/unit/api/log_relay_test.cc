// The control plane's side of logs over the node protocol: a log request reaches the
// node through its requests poll, the node's chunks reach the client in order, and
// every way a stream can end (the client leaves, the node errs, never answers, stops
// polling, restarts) ends it for both sides. Time is a ManualClock.

#include "api/log_relay.h"

#include <gtest/gtest.h>

#include "support/recording_writer.h"

namespace mill::api {
namespace {

using namespace std::chrono_literals;
using mill::testing::RecordingWriter;

class LogRelayTest : public ::testing::Test {
 protected:
  ManualClock clock;
  LogRelay relay{clock, LogRelayOptions{10s, 10s}};

  // The node's agent asks what is wanted of it; the answer lands in the writer.
  std::shared_ptr<RecordingWriter> poll(const std::string& session = "a1",
                                        std::chrono::milliseconds wait = 30s) {
    auto w = std::make_shared<RecordingWriter>();
    relay.poll({"node-1", session, wait}, w);
    return w;
  }
  // What an answered poll asked for.
  model::NodeRequests asked(RecordingWriter& poll) {
    EXPECT_TRUE(poll.wait_done()) << "the poll was not answered";
    auto r = model::decode_node_requests(poll.body());
    EXPECT_TRUE(r.has_value()) << poll.body();
    return r ? *r : model::NodeRequests{};
  }
  // A client asks for a task's log.
  std::shared_ptr<RecordingWriter> ask(const std::string& alloc, bool follow = false) {
    auto client = std::make_shared<RecordingWriter>();
    model::LogRequest r;
    r.alloc_id = alloc;
    r.follow = follow;
    relay.stream("node-1", r, client);
    return client;
  }
  // The request id the node got for the one log asked.
  std::string taken(RecordingWriter& poll) {
    auto requests = asked(poll);
    EXPECT_EQ(requests.logs.size(), 1u);
    return requests.logs.empty() ? "" : requests.logs[0].id;
  }
  bool send(const std::string& id, std::string data, int status = 0, bool end = false,
            const std::string& node = "node-1") {
    model::LogChunk c{node, id, status, status ? "text/event-stream" : "", false, data, end};
    auto answer = relay.chunk(c);
    EXPECT_TRUE(answer.has_value()) << answer.error().message;
    return answer && answer->more;
  }
};

TEST_F(LogRelayTest, ANodeWhoseAgentIsNotPollingAnswers503AtOnce) {
  auto client = ask("t-1");
  ASSERT_TRUE(client->wait_done());
  EXPECT_EQ(client->status(), 503);
  EXPECT_NE(client->body().find("the log of t-1 is on node-1, whose agent is not connected"),
            std::string::npos)
      << client->body();
}

TEST_F(LogRelayTest, TheLogGoesOutInTheNodesPollAndItsChunksReachTheClientInOrder) {
  auto p = poll();
  EXPECT_FALSE(p->done()) << "nothing was asked yet: the poll waits";
  EXPECT_TRUE(relay.attached("node-1"));
  auto client = ask("t-1", true);
  auto requests = asked(*p);
  ASSERT_EQ(requests.logs.size(), 1u);
  EXPECT_EQ(requests.logs[0].alloc_id, "t-1");
  EXPECT_TRUE(requests.logs[0].follow);
  const std::string id = requests.logs[0].id;

  EXPECT_TRUE(send(id, "data: 1\n\n", 200));
  EXPECT_TRUE(send(id, "data: 2\n\n"));
  ASSERT_TRUE(client->wait_body_has("data: 2"));
  EXPECT_EQ(client->status(), 200);
  EXPECT_EQ(client->content_type(), "text/event-stream");
  EXPECT_FALSE(client->done()) << "a follow stays open until the node ends it";
  EXPECT_FALSE(send(id, "event: end\n\n", 0, true));
  ASSERT_TRUE(client->wait_done());
  EXPECT_EQ(client->body(), "data: 1\n\ndata: 2\n\nevent: end\n\n");
  EXPECT_FALSE(send(id, "late")) << "an ended stream takes no more";
}

TEST_F(LogRelayTest, TheNodesErrorIsTheClientsAnswer) {
  auto p = poll();
  auto client = ask("t-1");
  std::string id = taken(*p);
  model::LogChunk c{"node-1", id, 404, "application/json", true, R"({"error":"no log"})", true};
  auto answer = relay.chunk(c);
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(answer->more);
  ASSERT_TRUE(client->wait_done());
  EXPECT_TRUE(client->responded());
  EXPECT_EQ(client->status(), 404);
  EXPECT_EQ(client->body(), R"({"error":"no log"})");
}

TEST_F(LogRelayTest, WhenTheClientLeavesTheNodeIsToldToStopSending) {
  auto p = poll();
  auto client = ask("t-1", true);
  std::string id = taken(*p);
  EXPECT_TRUE(send(id, "data: 1\n\n", 200));
  auto next = poll();
  EXPECT_FALSE(next->done());
  client->leave();
  auto requests = asked(*next);
  EXPECT_TRUE(requests.logs.empty());
  EXPECT_EQ(requests.cancel, std::vector<std::string>{id});
  EXPECT_FALSE(send(id, "data: 2\n\n")) << "the node is told at once it may stop";
}

TEST_F(LogRelayTest, AnotherNodesChunksAndChunksOutOfOrderAreRefused) {
  auto p = poll();
  auto client = ask("t-1", true);
  std::string id = taken(*p);
  auto other = relay.chunk({"node-2", id, 200, "text/event-stream", false, "forged", false});
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::kNotFound);
  auto no_status = relay.chunk({"node-1", id, 0, "", false, "data: 1\n\n", false});
  ASSERT_FALSE(no_status.has_value());
  EXPECT_EQ(no_status.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(send(id, "data: 1\n\n", 200));
  auto again = relay.chunk({"node-1", id, 500, "text/plain", false, "", false});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(send(id, "data: 2\n\n"));
  ASSERT_TRUE(client->wait_body_has("data: 2"));
  EXPECT_EQ(client->body(), "data: 1\n\ndata: 2\n\n") << "nothing forged or refused got through";
}

TEST_F(LogRelayTest, ANodeThatTakesARequestButNeverAnswersGives504WhenTheClockSaysSo) {
  auto p = poll();
  auto client = ask("t-1");
  taken(*p);
  auto next = poll();  // the agent is there, but says nothing about the log
  ASSERT_TRUE(clock.await_waiter(5s));
  clock.advance(9999ms);
  EXPECT_FALSE(client->wait_done(200ms)) << "answered before the 10 s start timeout";
  clock.advance(1ms);
  ASSERT_TRUE(client->wait_done());
  EXPECT_EQ(client->status(), 504);
  EXPECT_NE(client->body().find("node-1 did not answer for the log within 10s"), std::string::npos)
      << client->body();
}

TEST_F(LogRelayTest, AnAgentThatRestartsEndsTheStreamsTheOldOneTook) {
  auto p = poll("a1");
  auto client = ask("t-1", true);
  std::string id = taken(*p);
  EXPECT_TRUE(send(id, "data: 1\n\n", 200));
  auto fresh = poll("b2");  // a new agent process
  ASSERT_TRUE(client->wait_done()) << "the old agent's stream would never end";
  EXPECT_EQ(client->body(), "data: 1\n\n");
  EXPECT_FALSE(fresh->done()) << "the new agent has nothing to do";
  EXPECT_FALSE(send(id, "data: 2\n\n"));
}

TEST_F(LogRelayTest, ANodeThatStopsPollingIsDetachedAndItsStreamsEnd) {
  auto p = poll("a1", 1s);
  auto client = ask("t-1", true);
  std::string id = taken(*p);  // the poll is answered; the agent never polls again
  EXPECT_TRUE(send(id, "data: 1\n\n", 200));
  ASSERT_TRUE(clock.await_waiter(5s));
  clock.advance(9s);
  EXPECT_FALSE(client->wait_done(200ms)) << "ended within the 10 s grace";
  EXPECT_TRUE(relay.attached("node-1"));
  clock.advance(1s);
  ASSERT_TRUE(client->wait_done());
  EXPECT_FALSE(relay.attached("node-1"));
  auto late = ask("t-2");
  ASSERT_TRUE(late->wait_done());
  EXPECT_EQ(late->status(), 503);
}

TEST_F(LogRelayTest, AParkedPollIsAnsweredWithNothingWhenItsWaitPasses) {
  auto p = poll("a1", 30s);
  ASSERT_TRUE(clock.await_waiter(5s));
  clock.advance(29s);
  EXPECT_FALSE(p->wait_done(200ms));
  clock.advance(1s);
  auto requests = asked(*p);
  EXPECT_TRUE(requests.logs.empty());
  EXPECT_TRUE(requests.cancel.empty());
  EXPECT_TRUE(relay.attached("node-1")) << "a node between two polls is still there";
}

}  // namespace
}  // namespace mill::api
