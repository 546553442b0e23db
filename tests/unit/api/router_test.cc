#include "api/router.h"

#include <gtest/gtest.h>

namespace mill::api {
namespace {

net::HttpRequest request(std::string method, std::string path) {
  net::HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

Router make_router() {
  Router router;
  auto echo = [](std::string tag) {
    return [tag](const net::HttpRequest&, const Params& p) {
      net::HttpResponse r;
      r.body = tag;
      for (const auto& [k, v] : p) r.body += " " + k + "=" + v;
      return r;
    };
  };
  router.add("GET", "/v1/secrets", echo("list"));
  router.add("GET", "/v1/secrets/:name", echo("get"));
  router.add("PUT", "/v1/secrets/:name", echo("put"));
  return router;
}

TEST(Router, MatchesMethodAndPattern) {
  Router router = make_router();
  EXPECT_EQ(router.dispatch(request("GET", "/v1/secrets")).body, "list");
  EXPECT_EQ(router.dispatch(request("GET", "/v1/secrets/db")).body, "get name=db");
  EXPECT_EQ(router.dispatch(request("PUT", "/v1/secrets/db")).body, "put name=db");
  EXPECT_EQ(router.dispatch(request("GET", "/v1/secrets/")).body, "list");  // trailing slash
}

TEST(Router, DecodesParameters) {
  Router router = make_router();
  EXPECT_EQ(router.dispatch(request("GET", "/v1/secrets/a%2Fb")).body, "get name=a/b");
}

TEST(Router, WrongMethodIs405WithAllow) {
  Router router = make_router();
  auto r = router.dispatch(request("DELETE", "/v1/secrets/db"));
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].name, "Allow");
  EXPECT_EQ(r.headers[0].value, "GET, PUT");
  EXPECT_NE(r.body.find("\"error\""), std::string::npos);
}

TEST(Router, UnknownPathIs404) {
  Router router = make_router();
  EXPECT_EQ(router.dispatch(request("GET", "/v1/nope")).status, 404);
  EXPECT_EQ(router.dispatch(request("GET", "/v1/secrets/a/b")).status, 404);
  EXPECT_EQ(router.dispatch(request("GET", "/")).status, 404);
}

}  // namespace
}  // namespace mill::api
