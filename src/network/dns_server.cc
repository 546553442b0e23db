#include "network/dns_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>

#include "common/files.h"
#include "common/log.h"
#include "network/dns_message.h"
#include "network/ipv4.h"

namespace mill::network {
namespace {

using Clock = std::chrono::steady_clock;

struct SockAddr {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family() const { return addr.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

// "1.2.3.4", "1.2.3.4:53", "::1", "[::1]:53", "fe80::1%eth0".
Result<SockAddr> parse_endpoint(std::string_view text, uint16_t default_port) {
  std::string host(text);
  std::string port = std::to_string(default_port);
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "bad address '" + std::string(text) + "'");
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':')
        return make_error(ErrorCode::kInvalidArgument, "bad address '" + std::string(text) + "'");
      port = host.substr(close + 2);
    }
    host = host.substr(1, close - 1);
  } else if (size_t colon = host.find(':');
             colon != std::string::npos && host.find(':', colon + 1) == std::string::npos) {
    port = host.substr(colon + 1);  // exactly one ':' means IPv4:port
    host = host.substr(0, colon);
  }
  if (host.find(':') == std::string::npos) {
    // inet_pton, not getaddrinfo: that also takes legacy forms like "1.2.3".
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    int port_num = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_num);
    if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) != 1 || ec != std::errc() ||
        end != port.data() + port.size() || port_num < 0 || port_num > 65535) {
      return make_error(ErrorCode::kInvalidArgument, "bad address '" + std::string(text) + "'");
    }
    v4.sin_port = htons(static_cast<uint16_t>(port_num));
    SockAddr out;
    std::memcpy(&out.addr, &v4, sizeof v4);
    out.len = sizeof v4;
    return out;
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (host.empty() || port.empty() || getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) {
    return make_error(ErrorCode::kInvalidArgument, "bad address '" + std::string(text) + "'");
  }
  SockAddr out;
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.len = res->ai_addrlen;
  freeaddrinfo(res);
  return out;
}

bool is_mill_name(std::string_view name) {
  return name == "mill" || (name.size() > 5 && name.substr(name.size() - 5) == ".mill");
}

}  // namespace

struct DnsServer::State {
  struct Pending {
    int fd = -1;
    SockAddr client;
    std::vector<uint8_t> query;
    dns::Header header;
    size_t next_upstream = 0;  // the one after the upstream `fd` talks to
    Clock::time_point deadline;
  };

  int listen_fd = -1;
  int wake_fd = -1;
  NameLookup lookup;
  std::vector<SockAddr> upstreams;
  DnsSettings settings;
  std::vector<Pending> pending;

