#include "model/allocation.h"

#include <gtest/gtest.h>

#include "samples.h"

namespace mill::model {
namespace {

TEST(Allocation, RoundTripsThroughJson) {
  for (const auto& a : {samples::service_allocation(), samples::task_allocation()}) {
    auto back = decode_allocation(encode(a));
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(*back, a);
  }
}

// A command check travels to the agent; without one the wire is as before, and a
// command beside a path, or with no program, is refused.
TEST(Allocation, HealthCommandRoundTripsAndIsCheckedOnTheWire) {
  Allocation a = samples::service_allocation();
  a.spec.health->path = "";
  a.spec.health->command = {"pg_isready", "-q"};
  std::string text = encode(a);
  EXPECT_NE(text.find(R"("command":["pg_isready","-q"])"), std::string::npos) << text;
  auto back = decode_allocation(text);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, a);
  EXPECT_EQ(encode(samples::service_allocation()).find("pg_isready"), std::string::npos);

  std::string both = text;
  both.replace(both.find(R"("path":"")"), 9, R"("path":"/h")");
  EXPECT_FALSE(decode_allocation(both).has_value());
  std::string empty = text;
  empty.replace(empty.find(R"(["pg_isready","-q"])"), 19, R"([""])");
  EXPECT_FALSE(decode_allocation(empty).has_value());
}

TEST(Allocation, DiskRoundTripsAndIsLeftOutWhenUnlimited) {
  Allocation a = samples::task_allocation();
  EXPECT_EQ(encode(a).find("\"disk\""), std::string::npos);
  a.spec.disk = std::int64_t{1} << 30;
  auto back = decode_allocation(encode(a));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->spec.disk, std::int64_t{1} << 30);
}

TEST(AllocState, RoundTripsThroughJson) {
  for (const auto& s : {samples::running_state(), samples::exited_state()}) {
    auto back = decode_alloc_state(encode(s));
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(*back, s);
  }
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
