// The agent's side of logs over the node protocol: what the log service writes for a
// requested log reaches the control plane as chunks, in order and in bounded pieces,
// and the control plane's "stop" (a cancel, or an answer wanting no more) reaches the
// log service as its client leaving. The control plane here is a fake NodeClient.

#include "agent/log_uplink.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "support/eventually.h"

namespace mill::agent {
namespace {

using namespace std::chrono_literals;

class FakeControlPlane final : public NodeClient {
 public:
  Result<model::RegisterResponse> register_node(const model::RegisterRequest&) override {
    return unused();
  }
  Result<void> heartbeat(const std::string&, const model::Resources&) override { return unused(); }
  Result<model::DesiredAllocations> allocations(const std::string&, int64_t,
                                                std::chrono::milliseconds) override {
    return unused();
  }
  Result<void> report(const std::string&, const std::vector<model::AllocState>&) override {
    return unused();
  }
  Result<void> report_pulls(const std::string&, const std::string&,
                            const std::vector<model::PullReport>&) override {
    return unused();
  }
  Result<void> report_volumes(const std::string&,
                              const std::vector<model::VolumeReport>&) override {
    return unused();
  }
  Result<model::NodeRequests> requests(const model::RequestsQuery& q) override {
    std::unique_lock lock(mu);
    queries.push_back(q);
    cv.wait_for(lock, q.wait, [&] { return !to_give.empty(); });
    if (to_give.empty()) return model::NodeRequests{};
    auto r = std::move(to_give.front());
    to_give.pop_front();
    return r;
  }
  Result<model::LogChunkAnswer> send_log(const model::LogChunk& c) override {
    std::lock_guard lock(mu);
    got.push_back(c);
    cv.notify_all();
    return model::LogChunkAnswer{more};
  }

  void give(model::NodeRequests r) {
    std::lock_guard lock(mu);
    to_give.push_back(std::move(r));
    cv.notify_all();
  }
  // Waits (bounded) until `n` chunks came; returns them.
  std::vector<model::LogChunk> chunks(size_t n) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 5s, [&] { return got.size() >= n; });
    return got;
  }
  // Waits (bounded) until the last chunk of a stream came; returns all.
  std::vector<model::LogChunk> chunks_to_end() {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 5s, [&] { return !got.empty() && got.back().end; });
    return got;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::deque<model::NodeRequests> to_give;
  std::vector<model::RequestsQuery> queries;
  std::vector<model::LogChunk> got;
  bool more = true;

 private:
  static Unexpected unused() { return make_error(ErrorCode::kInternal, "not in this test"); }
};

// The log service's part: keeps what it is asked to serve.
struct Served {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<model::LogRequest, std::shared_ptr<net::ResponseWriter>>> logs;

  LogUplink::Serve serve() {
    return [this](const model::LogRequest& r, std::shared_ptr<net::ResponseWriter> w) {
      std::lock_guard lock(mu);
      logs.emplace_back(r, std::move(w));
      cv.notify_all();
    };
  }
  std::shared_ptr<net::ResponseWriter> writer(size_t i) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 5s, [&] { return logs.size() > i; });
    return logs.size() > i ? logs[i].second : nullptr;
  }
};

model::NodeRequests ask(const std::string& id, bool follow = true) {
  model::NodeRequests r;
  r.logs.push_back({id, "t-1", "", std::nullopt, follow});
  return r;
}

class LogUplinkTest : public ::testing::Test {
 protected:
  FakeControlPlane plane;
  Served served;
  LogUplinkOptions options() {
    LogUplinkOptions o;
    o.wait = 50ms;
    o.chunk_bytes = 10;
    return o;
  }
};

