#include "proxy/route_table.h"

#include <gtest/gtest.h>

namespace mill::proxy {
namespace {

TEST(RouteTable, ExactHostBeatsWildcardAndLongestPathWins) {
  RouteTable t({{"*.example.com", "/"},
                {"api.example.com", "/"},
                {"api.example.com", "/v2"},
                {"*.example.com", "/static"},
                {"*", "/"}});
  EXPECT_EQ(t.match("api.example.com", "/users"), 1u);
  EXPECT_EQ(t.match("api.example.com", "/v2/users"), 2u);
  EXPECT_EQ(t.match("api.example.com", "/v2"), 2u);
  EXPECT_EQ(t.match("api.example.com", "/v2x"), 1u);  // segment boundaries, not bytes
  EXPECT_EQ(t.match("www.example.com", "/"), 0u);
  EXPECT_EQ(t.match("www.example.com", "/static/app.js"), 3u);
  EXPECT_EQ(t.match("a.b.example.com", "/"), 0u);  // any depth in front of the suffix
  EXPECT_EQ(t.match("example.com", "/"), 4u);      // the bare suffix is not a wildcard match
  EXPECT_EQ(t.match("other.org", "/x"), 4u);
}

TEST(RouteTable, NoMatchIsNpos) {
  RouteTable t(std::vector<RouteKey>{{"office.example.com", "/app"}});
  EXPECT_EQ(t.match("office.example.com", "/"), RouteTable::npos);
  EXPECT_EQ(t.match("office.example.com", "/application"), RouteTable::npos);
  EXPECT_EQ(t.match("office.example.org", "/app"), RouteTable::npos);
  EXPECT_EQ(t.match("office.example.com", "/app/"), 0u);
  EXPECT_EQ(RouteTable().match("a", "/"), RouteTable::npos);
}

TEST(RouteTable, LongerWildcardSuffixWins) {
  RouteTable t({{"*.example.com", "/"}, {"*.eu.example.com", "/"}});
  EXPECT_EQ(t.match("shop.eu.example.com", "/"), 1u);
  EXPECT_EQ(t.match("shop.us.example.com", "/"), 0u);
}

TEST(RouteTable, NormalizesHostHeaders) {
  EXPECT_EQ(normalize_host("Office.Example.COM:8080"), "office.example.com");
  EXPECT_EQ(normalize_host("office.example.com."), "office.example.com");
  EXPECT_EQ(normalize_host("[::1]:80"), "[::1]");
  EXPECT_EQ(normalize_host("bad host"), "");
  EXPECT_EQ(normalize_host("a.com:notaport"), "");
  EXPECT_EQ(normalize_host(""), "");
}

TEST(RouteTable, TargetPathHandlesOriginAndAbsoluteForm) {
  EXPECT_EQ(target_path("/a/b?c=1"), "/a/b");
  std::string_view host;
  EXPECT_EQ(target_path("http://Example.com:81/x?y", &host), "/x");
  EXPECT_EQ(host, "Example.com:81");
  EXPECT_EQ(target_path("http://example.com", &host), "/");
  EXPECT_EQ(target_path("*"), "*");
}

}  // namespace
}  // namespace mill::proxy
