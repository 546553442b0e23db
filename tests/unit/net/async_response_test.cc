// Answers that come later (long polls) and streamed bodies (SSE), over real sockets.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "net/http_client.h"
#include "net/http_server.h"

namespace mill::net {
namespace {

struct Gone {
  std::mutex mutex;
  std::condition_variable cv;
  bool gone = false;
  std::shared_ptr<ResponseWriter> writer;
};

class AsyncServer : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    auto server =
        HttpServer::create(options, [this](const HttpRequest& req) { return handle(req); });
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
    for (auto& t : threads_) t.join();
  }

  HttpResponse handle(const HttpRequest& req) {
    HttpResponse res;
    if (req.path == "/later") {
      res.async = [this](std::shared_ptr<ResponseWriter> w) {
        threads_.emplace_back([w] {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          HttpResponse r;
          r.status = 202;
          r.body = "{\"done\":true}";
          w->respond(std::move(r));
        });
      };
    } else if (req.path == "/stream") {
      res.async = [this](std::shared_ptr<ResponseWriter> w) {
        threads_.emplace_back([w] {
          w->begin_stream(200, "text/event-stream");
          for (int i = 0; i < 3; ++i) EXPECT_TRUE(w->write("data: " + std::to_string(i) + "\n\n"));
          w->close();
        });
      };
    } else if (req.path == "/never") {
      // A long poll nothing answers: it holds the writer and no socket operation.
      res.async = [this](std::shared_ptr<ResponseWriter> w) {
        std::lock_guard lock(gone_.mutex);
        gone_.writer = w;
      };
    } else if (req.path == "/forever") {
      res.async = [this](std::shared_ptr<ResponseWriter> w) {
        w->on_client_gone([this] {
          std::lock_guard lock(gone_.mutex);
          gone_.gone = true;
          gone_.cv.notify_all();
        });
        w->begin_stream(200, "text/event-stream");
        w->write("data: hello\n\n");
        std::lock_guard lock(gone_.mutex);
        gone_.writer = w;
      };
    } else {
      res.body = "{}";
    }
    return res;
  }

  // A request to `target` on its own thread; `done` is set when the client returns.
  std::thread request_in_background(std::string target, std::promise<void>& done,
                                    std::chrono::seconds timeout) {
    return std::thread([this, target, &done, timeout] {
      ClientRequest req;
      req.target = target;
      req.timeout = timeout;
      (void)http_request(server_->address(), req);  // ended by the server: an end or an error
      done.set_value();
    });
  }

  // Waits until the handler holds the request's writer.
  void wait_for_writer() {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(gone_.mutex);
        if (gone_.writer) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "the handler never got its writer";
  }

  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> threads_;
  Gone gone_;
};

TEST_F(AsyncServer, LaterResponseArrivesAndConnectionIsReusable) {
  ClientRequest req;
  req.target = "/later";
  auto res = http_request(server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 202);
  EXPECT_EQ(res->body, "{\"done\":true}");
}

TEST_F(AsyncServer, StreamDeliversEveryChunkThenEnds) {
  ClientRequest req;
  req.target = "/stream";
  auto res = http_request(server_->address(), req);
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  ASSERT_NE(res->header("Content-Type"), nullptr);
  EXPECT_EQ(*res->header("Content-Type"), "text/event-stream");
}

TEST_F(AsyncServer, ProducerLearnsWhenTheClientLeaves) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string request = "GET /forever HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string got;
  char buf[4096];
  while (got.find("data: hello") == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos);
  ::close(fd);
  std::unique_lock lock(gone_.mutex);
  ASSERT_TRUE(gone_.cv.wait_for(lock, std::chrono::seconds(5), [&] { return gone_.gone; }));
  EXPECT_TRUE(gone_.writer->client_gone());
  EXPECT_FALSE(gone_.writer->write("data: late\n\n"));
}

TEST_F(AsyncServer, StopEndsOpenStreams) {
  std::promise<void> seen;
  std::thread reader = request_in_background("/forever", seen, std::chrono::seconds(10));
  wait_for_writer();
  server_->stop(std::chrono::milliseconds(100));
  EXPECT_EQ(seen.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  reader.join();
  std::lock_guard lock(gone_.mutex);
  EXPECT_TRUE(gone_.gone);
}

// With the long poll as the only live work, the I/O threads must still be there to
// close it when the server stops (they once ran out of work and left it hanging).
TEST_F(AsyncServer, StopEndsPendingLongPolls) {
  std::promise<void> seen;
  std::thread client = request_in_background("/never", seen, std::chrono::seconds(20));
  wait_for_writer();
  auto started = std::chrono::steady_clock::now();
  server_->stop(std::chrono::milliseconds(3000));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  EXPECT_EQ(seen.get_future().wait_for(std::chrono::seconds(2)), std::future_status::ready);
  client.join();
}

// An agent that stops cancels its long poll: the request ends at once, not when the
// server answers it, and later requests with the same token fail without connecting.
TEST_F(AsyncServer, ACancelEndsALongPollInFlightAndLaterRequests) {
  auto token = std::make_shared<CancelToken>();
  Result<ClientResponse> got = make_error(ErrorCode::kInternal, "not run");
  std::promise<void> done;
  std::thread client([&] {
    ClientRequest req;
    req.target = "/never";
    req.timeout = std::chrono::seconds(60);
    req.cancel = token;
    got = http_request(server_->address(), req);
    done.set_value();
  });
  wait_for_writer();
  EXPECT_EQ(done.get_future().wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "the long poll ended before the cancel";
  token->cancel();
  client.join();
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(got.error().message.find("cancelled"), std::string::npos) << got.error().message;

  ClientRequest later;
  later.target = "/";
  later.cancel = token;
  auto again = http_request(server_->address(), later);
  ASSERT_FALSE(again.has_value());
  EXPECT_NE(again.error().message.find("cancelled"), std::string::npos);
  ClientRequest other;  // another token (none): the server is fine
  other.target = "/";
  EXPECT_TRUE(http_request(server_->address(), other).has_value());
}

// Once stop() returns nobody may connect: a client that did (the agent's next long
// poll, say) would wait out its whole timeout for an answer that never comes. The
// listening socket was once closed by a handler that stop() could leave unrun.
TEST(HttpServerStop, ThePortRefusesConnectionsOnceStopReturns) {
  auto try_connect = [](uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    int err = errno;
    ::close(fd);
    return r == 0 ? 0 : err;
  };
  for (int i = 0; i < 30; ++i) {
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    auto server = HttpServer::create(options, [](const HttpRequest&) { return HttpResponse{}; });
    ASSERT_TRUE(server.has_value()) << server.error().message;
    // Every other round stops a server whose I/O threads never ran at all.
    if (i % 2 == 0) (*server)->start();
    const uint16_t port = (*server)->port();
    ASSERT_EQ(try_connect(port), 0);
    (*server)->stop(std::chrono::milliseconds(1000));
    EXPECT_EQ(try_connect(port), ECONNREFUSED) << "round " << i;
  }
}

}  // namespace
}  // namespace mill::net
