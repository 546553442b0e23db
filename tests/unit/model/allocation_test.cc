#include "model/allocation.h"

#include <gtest/gtest.h>

namespace mill::model {
namespace {

TEST(Allocation, RoundTripsThroughJson) {
  Allocation a;
  a.id = "coop-agent-x7k2";
  a.kind = "task";
  a.group = "coop-agent";
  a.node = "node-1";
  a.ip = "10.99.1.7";
  a.spec.image = "127.0.0.1:5000/probe:v1";
  a.spec.cpu = 0.5;
  a.spec.memory = 64 << 20;
  a.spec.timeout = std::chrono::milliseconds(90000);
  a.spec.port = 8080;
  a.spec.command = {"/probe", "--log-every", "100"};
  a.spec.env = {{"A", "1"}, {"DB", "${secret:db}"}};
  a.spec.init = false;
  a.spec.health = HealthCheck{"/healthz", std::chrono::milliseconds(100),
                              std::chrono::milliseconds(1000), std::chrono::milliseconds(30000), 2};
  a.spec.volumes = {{"data", 16 << 20, "/data", false}, {"conf", 1 << 20, "/etc/app", true}};
  a.desired = DesiredState::kStop;
  a.created_at = SystemTime(std::chrono::milliseconds(1'700'000'000'123));
  auto back = decode_allocation(encode(a));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, a);
}

TEST(AllocState, RoundTripsThroughJson) {
  AllocState s;
  s.id = "task-ab12";
  s.status = AllocStatus::kExited;
  s.message = "exited with code 3";
  s.pid = 4242;
  s.exit_code = 3;
  s.started_at = SystemTime(std::chrono::milliseconds(1000));
  s.finished_at = SystemTime(std::chrono::milliseconds(2000));
  s.pull_duration = std::chrono::milliseconds(12);
  s.start_duration = std::chrono::milliseconds(40);
  s.cpu_seconds = 0.25;
  s.memory_bytes = 1 << 20;
  s.restarts = 2;
  s.volume_used = {{"data", 4096}};
  auto back = decode_alloc_state(encode(s));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(AllocState, RejectsUnknownStatusAndFields) {
  EXPECT_FALSE(decode_alloc_state(R"({"id":"t-1","status":"zombie"})").has_value());
  EXPECT_FALSE(decode_alloc_state(R"({"id":"t-1","status":"running","x":1})").has_value());
  EXPECT_FALSE(decode_alloc_state(R"({"id":"../x","status":"running"})").has_value());
}

TEST(AllocStatus, EndStatesAreTerminal) {
  for (auto s : {AllocStatus::kExited, AllocStatus::kTimeout, AllocStatus::kKilled,
                 AllocStatus::kFailed, AllocStatus::kLost}) {
    EXPECT_TRUE(is_terminal(s)) << to_string(s);
  }
  for (auto s : {AllocStatus::kPending, AllocStatus::kPulling, AllocStatus::kStarting,
                 AllocStatus::kRunning, AllocStatus::kStopping}) {
    EXPECT_FALSE(is_terminal(s)) << to_string(s);
    EXPECT_EQ(parse_alloc_status(to_string(s)), s);
  }
}

}  // namespace
}  // namespace mill::model
