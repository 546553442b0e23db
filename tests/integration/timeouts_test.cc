// Slow clients cannot pin the server: a connection that does not deliver a whole
// request in time is closed, while the server keeps answering everyone else.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "harness.h"
#include "net/http.h"

namespace mill::testing {
namespace {

// A raw loopback connection to host:port.
int connect_to(const std::string& address) {
  net::HostPort hp;
  if (!net::parse_host_port(address, hp)) return -1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(hp.port);
  inet_pton(AF_INET, hp.host.c_str(), &sa.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Waits until the peer closes the connection (read returns 0 or an error); returns how
// long that took, or nullopt if it is still open after `limit`.
std::optional<std::chrono::milliseconds> time_until_closed(int fd,
                                                           std::chrono::milliseconds limit) {
  auto start = std::chrono::steady_clock::now();
  char buf[4096];
  while (std::chrono::steady_clock::now() - start < limit) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
      }
    }
  }
  return std::nullopt;
}

TEST(Timeouts, SlowClientsAreCutOffAndOthersStillServed) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir, {"--read-timeout-ms", "500", "--idle-timeout-ms", "800"});
  ASSERT_TRUE(server);

  // Twenty clients that send half a request line and then nothing.
  std::vector<int> slow;
  for (int i = 0; i < 20; ++i) {
    int fd = connect_to(server->address());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "GET /v1/status HTTP/1.1\r\nHost: x\r\n", 34), 34);
    slow.push_back(fd);
  }
  // Meanwhile the server answers a well-behaved client at once.
  EXPECT_EQ(api(server->address(), "GET", "/v1/status", token).status, 200);

  // Each is cut off (a generous bound: the read timeout is half a second; what
  // matters is that none is kept).
  for (int fd : slow) {
    auto closed = time_until_closed(fd, std::chrono::milliseconds(30000));
    ASSERT_TRUE(closed) << "a slow client kept its connection past the read timeout";
    close(fd);
  }

  // An idle kept-alive connection is closed after the idle timeout.
  // Not before it: the timeout counts from the answer, so from before the request
  // at least the idle timeout passes (a lower bound, whatever the machine's load).
  int idle = connect_to(server->address());
  ASSERT_GE(idle, 0);
  timeval quiet{30, 0};
  setsockopt(idle, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof quiet);
  std::string req =
      "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n\r\n";
  auto sent_at = std::chrono::steady_clock::now();
  ASSERT_EQ(write(idle, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  char buf[8192];
  ASSERT_GT(read(idle, buf, sizeof buf), 0);  // the answer
  auto closed = time_until_closed(idle, std::chrono::milliseconds(30000));
  ASSERT_TRUE(closed) << "idle keep-alive connection never closed";
  EXPECT_GE(std::chrono::steady_clock::now() - sent_at, std::chrono::milliseconds(800));
  close(idle);
}

}  // namespace
}  // namespace mill::testing
