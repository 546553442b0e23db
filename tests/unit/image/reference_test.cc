#include "image/reference.h"

#include <gtest/gtest.h>

namespace mill::image {
namespace {

const std::string kHex(64, 'a');

struct Case {
  const char* input;
  const char* registry;
  const char* repository;
  const char* tag;
  std::string digest;
  const char* canonical;
};

TEST(Reference, ParsesLikeDocker) {
  const std::string d = "sha256:" + kHex;
  const Case cases[] = {
      {"busybox", "docker.io", "library/busybox", "latest", "", "docker.io/library/busybox:latest"},
      {"busybox:1.36", "docker.io", "library/busybox", "1.36", "",
       "docker.io/library/busybox:1.36"},
      {"user/app", "docker.io", "user/app", "latest", "", "docker.io/user/app:latest"},
      {"docker.io/busybox", "docker.io", "library/busybox", "latest", "",
       "docker.io/library/busybox:latest"},
      {"index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", "",
       "docker.io/library/busybox:1"},
      {"localhost/app", "localhost", "app", "latest", "", "localhost/app:latest"},
      {"localhost:5000/a/b/c:v1.0-rc_1", "localhost:5000", "a/b/c", "v1.0-rc_1", "",
       "localhost:5000/a/b/c:v1.0-rc_1"},
      {"127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", "", "127.0.0.1:5000/app:latest"},
      {"ghcr.io/org/my-app.x__y", "ghcr.io", "org/my-app.x__y", "latest", "",
       "ghcr.io/org/my-app.x__y:latest"},
      {"Registry/app", "Registry", "app", "latest", "", "Registry/app:latest"},
      {"[::1]:5000/app", "[::1]:5000", "app", "latest", "", "[::1]:5000/app:latest"},
  };
  for (const auto& c : cases) {
    auto r = parse_reference(c.input);
    ASSERT_TRUE(r) << c.input << ": " << r.error().message;
    EXPECT_EQ(r->registry, c.registry) << c.input;
    EXPECT_EQ(r->repository, c.repository) << c.input;
    EXPECT_EQ(r->tag, c.tag) << c.input;
    EXPECT_EQ(r->digest, c.digest) << c.input;
    EXPECT_EQ(r->str(), c.canonical) << c.input;
    // The canonical form reads back to the same reference.
    EXPECT_EQ(*parse_reference(r->str()), *r) << c.input;
  }
}

TEST(Reference, Digests) {
  const std::string d = "sha256:" + kHex;
  auto r = parse_reference("busybox@" + d);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->digest, d);
  EXPECT_EQ(r->manifest_reference(), d);
  EXPECT_EQ(r->str(), "docker.io/library/busybox@" + d);

  auto both = parse_reference("localhost:5000/app:v1@" + d);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->tag, "v1");
  EXPECT_EQ(both->manifest_reference(), d) << "the digest wins";
}

TEST(Reference, Endpoint) {
  EXPECT_EQ(parse_reference("busybox")->endpoint(), "registry-1.docker.io");
  EXPECT_EQ(parse_reference("quay.io/a/b")->endpoint(), "quay.io");
  EXPECT_EQ(parse_reference("localhost:5000/a")->endpoint(), "localhost:5000");
}

TEST(Reference, RejectsBadInput) {
  const std::string d = "sha256:" + kHex;
  const std::string bad[] = {
      "",
      ":tag",
      "UPPER",
      "docker.io/Library/busybox",
      "app:",
      "app:-tag",
      "app:" + std::string(129, 'a'),
      "app@sha256:abc",
      "app@sha256:" + std::string(64, 'A'),
      "app@sha512:" + std::string(128, 'a'),
      "app@" + d + "x",
      "a//b",
      "a/b/",
      "/a",
      "a..b",
      "a-",
      "-a",
      "host:99999/app",
      "host:/app",
      "ho_st.com/app",
      "app with space",
      "a/" + std::string(260, 'b'),
      "@" + d,
  };
  for (const auto& input : bad) {
    auto r = parse_reference(input);
    EXPECT_FALSE(r) << "'" << input << "' parsed as " << (r ? r->str() : "");
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(r.error().message.find("invalid image reference"), std::string::npos);
    }
  }
  EXPECT_NE(parse_reference("Busybox").error().message.find("lowercase"), std::string::npos);
}

TEST(Reference, LoopbackHosts) {
  EXPECT_TRUE(is_loopback_host("127.0.0.1:5000"));
  EXPECT_TRUE(is_loopback_host("127.1.2.3"));
  EXPECT_TRUE(is_loopback_host("localhost:5000"));
  EXPECT_TRUE(is_loopback_host("[::1]:5000"));
  EXPECT_FALSE(is_loopback_host("127.example.com"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1:5000"));
  EXPECT_FALSE(is_loopback_host("registry-1.docker.io"));
}

}  // namespace
}  // namespace mill::image
