#include "net/http.h"

#include <gtest/gtest.h>

namespace mill::net {
namespace {

TEST(HostPort, Parses) {
  HostPort hp;
  ASSERT_TRUE(parse_host_port("127.0.0.1:4400", hp));
  EXPECT_EQ(hp.host, "127.0.0.1");
  EXPECT_EQ(hp.port, 4400);
  ASSERT_TRUE(parse_host_port(":4400", hp));
  EXPECT_EQ(hp.host, "");
  ASSERT_TRUE(parse_host_port("[::1]:0", hp));
  EXPECT_EQ(hp.host, "::1");
  EXPECT_EQ(hp.port, 0);
  EXPECT_FALSE(parse_host_port("127.0.0.1", hp));
  EXPECT_FALSE(parse_host_port("127.0.0.1:65536", hp));
  EXPECT_FALSE(parse_host_port("127.0.0.1:", hp));
  EXPECT_FALSE(parse_host_port("127.0.0.1:4x", hp));
  EXPECT_FALSE(parse_host_port("::1:80", hp));
}

TEST(Request, HeadersAreCaseInsensitive) {
  HttpRequest r;
  r.headers.push_back({"Authorization", "Bearer x"});
  ASSERT_NE(r.header("authorization"), nullptr);
  EXPECT_EQ(*r.header("AUTHORIZATION"), "Bearer x");
  EXPECT_EQ(r.header("cookie"), nullptr);
}

TEST(Request, QueryParameters) {
  HttpRequest r;
  r.query = "follow=true&tail=100&name=a%20b&flag";
  EXPECT_EQ(r.query_param("tail"), "100");
  EXPECT_EQ(r.query_param("name"), "a b");
  EXPECT_TRUE(r.has_query_param("flag"));
  EXPECT_FALSE(r.has_query_param("nope"));
  EXPECT_EQ(r.query_param("nope"), "");
}

TEST(PercentDecode, HandlesBadEscapes) {
  EXPECT_EQ(percent_decode("a%2Fb"), "a/b");
  EXPECT_EQ(percent_decode("100%"), "100%");
  EXPECT_EQ(percent_decode("%zz"), "%zz");
  EXPECT_EQ(percent_decode("%4"), "%4");
}

}  // namespace
}  // namespace mill::net