TEST_F(LogUplinkTest, WhatTheLogServiceWritesReachesTheControlPlaneInOrderAndInBoundedPieces) {
  LogUplink uplink(plane, "node-1", served.serve(), options());
  plane.give(ask("a1"));
  auto w = served.writer(0);
  ASSERT_TRUE(w);
  w->begin_stream(200, "text/event-stream");
  EXPECT_TRUE(w->write("0123456789abcdefghij"));  // two pieces of 10
  EXPECT_TRUE(w->write("xyz"));
  w->close();
  auto got = plane.chunks_to_end();
  ASSERT_GE(got.size(), 3u);
  std::string text;
  for (const auto& c : got) {
    EXPECT_EQ(c.node, "node-1");
    EXPECT_EQ(c.request, "a1");
    EXPECT_LE(c.data.size(), 10u);
    text += c.data;
  }
  EXPECT_EQ(text, "0123456789abcdefghijxyz");
  EXPECT_EQ(got.front().status, 200);
  EXPECT_EQ(got.front().content_type, "text/event-stream");
  for (size_t i = 1; i < got.size(); ++i) EXPECT_EQ(got[i].status, 0) << "status only first";
  EXPECT_TRUE(got.back().end);
  for (size_t i = 0; i + 1 < got.size(); ++i) EXPECT_FALSE(got[i].end);
  // Every poll said who is asking, and the same agent process each time.
  std::lock_guard lock(plane.mu);
  ASSERT_FALSE(plane.queries.empty());
  for (const auto& q : plane.queries) {
    EXPECT_EQ(q.node, "node-1");
    EXPECT_EQ(q.session, plane.queries.front().session);
  }
}

TEST_F(LogUplinkTest, AnErrorAnswerGoesAsOneWholeChunk) {
  LogUplink uplink(plane, "node-1", served.serve(), options());
  plane.give(ask("a1", false));
  auto w = served.writer(0);
  ASSERT_TRUE(w);
  net::HttpResponse r;
  r.status = 404;
  r.body = R"({"error":"no log for 't-1' on this node"})";
  w->respond(r);
  auto got = plane.chunks(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, 404);
  EXPECT_TRUE(got[0].whole);
  EXPECT_TRUE(got[0].end);
  EXPECT_EQ(got[0].data, r.body) << "a whole answer is not cut in pieces";
}

TEST_F(LogUplinkTest, ACancelTellsTheLogServiceItsClientLeft) {
  LogUplink uplink(plane, "node-1", served.serve(), options());
  plane.give(ask("a1"));
  auto w = served.writer(0);
  ASSERT_TRUE(w);
  std::mutex mu;
  std::condition_variable cv;
  bool gone = false;
  w->on_client_gone([&] {
    std::lock_guard lock(mu);
    gone = true;
    cv.notify_all();
  });
  w->begin_stream(200, "text/event-stream");
  EXPECT_TRUE(w->write("data: 1\n\n"));
  plane.chunks(1);
  model::NodeRequests cancel;
  cancel.cancel = {"a1"};
  plane.give(cancel);
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return gone; }));
  EXPECT_TRUE(w->client_gone());
  EXPECT_FALSE(w->write("data: 2\n\n")) << "the log service stops producing";
}

TEST_F(LogUplinkTest, AnAnswerWantingNoMoreEndsTheStreamForTheLogService) {
  plane.more = false;  // the client left before the node heard of it
  LogUplink uplink(plane, "node-1", served.serve(), options());
  plane.give(ask("a1"));
  auto w = served.writer(0);
  ASSERT_TRUE(w);
  w->begin_stream(200, "text/event-stream");
  w->write("data: 1\n\n");
  plane.chunks(1);
  EXPECT_TRUE(mill::testing::eventually([&] { return w->client_gone(); }));
  EXPECT_FALSE(w->write("data: 2\n\n"));
}

TEST_F(LogUplinkTest, StopEndsOpenStreamsAndAWriterOutlivesTheUplink) {
  std::shared_ptr<net::ResponseWriter> w;
  {
    LogUplink uplink(plane, "node-1", served.serve(), options());
    plane.give(ask("a1"));
    w = served.writer(0);
    ASSERT_TRUE(w);
    w->begin_stream(200, "text/event-stream");
    uplink.stop();
    EXPECT_TRUE(w->client_gone());
  }
  EXPECT_FALSE(w->write("data: after\n\n"));
  w->close();  // as the log service's own stop does: harmless
}

}  // namespace
}  // namespace mill::agent
