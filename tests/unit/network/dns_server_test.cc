// The DNS server on loopback: .mill names from a lookup map, other names forwarded to
// fake upstreams run by the test (never a real resolver).

#include "network/dns_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/command.h"
#include "network/dns_message.h"
#include "network/ipv4.h"
#include "support/require.h"

namespace mill::network {
namespace {

using Bytes = std::vector<uint8_t>;

int udp_socket_on_loopback(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// An upstream resolver stand-in: answers every A query with `answer` (or stays
// silent when `answer` is 0) and records the names it was asked.
class FakeUpstream {
 public:
  explicit FakeUpstream(uint32_t answer) : answer_(answer) {
    fd_ = udp_socket_on_loopback(&port_);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeUpstream() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      uint8_t buf[1500];
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) continue;
      auto q = dns::parse_query(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
      if (!q) continue;
      {
        std::lock_guard lock(mu_);
        asked_.push_back(q->question.name);
      }
      if (answer_ == 0) continue;
      Bytes out = dns::encode_answer(*q, dns::Rcode::kNoError, {answer_}, 60, false);
      ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  uint32_t answer_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> asked_;
  std::thread thread_;
};

// Sends `packet` to the server and waits up to `timeout_ms` for one reply.
std::optional<Bytes> round_trip(uint16_t port, const Bytes& packet, int timeout_ms = 3000) {
  uint16_t mine = 0;
  int fd = udp_socket_on_loopback(&mine);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  pollfd p{fd, POLLIN, 0};
  std::optional<Bytes> out;
  if (::poll(&p, 1, timeout_ms) == 1) {
    Bytes buf(4096);
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n >= 0) {
      buf.resize(static_cast<size_t>(n));
      out = std::move(buf);
    }
  }
  ::close(fd);
  return out;
}

dns::Response ask(uint16_t port, const std::string& name, uint16_t type = dns::kTypeA) {
  auto reply = round_trip(port, dns::encode_query(0x4242, name, type));
  if (!reply) {
    ADD_FAILURE() << "no reply for " << name;
    return {};
  }
  auto r = dns::parse_response(*reply);
  if (!r) {
    ADD_FAILURE() << r.error().to_string();
    return {};
  }
  EXPECT_EQ(r->header.id, 0x4242);
  return *r;
}

class DnsServerTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> upstreams, DnsSettings settings = {}) {
    auto lookup = [this](std::string_view name) {
      auto it = names_.find(std::string(name));
      return it == names_.end() ? std::vector<std::string>{} : it->second;
    };
    auto s = DnsServer::start("127.0.0.1:0", lookup, std::move(upstreams), settings);
    ASSERT_TRUE(s) << s.error().to_string();
    server_ = std::move(*s);
    ASSERT_NE(server_->port(), 0);
  }
  // Read-only once the server runs, so the lookup needs no lock.
  std::map<std::string, std::vector<std::string>> names_ = {
      {"task-x.mill", {"10.99.1.5"}},
      {"office.mill", {"10.99.1.6", "10.99.2.7", "not-an-ip"}},
  };
  std::unique_ptr<DnsServer> server_;
};

TEST_F(DnsServerTest, DigResolvesMillNames) {
  start({});
  auto r = run_command({"dig", "@127.0.0.1", "-p", std::to_string(server_->port()), "+short",
                        "+tries=3", "+time=3", "Task-X.mill"});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->output, "10.99.1.5\n");
  r = run_command({"dig", "@127.0.0.1", "-p", std::to_string(server_->port()), "+tries=3",
                   "+time=3", "nothing.mill"});
  ASSERT_TRUE(r);
  EXPECT_NE(r->output.find("status: NXDOMAIN"), std::string::npos) << r->output;
}

TEST_F(DnsServerTest, AnswersFromTheLookup) {
  start({});
  auto r = ask(server_->port(), "office.mill");
  EXPECT_EQ(r.header.rcode, dns::Rcode::kNoError);
  EXPECT_EQ(r.a, (std::vector<uint32_t>{*parse_ipv4("10.99.1.6"), *parse_ipv4("10.99.2.7")}));
  r = ask(server_->port(), "gone.mill");
  EXPECT_EQ(r.header.rcode, dns::Rcode::kNxDomain);
  // The name exists but has no IPv6 address: empty NOERROR, so clients fall back to A.
  r = ask(server_->port(), "task-x.mill", dns::kTypeAaaa);
  EXPECT_EQ(r.header.rcode, dns::Rcode::kNoError);
  EXPECT_TRUE(r.a.empty());
  r = ask(server_->port(), "gone.mill", dns::kTypeAaaa);
  EXPECT_EQ(r.header.rcode, dns::Rcode::kNxDomain);
}

