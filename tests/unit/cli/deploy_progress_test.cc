#include "cli/deploy_progress.h"

#include <gtest/gtest.h>

#include "net/sse.h"

namespace mill::cli {
namespace {

using Lines = std::vector<std::string>;

// Feeds (event, data, seconds) triples and collects the plain lines.
struct Step {
  std::string event;
  std::string data;
  double at;
};

Lines run(DeployProgress& p, const std::vector<Step>& steps) {
  Lines out;
  for (const auto& s : steps) {
    for (auto& l : p.feed(net::SseEvent{s.event, s.data}, s.at)) out.push_back(std::move(l));
  }
  return out;
}

// The spec's stream: `event: progress` with a phase, then `done`.
const std::vector<Step> kSpecStream = {
    {"progress", R"({"phase":"started","deploy":"d-7f3a"})", 0.0},
    {"progress", R"({"phase":"pulling"})", 0.1},
    {"progress", R"({"service":"office","phase":"scheduled","node":"node-2","alloc":"a-1"})", 0.5},
    {"progress", R"({"service":"office","phase":"starting","alloc":"a-1"})", 0.6},
    {"progress", R"({"service":"office","phase":"healthy","elapsed":2.1})", 2.7},
    {"progress", R"({"service":"office","phase":"stopped","alloc":"a-0"})", 2.8},
    {"done", R"({"elapsed":4.2,"success":true})", 4.3},
};

TEST(DeployProgress, SpecStreamGivesOneLinePerEvent) {
  DeployProgress p("deploy mill.toml");
  EXPECT_EQ(run(p, kSpecStream), (Lines{
                                     "   0.0s  deploy d-7f3a started",
                                     "   0.1s  pulling images",
                                     "   0.5s  office: a-1 scheduled on node-2",
                                     "   0.6s  office: a-1 starting",
                                     "   2.7s  office: a-1 healthy after 2.1s",
                                     "   2.8s  office: a-0 stopped",
                                     "   4.3s  done in 4.2s",
                                 }));
  EXPECT_EQ(p.outcome(), DeployProgress::Outcome::kDone);
  EXPECT_EQ(p.exit_code(), 0);
  EXPECT_EQ(p.deploy_id(), "d-7f3a");
  EXPECT_EQ(p.summary(), (Lines{"deploy mill.toml (d-7f3a) done in 4.2s"}));
}

TEST(DeployProgress, EventsNamedAfterThePhaseReadTheSame) {
  std::vector<Step> named;
  for (auto s : kSpecStream) {
    if (s.event == "progress") {
      auto at = s.data.find("\"phase\":\"") + 9;
      s.event = s.data.substr(at, s.data.find('"', at) - at);
    }
    named.push_back(s);
  }
  DeployProgress a("deploy mill.toml");
  DeployProgress b("deploy mill.toml");
  EXPECT_EQ(run(a, kSpecStream), run(b, named));
  EXPECT_EQ(a.live_lines(5, 0), b.live_lines(5, 0));
}

TEST(DeployProgress, LiveViewShowsServicesReplicasAndElapsed) {
  DeployProgress p("deploy mill.toml");
  run(p, {
             {"started", R"({"phase":"started","deploy":"d-1"})", 0},
             {"scheduled", R"({"service":"web","node":"node-1","alloc":"w-1"})", 1},
             {"scheduled", R"({"service":"web","node":"node-2","alloc":"w-2"})", 1},
             {"scheduled", R"({"service":"db","node":"node-1"})", 1.5},
             {"starting", R"({"service":"web","alloc":"w-1"})", 2},
             {"healthy", R"({"service":"web","alloc":"w-1","elapsed":2.5})", 3.5},
             {"stopped", R"({"service":"web","alloc":"w-old"})", 3.6},
         });
  EXPECT_EQ(p.live_lines(5, 1), (Lines{
                                    "⠙ deploy mill.toml (d-1)  5.0s",
                                    "  web  1/2 healthy, 1 old stopped",
                                    "    w-1  node-1  healthy    2.5s",
                                    "    w-2  node-2  scheduled  4.0s",
                                    "  db  0/1 healthy",
                                    "    -    node-1  scheduled  3.5s",
                                }));
  // Replicas without ids are matched in order: the db replica moves on.
  run(p, {{"starting", R"({"service":"db"})", 6}});
  EXPECT_EQ(p.live_lines(7, 0).back(), "    -    node-1  starting   5.5s");
}

TEST(DeployProgress, PullingShowsWhateverFieldsItHas) {
  DeployProgress p("deploy mill.toml");
  auto lines = run(p, {{"pulling",
                        R"({"phase":"pulling","service":"web","image":"r/web:2","node":"node-3",)"
                        R"("layers":3,"bytes":1048576})",
                        0.2}});
  EXPECT_EQ(lines, (Lines{"   0.2s  pulling r/web:2 for web on node-3 (layers=3, bytes=1048576)"}));
  EXPECT_EQ(p.live_lines(1, 0)[1],
            "  web  pulling r/web:2 for web on node-3 (layers=3, bytes=1048576)");
  run(p, {{"pulling", R"({"image":"r/api:1"})", 0.3}});
  EXPECT_EQ(p.live_lines(1, 0)[1], "  pulling r/api:1");
}

TEST(DeployProgress, FailedGivesTheReasonAndExitCodeOne) {
  DeployProgress p("deploy mill.toml");
  auto lines = run(p, {
                          {"started", R"({"deploy":"d-9"})", 0},
                          {"scheduled", R"({"service":"api","node":"node-1","alloc":"x"})", 1},
                          {"failed", R"({"service":"api","reason":"health check timed out"})", 31},
                      });
  EXPECT_EQ(lines.back(), "  31.0s  FAILED api: health check timed out");
  EXPECT_EQ(p.outcome(), DeployProgress::Outcome::kFailed);
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_EQ(p.summary(),
            (Lines{"deploy mill.toml (d-9) FAILED after 31.0s", "  api: health check timed out"}));
  auto live = p.live_lines(40, 3);
  EXPECT_EQ(live[0], "✗ deploy mill.toml (d-9)  31.0s");
  EXPECT_EQ(live[1], "  api  0/1 healthy  FAILED");
  // Nothing after the end changes the outcome.
  EXPECT_TRUE(run(p, {{"done", R"({"elapsed":1,"success":true})", 32}}).empty());
  EXPECT_EQ(p.exit_code(), 1);
}

TEST(DeployProgress, DoneWithoutSuccessIsAFailure) {
  DeployProgress p("restart web");
  run(p, {{"done", R"({"elapsed":3,"success":false})", 3}});
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_EQ(p.summary()[0], "restart web FAILED after 3.0s");
}

TEST(DeployProgress, StreamEndingEarlyExitsThreeAndSaysHowToCheck) {
  DeployProgress p("deploy mill.toml");
  run(p, {{"progress", R"({"phase":"started","deploy":"d-42"})", 0},
          {"scheduled", R"({"service":"web","node":"node-1"})", 1}});
  EXPECT_EQ(p.outcome(), DeployProgress::Outcome::kRunning);
  EXPECT_EQ(p.exit_code(), 3);
  auto summary = p.summary();
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary[1], "  check on it with: mill deploy --status d-42");

