#include "common/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace mill {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(ErrorCode::kInvalidArgument, "not positive");
  return v;
}

Result<int> doubled(int v) {
  int x = MILL_TRY(parse_positive(v));
  return x * 2;
}

Result<void> check(int v) {
  MILL_TRY(parse_positive(v));
  return {};
}

TEST(Result, CarriesValueOrError) {
  auto ok = doubled(4);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "not positive");
  EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Result, VoidPropagates) {
  EXPECT_TRUE(check(1));
  auto r = check(0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().to_string(), "invalid_argument: not positive");
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(3);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 3);
}

}  // namespace
}  // namespace mill