  ~State() {
    for (auto& p : pending) ::close(p.fd);
    if (listen_fd >= 0) ::close(listen_fd);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void reply(const SockAddr& to, const std::vector<uint8_t>& msg) {
    ::sendto(listen_fd, msg.data(), msg.size(), MSG_DONTWAIT, to.get(), to.len);
  }

  void run() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      fds.push_back({listen_fd, POLLIN, 0});
      for (const auto& p : pending) fds.push_back({p.fd, POLLIN, 0});
      int timeout = -1;
      auto now = Clock::now();
      for (const auto& p : pending) {
        auto ms = std::chrono::ceil<std::chrono::milliseconds>(p.deadline - now).count();
        ms = std::max<long long>(ms, 0);
        if (timeout < 0 || ms < timeout) timeout = static_cast<int>(ms);
      }
      if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
        log::error(std::string("dns: poll: ") + strerror(errno));
        return;
      }
      if (fds[0].revents != 0) return;  // stop()
      // Upstream answers first, in reverse so erasing keeps the other indexes valid.
      for (size_t i = fds.size(); i-- > 2;) {
        if (fds[i].revents != 0) on_upstream(i - 2);
      }
      expire(Clock::now());
      if (fds[1].revents & POLLIN) drain_queries();
    }
  }

  void drain_queries() {
    uint8_t buf[4096];
    for (int i = 0; i < 64; ++i) {  // then let upstream answers and timeouts in
      SockAddr from;
      from.len = sizeof from.addr;
      ssize_t n = ::recvfrom(listen_fd, buf, sizeof buf, MSG_DONTWAIT,
                             reinterpret_cast<sockaddr*>(&from.addr), &from.len);
      if (n < 0) return;
      on_query(from, std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    }
  }

  void on_query(const SockAddr& from, std::span<const uint8_t> packet) {
    auto header = dns::parse_header(packet);
    if (!header || header->response) return;  // never answer an answer
    auto query = dns::parse_query(packet);
    if (!query) {
      auto rcode = header->opcode != 0 ? dns::Rcode::kNotImp : dns::Rcode::kFormErr;
      reply(from, dns::encode_error(*header, rcode));
      return;
    }
    if (is_mill_name(query->question.name)) {
      reply(from, answer_locally(*query));
    } else {
      forward(from, packet, *header);
    }
  }

  std::vector<uint8_t> answer_locally(const dns::Query& q) {
    auto ttl = static_cast<uint32_t>(settings.ttl_seconds);
    if (q.question.klass != dns::kClassIn && q.question.klass != dns::kClassAny) {
      return dns::encode_answer(q, dns::Rcode::kRefused, {}, ttl, true);
    }
    std::vector<std::string> found;
    try {
      found = lookup(q.question.name);
    } catch (const std::exception& e) {
      log::warn(std::string("dns: lookup failed: ") + e.what());
      return dns::encode_answer(q, dns::Rcode::kServFail, {}, ttl, false);
    }
    std::vector<uint32_t> addrs;
    for (const auto& text : found) {
      if (auto a = parse_ipv4(text)) addrs.push_back(*a);
    }
    if (addrs.empty()) return dns::encode_answer(q, dns::Rcode::kNxDomain, {}, ttl, true);
    bool wants_a = q.question.type == dns::kTypeA || q.question.type == dns::kTypeAny;
    // The name exists; other types (AAAA...) get an empty NOERROR, not NXDOMAIN.
    return dns::encode_answer(q, dns::Rcode::kNoError, wants_a ? addrs : std::vector<uint32_t>{},
                              ttl, true);
  }

  void forward(const SockAddr& from, std::span<const uint8_t> packet, const dns::Header& h) {
    if (pending.size() >= settings.max_pending) {
      reply(from, dns::encode_error(h, dns::Rcode::kServFail));
      return;
    }
    Pending p;
    p.client = from;
    p.query.assign(packet.begin(), packet.end());
    p.header = h;
    if (send_next(p)) pending.push_back(std::move(p));
  }

  // Sends p's query to its next upstream that accepts it, on a fresh socket (a random
  // source port per query, and only that upstream's answers reach it). When none is
  // left, answers SERVFAIL and returns false.
  bool send_next(Pending& p) {
    if (p.fd >= 0) ::close(p.fd);
    p.fd = -1;
    while (p.next_upstream < upstreams.size()) {
      const SockAddr& up = upstreams[p.next_upstream++];
      int fd = ::socket(up.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      if (::connect(fd, up.get(), up.len) == 0 &&
          ::send(fd, p.query.data(), p.query.size(), 0) == static_cast<ssize_t>(p.query.size())) {
        p.fd = fd;
        p.deadline = Clock::now() + std::chrono::milliseconds(settings.upstream_timeout_ms);
        return true;
      }
      ::close(fd);
    }
    reply(p.client, dns::encode_error(p.header, dns::Rcode::kServFail));
    return false;
  }

  void on_upstream(size_t index) {
    Pending& p = pending[index];
    uint8_t buf[65536];
    ssize_t n = ::recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      // ECONNREFUSED and friends: that upstream is not there; try the next one now.
      if (!send_next(p)) drop(index);
      return;
    }
    auto h = dns::parse_header(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    if (!h || !h->response || h->id != p.header.id) return;  // not the answer; keep waiting
    ::sendto(listen_fd, buf, static_cast<size_t>(n), MSG_DONTWAIT, p.client.get(), p.client.len);
    drop(index);
  }

  void expire(Clock::time_point now) {
    for (size_t i = pending.size(); i-- > 0;) {
      if (pending[i].deadline <= now && !send_next(pending[i])) drop(i);
    }
  }

  void drop(size_t index) {
    if (pending[index].fd >= 0) ::close(pending[index].fd);
    pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(index));
  }
};

DnsServer::DnsServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<DnsServer>> DnsServer::start(std::string listen, NameLookup lookup,
                                                    std::vector<std::string> upstreams,
                                                    DnsSettings settings) {
  auto state = std::make_unique<State>();
  state->lookup = std::move(lookup);
  state->settings = settings;
  for (const auto& u : upstreams) state->upstreams.push_back(MILL_TRY(parse_endpoint(u, 53)));
  auto addr = MILL_TRY(parse_endpoint(listen, 53));
  state->listen_fd = ::socket(addr.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (state->listen_fd < 0 || ::bind(state->listen_fd, addr.get(), addr.len) != 0) {
    return make_error(ErrorCode::kIo, "dns: bind " + listen + ": " + strerror(errno));
  }
  state->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state->wake_fd < 0) return make_error(ErrorCode::kIo, "dns: eventfd failed");
  SockAddr bound;
  bound.len = sizeof bound.addr;
  ::getsockname(state->listen_fd, reinterpret_cast<sockaddr*>(&bound.addr), &bound.len);
  std::unique_ptr<DnsServer> server(new DnsServer(std::move(state)));
  server->port_ =
      ntohs(bound.family() == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound.addr)->sin6_port
                                       : reinterpret_cast<sockaddr_in*>(&bound.addr)->sin_port);
  try {
    server->thread_ = std::thread([s = server->state_.get()] { s->run(); });
  } catch (const std::system_error& e) {
    return make_error(ErrorCode::kIo, std::string("dns: thread: ") + e.what());
  }
  return server;
}

DnsServer::~DnsServer() { stop(); }

void DnsServer::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(state_->wake_fd, &one, sizeof one);
  thread_.join();
  state_.reset();
}

std::vector<std::string> parse_resolv_conf(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty() && out.size() < 3) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    auto next_word = [&line]() {
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string_view::npos) return std::string_view();
      line.remove_prefix(start);
      size_t end = line.find_first_of(" \t\r");
      std::string_view word = line.substr(0, end);
      line.remove_prefix(word.size());
      return word;
    };
    if (next_word() != "nameserver") continue;  // comments start with '#' or ';'
    std::string_view addr = next_word();
    if (!addr.empty() && addr.front() != '#' && addr.front() != ';') out.emplace_back(addr);
  }
  return out;
}

std::vector<std::string> system_upstreams() {
  auto text = read_file("/etc/resolv.conf");
  return text ? parse_resolv_conf(*text) : std::vector<std::string>{};
}

}  // namespace mill::network