  DeployProgress nothing("deploy mill.toml");
  EXPECT_EQ(nothing.exit_code(), 3);
  EXPECT_EQ(nothing.summary()[1], "  check on it with: mill deploys");
}

TEST(DeployProgress, RawStreamWithKeepAlivesAndJunk) {
  // Bytes as the server sends them, split at every point, through the SSE parser.
  std::string stream =
      ": keep-alive\n\nevent: progress\ndata: {\"phase\":\"started\",\"deploy\":\"d-5\"}\n\n"
      ": keep-alive\n\nevent: mystery\ndata: not json\n\n"
      "event: healthy\r\ndata: {\"service\":\"web\",\"elapsed\":1.5}\r\n\r\n"
      "event: done\ndata: {\"elapsed\":2,\"success\":true}\n\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    net::SseParser parser;
    DeployProgress p("deploy x");
    Lines lines;
    for (auto part :
         {std::string_view(stream).substr(0, cut), std::string_view(stream).substr(cut)}) {
      for (const auto& e : parser.feed(part)) {
        for (auto& l : p.feed(e, 1)) lines.push_back(l);
      }
    }
    ASSERT_EQ(lines.size(), 4u) << "cut at " << cut;
    EXPECT_EQ(lines[1], "   1.0s  mystery");
    EXPECT_EQ(lines[2], "   1.0s  web: replica healthy after 1.5s");
    EXPECT_EQ(p.exit_code(), 0);
  }
}

TEST(DescribeEvent, StoredEventsReadLikeLiveOnes) {
  boost::json::object data{{"service", "web"}, {"reason", "image not found"}};
  EXPECT_EQ(describe_event("failed", data), "FAILED web: image not found");
  EXPECT_EQ(describe_event("progress", {{"phase", "starting"}, {"service", "web"}}),
            "web: replica starting");
  EXPECT_EQ(describe_event("failed", {}), "FAILED (no reason given)");
}

}  // namespace
}  // namespace mill::cli