TEST_F(DnsServerTest, ForwardsOtherNamesToTheUpstream) {
  FakeUpstream upstream(*parse_ipv4("192.0.2.77"));
  start({upstream.address()});
  auto r = ask(server_->port(), "www.example.com");
  EXPECT_EQ(r.header.rcode, dns::Rcode::kNoError);
  EXPECT_EQ(r.a, std::vector<uint32_t>{*parse_ipv4("192.0.2.77")});
  auto d = run_command({"dig", "@127.0.0.1", "-p", std::to_string(server_->port()), "+short",
                        "+tries=1", "+time=3", "db.internal"});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->output, "192.0.2.77\n");
  EXPECT_EQ(upstream.asked(), (std::vector<std::string>{"www.example.com", "db.internal"}));
  ask(server_->port(), "task-x.mill");
  EXPECT_EQ(upstream.asked().size(), 2u) << ".mill names never go upstream";
}

TEST_F(DnsServerTest, FailsOverToTheNextUpstreamAndServfailsWhenAllFail) {
  FakeUpstream silent(0);
  FakeUpstream good(*parse_ipv4("192.0.2.9"));
  DnsSettings fast;
  fast.upstream_timeout_ms = 200;
  start({silent.address(), good.address()}, fast);
  auto r = ask(server_->port(), "a.example");
  EXPECT_EQ(r.a, std::vector<uint32_t>{*parse_ipv4("192.0.2.9")});
  EXPECT_EQ(silent.asked(), std::vector<std::string>{"a.example"});

  server_.reset();
  start({silent.address()}, fast);
  r = ask(server_->port(), "b.example");
  EXPECT_EQ(r.header.rcode, dns::Rcode::kServFail);

  server_.reset();
  start({});
  r = ask(server_->port(), "c.example");
  EXPECT_EQ(r.header.rcode, dns::Rcode::kServFail);
}

TEST_F(DnsServerTest, SurvivesMalformedPackets) {
  start({});
  EXPECT_FALSE(round_trip(server_->port(), Bytes{1, 2, 3}, 200)) << "too short: no reply";
  Bytes response = dns::encode_query(5, "x.mill", dns::kTypeA);
  response[2] |= 0x80;
  EXPECT_FALSE(round_trip(server_->port(), response, 200)) << "answers are never answered";
  Bytes broken = dns::encode_query(6, "x.mill", dns::kTypeA);
  broken.resize(15);
  auto reply = round_trip(server_->port(), broken);
  ASSERT_TRUE(reply);
  auto r = dns::parse_response(*reply);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.id, 6);
  EXPECT_EQ(r->header.rcode, dns::Rcode::kFormErr);
  EXPECT_EQ(ask(server_->port(), "task-x.mill").a.size(), 1u) << "still serving";
}

TEST(DnsServer, RejectsBadAddressesAndStopsTwice) {
  auto none = [](std::string_view) { return std::vector<std::string>{}; };
  EXPECT_EQ(DnsServer::start("nope", none, {}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(DnsServer::start("127.0.0.1:99999", none, {}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DnsServer::start("127.0.0.1:0", none, {"1.2.3"}).error().code,
            ErrorCode::kInvalidArgument);
}

// Whether this host can bind UDP on the IPv6 loopback (some containers have no ::1).
bool ipv6_loopback() {
  int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Binding UDP on ::1 with port `port`: true once nobody holds it.
bool udp6_port_free(uint16_t port) {
  int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(port);
  bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}

TEST(DnsServer, ListensOnIpv6AndStopReleasesThePortEvenTwice) {
  MILL_REQUIRE(ipv6_loopback(), "an IPv6 loopback address (::1)");
  auto none = [](std::string_view) { return std::vector<std::string>{}; };
  auto s = DnsServer::start("[::1]:0", none, {"::1", "[::1]:5353", "127.0.0.1:53"});
  ASSERT_TRUE(s) << s.error().to_string();
  uint16_t port = (*s)->port();
  ASSERT_NE(port, 0);
  EXPECT_FALSE(udp6_port_free(port)) << "the server does not hold its port";
  (*s)->stop();
  (*s)->stop();
  EXPECT_TRUE(udp6_port_free(port)) << "stop() left the port bound";
}

}  // namespace
}  // namespace mill::network
