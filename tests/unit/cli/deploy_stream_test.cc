#include "cli/deploy_stream.h"

#include <gtest/gtest.h>

#include <sstream>

#include "net/http.h"

namespace mill::cli {
namespace {

TEST(Rejection, ValidationErrorsAreAllPrintedWithExitCodeTwo) {
  std::ostringstream err;
  int code = report_rejection(400, R"({"error": "mill.toml has 2 errors", "errors": [
      "mill.toml:3:9: unknown key 'imag'",
      "mill.toml:12:1: service 'db' has no image"]})",
                              err);
  EXPECT_EQ(code, 2);
  EXPECT_EQ(err.str(),
            "mill.toml:3:9: unknown key 'imag'\n"
            "mill.toml:12:1: service 'db' has no image\n"
            "mill: mill.toml has 2 errors\n");
}

TEST(Rejection, BadRequestWithoutAListStillExitsTwo) {
  std::ostringstream err;
  EXPECT_EQ(report_rejection(400, R"({"error": "body is not UTF-8"})", err), 2);
  EXPECT_EQ(err.str(), "mill: body is not UTF-8\n");
}

TEST(Rejection, ConflictNamesTheRunningDeploy) {
  std::ostringstream err;
  EXPECT_EQ(report_rejection(409, R"({"error": "a deploy is running", "deploy": "d-77"})", err), 1);
  EXPECT_EQ(err.str(),
            "mill: a deploy is already running: d-77\n"
            "  follow it with: mill deploy --status d-77\n");
}

TEST(Rejection, OtherStatusesPrintTheError) {
  std::ostringstream err;
  EXPECT_EQ(report_rejection(404, R"({"error": "no service 'webb'"})", err), 1);
  EXPECT_EQ(err.str(), "mill: no service 'webb'\n");
  std::ostringstream plain;
  EXPECT_EQ(report_rejection(502, "bad gateway", plain), 1);
  EXPECT_EQ(plain.str(), "mill: bad gateway\n");
}

TEST(PercentEncode, KeepsUnreservedOnly) {
  EXPECT_EQ(net::percent_encode("mill.toml"), "mill.toml");
  EXPECT_EQ(net::percent_encode("my conf&x=1.toml"), "my%20conf%26x%3D1.toml");
}

}  // namespace
}  // namespace mill::cli
