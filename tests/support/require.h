// What a test needs from the machine (root, runc, a loop device…), checked in one place.
//
// Outside CI a missing need skips the test with the reason. Under CI (the CI
// environment variable is set, as .ci/run and scripts/test.sh do) every need must
// hold: a skip there would let a green run hide a suite that never ran, so the
// test fails instead, with the same reason.

#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string_view>

namespace mill::testing {

inline bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string_view(ci) != "0" &&
         std::string_view(ci) != "false";
}

}  // namespace mill::testing

// In SetUp() or a test body: skips (outside CI) or fails (under CI) unless `cond`.
#define MILL_REQUIRE(cond, why)                                        \
  do {                                                                 \
    if (!(cond)) {                                                     \
      if (::mill::testing::under_ci()) {                               \
        FAIL() << "needed under CI, and missing: " << why;             \
      } else {                                                         \
        GTEST_SKIP() << why << " (CI=true turns this into a failure)"; \
      }                                                                \
    }                                                                  \
  } while (0)
