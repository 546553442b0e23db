#include "proxy/proxy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdlib>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>

#include "backend.h"
#include "support/eventually.h"
#include "support/temp_dir.h"

namespace mill::proxy {
namespace {

using namespace test;
using namespace std::chrono_literals;

// A backend that answers every request with its name in the body and X-Backend.
std::unique_ptr<Backend> named(const std::string& name) {
  return std::make_unique<Backend>(serve_http([name](const auto& req) {
    http::response<http::string_body> res{http::status::ok, 11};
    res.set("X-Backend", name);
    res.body() = name + " " + std::string(req.target());
    return res;
  }));
}

std::unique_ptr<Proxy> start_proxy(ProxyOptions o = {}) {
  o.http_listen = "127.0.0.1:0";
  o.https_listen = "127.0.0.1:0";
  auto p = Proxy::start(o);
  EXPECT_TRUE(p) << p.error().message;
  return std::move(*p);
}

ProxyRoute route(std::string name, std::string host, std::string path,
                 std::vector<std::string> upstreams) {
  ProxyRoute r;
  r.name = std::move(name);
  r.host = std::move(host);
  r.path = std::move(path);
  r.upstreams = std::move(upstreams);
  return r;
}

std::string dead_address() {
  // A port that was just free: nothing listens there.
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return "127.0.0.1:" + std::to_string(a.local_endpoint().port());
}

#if defined(__SANITIZE_ADDRESS__)
// From the sanitizer runtime (GCC ships no header that declares it).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

// The memory this process holds, in kB: its RSS. Under AddressSanitizer, the bytes
// allocated and not yet freed instead: ASan keeps freed blocks in quarantine, so there
// the RSS grows with every allocation made, not with what is held.
long held_kb() {
#if defined(__SANITIZE_ADDRESS__)
  return static_cast<long>(__sanitizer_get_current_allocated_bytes() / 1024);
#else
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
#endif
}

TEST(Proxy, RoutesByHostWildcardAndLongestPathPrefix) {
  auto app = named("app"), api = named("api"), wild = named("wild");
  auto proxy = start_proxy();
  proxy->set_routes({route("app", "office.example.com", "/", {app->address()}),
                     route("api", "office.example.com", "/api", {api->address()}),
                     route("wild", "*.example.com", "/", {wild->address()})});
  Client c(proxy->http_port());
  EXPECT_EQ(c.get("office.example.com", "/").body(), "app /");
  EXPECT_EQ(c.get("Office.Example.com:80", "/api/users?x=1").body(), "api /api/users?x=1");
  EXPECT_EQ(c.get("office.example.com", "/apis").body(), "app /apis");
  EXPECT_EQ(c.get("shop.example.com", "/api").body(), "wild /api");
  auto none = c.get("example.org", "/");
  EXPECT_EQ(none.result_int(), 404);
  EXPECT_NE(none.body().find("no route"), std::string::npos);
  // The connection survived all of it (keep-alive to the client).
  EXPECT_EQ(c.get("office.example.com", "/again").body(), "app /again");
}

TEST(Proxy, NoHealthyOrNoReachableAllocationIs502WithAShortBody) {
  auto proxy = start_proxy();
  proxy->set_routes(
      {route("empty", "empty.test", "/", {}), route("dead", "dead.test", "/", {dead_address()})});
  Client c(proxy->http_port());
  auto empty = c.get("empty.test", "/");
  EXPECT_EQ(empty.result_int(), 502);
  EXPECT_NE(empty.body().find("no healthy allocation of empty"), std::string::npos);
  Client d(proxy->http_port());
  auto dead = d.get("dead.test", "/");
  EXPECT_EQ(dead.result_int(), 502);
  EXPECT_NE(dead.body().find("cannot connect"), std::string::npos);
}

TEST(Proxy, MovesToTheNextUpstreamWhenOneCannotBeReached) {
  auto live = named("live");
  auto proxy = start_proxy();
  proxy->set_routes({route("svc", "svc.test", "/", {dead_address(), live->address()})});
  for (int i = 0; i < 20; ++i) {
    Client c(proxy->http_port());
    auto res = c.get("svc.test", "/");
    ASSERT_EQ(res.result_int(), 200) << i;
    EXPECT_EQ(res.body(), "live /");
  }
}

TEST(Proxy, AKeptConnectionTheUpstreamDropsIsRetriedOnAFreshOne) {
  // The only upstream answers one request per connection and then, with the next
  // request already sent, closes without a word (its keep-alive timeout firing just as
  // the proxy reused the connection). A GET must still get its answer.
  Backend once([](tcp::socket& sock) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(sock, buf, req, ec);
    if (ec) return;
    http::response<http::string_body> res{http::status::ok, 11};
    res.body() = "fresh";
    res.keep_alive(true);
    res.prepare_payload();
    http::write(sock, res, ec);
    http::request<http::string_body> next;
    http::read(sock, buf, next, ec);  // read it, then hang up without answering
  });
  auto proxy = start_proxy();
  proxy->set_routes({route("svc", "svc.test", "/", {once.address()})});
  Client c(proxy->http_port());
  for (int i = 0; i < 5; ++i) {
    auto res = c.get("svc.test", "/");
    ASSERT_EQ(res.result_int(), 200) << i << ": " << res.body();
    EXPECT_EQ(res.body(), "fresh");
  }
  EXPECT_GE(once.connections(), 5);
}

TEST(Proxy, SpreadsRequestsAndReusesUpstreamConnections) {
  auto a = named("a"), b = named("b");
  auto proxy = start_proxy();
  proxy->set_routes({route("svc", "svc.test", "/", {a->address(), b->address()})});
  Client c(proxy->http_port());
  int seen_a = 0, seen_b = 0;
  for (int i = 0; i < 40; ++i) {
    auto res = c.get("svc.test", "/");
    ASSERT_EQ(res.result_int(), 200);
    (res["X-Backend"] == "a" ? seen_a : seen_b)++;
  }
  EXPECT_GE(seen_a, 10);
  EXPECT_GE(seen_b, 10);
  // Keep-alive pools: not one upstream connection per request.
  EXPECT_LE(a->connections(), 2);
  EXPECT_LE(b->connections(), 2);
}

TEST(Proxy, SetsForwardedHeadersAndDropsHopByHopOnes) {
  Backend echo(serve_http([](const auto& req) {
    http::response<http::string_body> res{http::status::ok, 11};
    std::ostringstream out;
    for (const auto& f : req) out << f.name_string() << ": " << f.value() << "\n";
    res.body() = out.str();
    res.set("Keep-Alive", "timeout=5");
    res.set("X-From-Backend", "yes");
    return res;
  }));
  auto proxy = start_proxy();
  proxy->set_routes({route("echo", "echo.test", "/", {echo.address()})});
  Client c(proxy->http_port());
  http::request<http::string_body> req{http::verb::get, "/", 11};
  req.set(http::field::host, "echo.test");
  req.set("X-Forwarded-For", "6.6.6.6");
  req.set(http::field::connection, "keep-alive, X-Hop");
  req.set("X-Hop", "secret");
  req.set("X-Kept", "1");
  auto res = c.request(req);
  ASSERT_EQ(res.result_int(), 200);
  const std::string& seen = res.body();
  EXPECT_NE(seen.find("X-Forwarded-For: 127.0.0.1\n"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("6.6.6.6"), std::string::npos) << seen;
  EXPECT_NE(seen.find("X-Forwarded-Proto: http\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("X-Forwarded-Host: echo.test\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Host: echo.test\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("X-Kept: 1\n"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("X-Hop"), std::string::npos) << seen;
  EXPECT_EQ(res.count("Keep-Alive"), 0u);
  EXPECT_EQ(res["X-From-Backend"], "yes");
}

// Counts a request body piece by piece (never holding it) and answers its size.
Backend::Handler counting_sink() {
  return [](tcp::socket& sock) {
    beast::flat_buffer buf;
    http::request_parser<http::buffer_body> p;
    p.body_limit(boost::none);
    boost::system::error_code ec;
    http::read_header(sock, buf, p, ec);
    if (ec) return;
    size_t total = 0;
    char piece[16384];
    while (!p.is_done()) {
      p.get().body().data = piece;
      p.get().body().size = sizeof piece;
      http::read(sock, buf, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return;
      total += sizeof piece - p.get().body().size;
    }
    http::response<http::string_body> res{http::status::ok, 11};
    res.body() = std::to_string(total);
    res.prepare_payload();
    http::write(sock, res, ec);
  };
}

TEST(Proxy, StreamsFiftyMegabytesEachWayWithFlatMemory) {
  constexpr size_t kSize = 50u << 20;
  Backend sink(counting_sink());
  Backend source([](tcp::socket& sock) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(sock, buf, req, ec);
    if (ec) return;
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n";
    asio::write(sock, asio::buffer(head), ec);
    std::string piece(64 * 1024, 'x');
    for (size_t sent = 0; sent < kSize && !ec; sent += piece.size()) {
      asio::write(sock, asio::buffer(piece), ec);
    }
  });
  auto proxy = start_proxy();
  proxy->set_routes({route("up", "up.test", "/", {sink.address()}),
                     route("down", "down.test", "/", {source.address()})});
  const long before = held_kb();
  long peak = before;  // sampled while the bodies are on their way

  Client up(proxy->http_port());
  std::string head = "POST /upload HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n";
  asio::write(up.socket(), asio::buffer(head));
  std::string chunk(64 * 1024, 'y');
  std::ostringstream size_line;
  size_line << std::hex << chunk.size() << "\r\n";
  for (size_t sent = 0; sent < kSize; sent += chunk.size()) {
    if (sent % (4u << 20) == 0) peak = std::max(peak, held_kb());
    asio::write(up.socket(), asio::buffer(size_line.str()));
    asio::write(up.socket(), asio::buffer(chunk));
    asio::write(up.socket(), asio::buffer(std::string("\r\n")));
  }
  asio::write(up.socket(), asio::buffer(std::string("0\r\n\r\n")));
  http::response<http::string_body> uploaded;
  http::read(up.socket(), up.buffer(), uploaded);
  EXPECT_EQ(uploaded.result_int(), 200);
  EXPECT_EQ(uploaded.body(), std::to_string(kSize));

  Client down(proxy->http_port());
  http::request<http::empty_body> get{http::verb::get, "/file", 11};
  get.set(http::field::host, "down.test");
  http::write(down.socket(), get);
  http::response_parser<http::buffer_body> p;
  p.body_limit(boost::none);
  http::read_header(down.socket(), down.buffer(), p);
  size_t received = 0;
  size_t reads = 0;
  char piece[16384];
  boost::system::error_code ec;
  while (!p.is_done()) {
    p.get().body().data = piece;
    p.get().body().size = sizeof piece;
    http::read(down.socket(), down.buffer(), p, ec);
    if (ec == http::error::need_buffer) ec = {};
    ASSERT_FALSE(ec) << ec.message();
    received += sizeof piece - p.get().body().size;
    if (++reads % 256 == 0) peak = std::max(peak, held_kb());
  }
  EXPECT_EQ(received, kSize);
  peak = std::max(peak, held_kb());
  // 100 MB went through; holding either body whole, or much of it, would show here.
  EXPECT_LT(peak - before, 20 * 1024) << "held memory grew from " << before << " kB";
}

TEST(Proxy, RefusesRequestSmugglingShapesBeforeAnyUpstreamSeesThem) {
  auto app = named("app");
  auto proxy = start_proxy();
  proxy->set_routes({route("app", "app.test", "/", {app->address()})});
  const std::string attempts[] = {
      "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: app.test\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
  };
  for (const auto& bytes : attempts) {
    Client c(proxy->http_port());
    std::string answer = c.raw(bytes);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << bytes << "\n---\n" << answer;
  }
  EXPECT_EQ(app->connections(), 0);
}

TEST(Proxy, ServerSentEventsArriveAsTheyAreSent) {
  std::promise<void> first_seen;
  auto seen = first_seen.get_future().share();
  Backend sse([seen](tcp::socket& sock) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(sock, buf, req, ec);
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string e1 = "data: one\n\n";
    std::ostringstream c1;
    c1 << std::hex << e1.size() << "\r\n" << e1 << "\r\n";
    asio::write(sock, asio::buffer(head + c1.str()), ec);
    // The second event only once the client has the first: buffering would deadlock.
    if (seen.wait_for(10s) != std::future_status::ready) return;
    std::string e2 = "data: two\n\n";
    std::ostringstream c2;
    c2 << std::hex << e2.size() << "\r\n" << e2 << "\r\n0\r\n\r\n";
    asio::write(sock, asio::buffer(c2.str()), ec);
  });
  auto proxy = start_proxy();
  proxy->set_routes({route("events", "events.test", "/", {sse.address()})});
  Client c(proxy->http_port());
  asio::write(c.socket(),
              asio::buffer(std::string("GET /stream HTTP/1.1\r\nHost: events.test\r\n\r\n")));
  std::string got;
  char b[1024];
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got.find("data: one") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    got.append(b, c.socket().read_some(asio::buffer(b)));
  }
  ASSERT_NE(got.find("data: one"), std::string::npos) << got;
  EXPECT_EQ(got.find("data: two"), std::string::npos);
  first_seen.set_value();
  while (got.find("data: two") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    got.append(b, c.socket().read_some(asio::buffer(b)));
  }
  EXPECT_NE(got.find("data: two"), std::string::npos) << got;
}

TEST(Proxy, WebSocketEchoThroughTheProxy) {
  namespace ws = beast::websocket;
  Backend echo([](tcp::socket& sock) {
    ws::stream<tcp::socket&> s(sock);
    boost::system::error_code ec;
    s.accept(ec);
    while (!ec) {
      beast::flat_buffer buf;
      s.read(buf, ec);
      if (ec) break;
      s.text(s.got_text());
      s.write(buf.data(), ec);
    }
  });
  auto proxy = start_proxy();
  proxy->set_routes({route("chat", "chat.test", "/", {echo.address()})});
  asio::io_context io;
  ws::stream<tcp::socket> client(io);
  client.next_layer().connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), proxy->http_port()));
  client.handshake("chat.test", "/socket");
  for (const std::string& msg :
       {std::string("hello"), std::string(100000, 'z'), std::string("bye")}) {
    client.write(asio::buffer(msg));
    beast::flat_buffer buf;
    client.read(buf);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), msg);
  }
  client.close(ws::close_code::normal);
}

