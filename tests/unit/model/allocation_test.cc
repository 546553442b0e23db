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
