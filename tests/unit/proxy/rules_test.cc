#include "proxy/rules.h"

#include <gtest/gtest.h>

namespace mill::proxy {
namespace {

http::request_header<> request(std::initializer_list<std::pair<std::string, std::string>> fields,
                               int version = 11) {
  http::request_header<> r;
  r.method(http::verb::post);
  r.target("/");
  r.version(version);
  for (const auto& [k, v] : fields) r.insert(k, v);
  return r;
}

TEST(ProxyRules, RefusesSmugglingShapes) {
  EXPECT_EQ(check_request(request({{"Host", "a"}, {"Content-Length", "5"}})), "");
  EXPECT_EQ(check_request(request({{"Host", "a"}, {"Transfer-Encoding", "chunked"}})), "");
  EXPECT_NE(check_request(request(
                {{"Host", "a"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}})),
            "");
  EXPECT_NE(
      check_request(request({{"Host", "a"}, {"Content-Length", "5"}, {"Content-Length", "6"}})),
      "");
  EXPECT_NE(check_request(request({{"Host", "a"}, {"Content-Length", "+5"}})), "");
  EXPECT_NE(check_request(request({{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}})), "");
  EXPECT_NE(check_request(request({{"Host", "a"}, {"Transfer-Encoding", "xchunked"}})), "");
  EXPECT_NE(
      check_request(request(
          {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}})),
      "");
  EXPECT_NE(check_request(request({{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, 10)), "");
  EXPECT_NE(check_request(request({})), "");  // HTTP/1.1 without Host
  EXPECT_EQ(check_request(request({}, 10)), "");
  EXPECT_NE(check_request(request({{"Host", "a"}, {"Host", "b"}})), "");
}

TEST(ProxyRules, ForwardedHeadersAreTheProxysUnlessTrusted) {
  auto r = request({{"Host", "office.example.com"},
                    {"X-Forwarded-For", "6.6.6.6"},
                    {"X-Forwarded-Proto", "https"},
                    {"Connection", "keep-alive, X-Secret"},
                    {"X-Secret", "hop"},
                    {"Keep-Alive", "timeout=5"},
                    {"Proxy-Authorization", "Basic x"},
                    {"TE", "trailers"},
                    {"Expect", "100-continue"}});
  prepare_request(r, {.client_ip = "127.0.0.9", .tls = false, .trust_forwarded = false});
  EXPECT_EQ(r["X-Forwarded-For"], "127.0.0.9");
  EXPECT_EQ(r["X-Forwarded-Proto"], "http");
  EXPECT_EQ(r["X-Forwarded-Host"], "office.example.com");
  EXPECT_EQ(r["Host"], "office.example.com");
  for (auto name :
       {"Connection", "X-Secret", "Keep-Alive", "Proxy-Authorization", "TE", "Expect"}) {
    EXPECT_EQ(r.count(name), 0u) << name;
  }

  auto t = request({{"Host", "a"}, {"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-For", "5.6.7.8"}});
  prepare_request(t, {.client_ip = "127.0.0.9", .tls = true, .trust_forwarded = true});
  EXPECT_EQ(t["X-Forwarded-For"], "1.2.3.4, 5.6.7.8, 127.0.0.9");
  EXPECT_EQ(t["X-Forwarded-Proto"], "https");
}

TEST(ProxyRules, UpgradesKeepTheirHeaders) {
  auto r = request({{"Host", "a"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"}});
  EXPECT_TRUE(is_upgrade(r));
  prepare_request(r, {.client_ip = "127.0.0.1"});
  EXPECT_EQ(r["Upgrade"], "websocket");
  EXPECT_EQ(r["Connection"], "upgrade");

  auto plain = request({{"Host", "a"}, {"Upgrade", "websocket"}});
  EXPECT_FALSE(is_upgrade(plain));
  prepare_request(plain, {.client_ip = "127.0.0.1"});
  EXPECT_EQ(plain.count("Upgrade"), 0u);

  http::response_header<> res;
  res.result(http::status::ok);
  res.set("Connection", "close, X-Internal");
  res.set("X-Internal", "1");
  res.set("Upgrade", "h2c");
  res.set("Transfer-Encoding", "chunked");
  prepare_response(res);
  EXPECT_EQ(res.count("X-Internal"), 0u);
  EXPECT_EQ(res.count("Upgrade"), 0u);
  EXPECT_EQ(res.count("Connection"), 0u);
  EXPECT_EQ(res["Transfer-Encoding"], "chunked");  // framing is the serializer's to redo
}

}  // namespace
}  // namespace mill::proxy