void make_cert(const std::string& dir, const std::string& host) {
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + host +
                    " -addext subjectAltName=DNS:" + host + " -keyout " + dir + "/" + host +
                    ".key -out " + dir + "/" + host + ".crt 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The certificate's subject CN the proxy presents for `sni`, and a GET's answer over it.
std::pair<std::string, std::string> tls_get(uint16_t port, const std::string& sni,
                                            const std::string& ca) {
  namespace ssl = asio::ssl;
  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(ca);
  ctx.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<tcp::socket> s(io, ctx);
  SSL_set_tlsext_host_name(s.native_handle(), sni.c_str());
  s.set_verify_callback(ssl::host_name_verification(sni));
  s.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  s.handshake(ssl::stream_base::client);
  X509* cert = SSL_get1_peer_certificate(s.native_handle());
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  http::request<http::empty_body> req{http::verb::get, "/secure", 11};
  req.set(http::field::host, sni);
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return {cn, res.body()};
}

TEST(Proxy, TerminatesTlsWithEachHostsCertificateAndRedirectsPlainHttp) {
  mill::testing::TempDir dir;
  make_cert(dir.path(), "a.test");
  make_cert(dir.path(), "b.test");
  Backend echo(serve_http([](const auto& req) {
    http::response<http::string_body> res{http::status::ok, 11};
    res.body() = std::string(req["X-Forwarded-Proto"]) + " " + std::string(req[http::field::host]);
    return res;
  }));
  auto proxy = start_proxy();
  auto a = route("a", "a.test", "/", {echo.address()});
  a.tls_cert = slurp(dir.path() + "/a.test.crt");
  a.tls_key = slurp(dir.path() + "/a.test.key");
  a.https_redirect = true;
  auto b = route("b", "b.test", "/", {echo.address()});
  b.tls_cert = slurp(dir.path() + "/b.test.crt");
  b.tls_key = slurp(dir.path() + "/b.test.key");
  proxy->set_routes({a, b});
  ASSERT_NE(proxy->https_port(), 0);

  auto [cn_a, body_a] = tls_get(proxy->https_port(), "a.test", dir.path() + "/a.test.crt");
  EXPECT_EQ(cn_a, "a.test");
  EXPECT_EQ(body_a, "https a.test");
  auto [cn_b, body_b] = tls_get(proxy->https_port(), "b.test", dir.path() + "/b.test.crt");
  EXPECT_EQ(cn_b, "b.test");
  EXPECT_EQ(body_b, "https b.test");

  Client plain(proxy->http_port());
  auto redirect = plain.get("a.test", "/x?y=1");
  EXPECT_EQ(redirect.result_int(), 308);
  EXPECT_EQ(redirect[http::field::location],
            "https://a.test:" + std::to_string(proxy->https_port()) + "/x?y=1");
  EXPECT_EQ(plain.get("b.test", "/").body(), "http b.test");  // no redirect asked for b
}

TEST(Proxy, DrainTakesAnUpstreamOutAndWaitsForItsRequests) {
  std::atomic<int> slow_served{0};
  Backend slow(serve_http([&](const auto& req) {
    std::this_thread::sleep_for(std::chrono::milliseconds(req.target() == "/slow" ? 500 : 0));
    slow_served++;
    http::response<http::string_body> res{http::status::ok, 11};
    res.body() = "old";
    return res;
  }));
  auto other = named("new");
  auto proxy = start_proxy();
  proxy->set_routes({route("svc", "svc.test", "/", {slow.address()})});
  auto in_flight = std::async(std::launch::async, [&] {
    Client c(proxy->http_port());
    return c.get("svc.test", "/slow");
  });
  auto wait_until = std::chrono::steady_clock::now() + 5s;
  while (proxy->in_flight(slow.address()) == 0 && std::chrono::steady_clock::now() < wait_until) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(proxy->in_flight(slow.address()), 1);
  proxy->set_routes({route("svc", "svc.test", "/", {slow.address(), other->address()})});
  auto t0 = std::chrono::steady_clock::now();
  proxy->drain(slow.address(), 10s);
  EXPECT_EQ(proxy->in_flight(slow.address()), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(in_flight.get().body(), "old");  // it finished, it was not cut off
  int before = slow_served.load();
  Client c(proxy->http_port());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(c.get("svc.test", "/").body(), "new /");
  EXPECT_EQ(slow_served.load(), before);
}

TEST(Proxy, NewRouteTablesDoNotDisturbRequestsInFlight) {
  // The slow request is answered only once the test lets it go (or after 30 s).
  auto release = std::make_shared<std::atomic<bool>>(false);
  Backend slow(serve_http([release](const auto& req) {
    if (req.target() == "/slow") {
      auto limit = std::chrono::steady_clock::now() + 30s;
      while (!*release && std::chrono::steady_clock::now() < limit) {
        std::this_thread::sleep_for(5ms);
      }
    }
    http::response<http::string_body> res{http::status::ok, 11};
    res.body() = "done";
    return res;
  }));
  auto proxy = start_proxy();
  proxy->set_routes({route("svc", "svc.test", "/", {slow.address()})});
  auto in_flight = std::async(std::launch::async, [&] {
    Client c(proxy->http_port());
    return c.get("svc.test", "/slow");
  });
  ASSERT_TRUE(
      mill::testing::eventually([&] { return proxy->in_flight(slow.address()) == 1; }, 10s));
  // Each worker picks up every new table while the slow request still uses the first.
  for (int i = 0; i < 5; ++i) {
    proxy->set_routes({route("svc" + std::to_string(i), "svc.test", "/", {slow.address()})});
    for (int j = 0; j < 4; ++j) {
      Client c(proxy->http_port());
      EXPECT_EQ(c.get("svc.test", "/").body(), "done");
    }
  }
  *release = true;
  EXPECT_EQ(in_flight.get().body(), "done");
  // The proxy counts a request once it has written the response, so the client can
  // have the answer before the count is there.
  auto first_route_2xx = [&]() -> std::optional<uint64_t> {
    for (const auto& s : proxy->stats()) {
      if (s.route == "svc") return s.by_class[2];
    }
    return std::nullopt;
  };
  mill::testing::eventually([&] { return first_route_2xx().value_or(0) > 0; }, 5s);
  auto counted = first_route_2xx();
  ASSERT_TRUE(counted.has_value()) << "no stats for the first route";
  EXPECT_EQ(*counted, 1u) << "the slow request counts under the table it started on";
}

TEST(Proxy, SlowClientsAreCutOff) {
  auto app = named("app");
  ProxyOptions o;
  o.header_timeout = 300ms;
  auto proxy = start_proxy(o);
  proxy->set_routes({route("app", "app.test", "/", {app->address()})});
  // Timed from before the connection: the proxy's timer starts at its accept, which
  // may come before this thread reads the clock after connect().
  auto t0 = std::chrono::steady_clock::now();
  Client c(proxy->http_port());
  std::string answer = c.raw("GET / HTTP/1.1\r\nHost: app.te");  // and then nothing
  auto took = std::chrono::steady_clock::now() - t0;
  // The connection is closed, with no answer (Beast's stream closes the socket when its
  // timer fires, so there is nothing to send a 408 on); never before the header
  // timeout, and not much after (a generous bound: the point is that the proxy does
  // not wait on the client forever).
  EXPECT_EQ(answer, "");
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 10s);
  EXPECT_EQ(app->connections(), 0);
  // The proxy goes on serving.
  Client next(proxy->http_port());
  EXPECT_EQ(next.get("app.test", "/").result_int(), 200);
}

TEST(Proxy, CountsRequestsPerRouteAndStatusClass) {
  auto app = named("app");
  auto proxy = start_proxy();
  proxy->set_routes({route("app", "app.test", "/", {app->address()})});
  Client c(proxy->http_port());
  for (int i = 0; i < 5; ++i) c.get("app.test", "/");
  c.get("nowhere.test", "/");
  uint64_t ok = 0, missing = 0, count = 0;
  for (const auto& s : proxy->stats()) {
    if (s.route == "app") {
      ok = s.by_class[2];
      count = s.count;
    }
    if (s.route.empty()) missing = s.by_class[4];
  }
  EXPECT_EQ(ok, 5u);
  EXPECT_EQ(count, 5u);
  EXPECT_EQ(missing, 1u);
}

}  // namespace
}  // namespace mill::proxy
