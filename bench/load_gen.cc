// mill_load_gen: an open-loop HTTP/1.1 load generator for the API benchmarks (Debian 12
// has wrk but not wrk2, and plain wrk is closed-loop, so it cannot hold a fixed rate).
//
// Requests are scheduled at a fixed rate (request i at start + i/rate) and spread over
// several keep-alive connections, one request in flight per connection. Latency is
// measured from the *scheduled* send time, not the actual one, so a stalled server
// shows up in the percentiles instead of silently lowering the offered load
// (coordinated omission). One thread, non-blocking sockets, ppoll with ns timeouts.
//
// Usage:
//   mill_load_gen --address 127.0.0.1:4400 [--path /v1/status] [--rate 1000]
//                 [--duration 20] [--warmup 2] [--connections 8] [--token-file FILE]
// Prints a human summary and one machine-readable line starting with "RESULT ".

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Nanos = std::chrono::nanoseconds;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/v1/status";
  double rate = 1000;
  double duration_s = 20;
  double warmup_s = 2;
  int connections = 8;
  std::string token;
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "mill_load_gen: %s\n", message.c_str());
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--address") {
      std::string addr = next();
      size_t colon = addr.rfind(':');
      if (colon == std::string::npos) die("--address must be host:port");
      o.host = addr.substr(0, colon);
      o.port = std::atoi(addr.c_str() + colon + 1);
    } else if (a == "--path") {
      o.path = next();
    } else if (a == "--rate") {
      o.rate = std::atof(next().c_str());
    } else if (a == "--duration") {
      o.duration_s = std::atof(next().c_str());
    } else if (a == "--warmup") {
      o.warmup_s = std::atof(next().c_str());
    } else if (a == "--connections") {
      o.connections = std::atoi(next().c_str());
    } else if (a == "--token-file") {
      std::ifstream in(next());
      if (!in) die("cannot read the token file");
      std::getline(in, o.token);
    } else {
      die("unknown argument " + a);
    }
  }
  if (o.port <= 0 || o.rate <= 0 || o.duration_s <= 0 || o.connections <= 0 || o.warmup_s < 0)
    die("usage: mill_load_gen --address HOST:PORT [--path P] [--rate R] [--duration S] "
        "[--warmup S] [--connections N] [--token-file F]");
  return o;
}

struct Conn {
  int fd = -1;
  bool busy = false;
  Clock::time_point scheduled;  // of the request in flight
  Clock::time_point sent;       // when it actually went out
  bool measured = false;        // false during warm-up
  std::string in;               // response bytes read so far
};

int connect_to(const Options& o) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr) != 1) die("host must be an IPv4 address");
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    die(std::string("connect: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Parses a complete response at the front of buf: returns its length (0 = not complete
// yet) and sets status.
size_t complete_response(const std::string& buf, int& status) {
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  status = buf.size() > 12 ? std::atoi(buf.c_str() + 9) : 0;
  size_t length = 0;
  std::string lower = buf.substr(0, end);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t cl = lower.find("\r\ncontent-length:");
  if (cl != std::string::npos) length = std::strtoul(lower.c_str() + cl + 17, nullptr, 10);
  size_t total = end + 4 + length;
  return buf.size() >= total ? total : 0;
}

double percentile_ms(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t idx = static_cast<size_t>(p * static_cast<double>(sorted.size()));
  if (idx > 0 && static_cast<double>(idx) == p * static_cast<double>(sorted.size())) --idx;
  idx = std::min(idx, sorted.size() - 1);
  return static_cast<double>(sorted[idx]) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // wake on schedule, not up to 50 us late

  std::string request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" +
                        std::to_string(o.port) + "\r\nUser-Agent: mill_load_gen\r\n";
  if (!o.token.empty()) request += "Authorization: Bearer " + o.token + "\r\n";
  request += "\r\n";

  std::vector<Conn> conns(static_cast<size_t>(o.connections));
  for (auto& c : conns) c.fd = connect_to(o);

  const auto interval = Nanos(static_cast<int64_t>(1e9 / o.rate));
  const uint64_t warm_n = static_cast<uint64_t>(o.warmup_s * o.rate);
  const uint64_t total_n = warm_n + static_cast<uint64_t>(o.duration_s * o.rate);
  const auto start = Clock::now() + std::chrono::milliseconds(20);
  auto scheduled = [&](uint64_t i) { return start + interval * static_cast<int64_t>(i); };
  const auto measure_start = scheduled(warm_n);

  struct Pending {
    Clock::time_point at;
    bool measured;
  };
  std::deque<Pending> backlog;     // due, waiting for a free connection
  std::vector<int64_t> latencies;  // from the scheduled send: what a user would see
  std::vector<int64_t> service;    // from the actual send: the server's share alone
  latencies.reserve(total_n);
  service.reserve(total_n);
  uint64_t next = 0, errors = 0, non_200 = 0, reconnects = 0;
  Nanos max_send_lag{0};
  Clock::time_point last_done = start;
  const auto give_up = scheduled(total_n) + std::chrono::seconds(10);

  auto busy_count = [&] {
    return std::count_if(conns.begin(), conns.end(), [](const Conn& c) { return c.busy; });
  };

  std::vector<pollfd> pfds;
  std::vector<Conn*> polled;
  while (next < total_n || !backlog.empty() || busy_count() > 0) {
    auto now = Clock::now();
    if (now > give_up) {
      std::fprintf(stderr, "mill_load_gen: responses still missing 10 s after the end\n");
      errors += static_cast<uint64_t>(busy_count()) + backlog.size();
      break;
    }
    while (next < total_n && scheduled(next) <= now) {
      backlog.push_back({scheduled(next), next >= warm_n});
      ++next;
    }
    for (auto& c : conns) {
      if (backlog.empty()) break;
      if (c.busy) continue;
      Pending p = backlog.front();
      backlog.pop_front();
      ssize_t n = send(c.fd, request.data(), request.size(), MSG_NOSIGNAL);
      if (n != static_cast<ssize_t>(request.size())) {
        ++errors;
        close(c.fd);
        c.fd = connect_to(o);
        ++reconnects;
        continue;
      }
      max_send_lag = std::max(max_send_lag, std::chrono::duration_cast<Nanos>(Clock::now() - p.at));
      c.busy = true;
      c.sent = Clock::now();
      c.scheduled = p.at;
      c.measured = p.measured;
    }

    pfds.clear();
    polled.clear();
    for (auto& c : conns) {
      if (!c.busy) continue;
      pfds.push_back({c.fd, POLLIN, 0});
      polled.push_back(&c);
    }
    Nanos wait = std::chrono::milliseconds(100);
    if (next < total_n) wait = std::max(Nanos(0), scheduled(next) - Clock::now());
    timespec ts{static_cast<time_t>(wait.count() / 1000000000),
                static_cast<long>(wait.count() % 1000000000)};
    int ready = ppoll(pfds.data(), pfds.size(), &ts, nullptr);
    if (ready < 0 && errno != EINTR) die(std::string("ppoll: ") + std::strerror(errno));
    if (ready <= 0) continue;

    for (size_t k = 0; k < pfds.size(); ++k) {
      if (!(pfds[k].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      Conn& c = *polled[k];
      char buf[16384];
      ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {  // the server closed the connection with a request in flight
        ++errors;
        close(c.fd);
        c = Conn{};
        c.fd = connect_to(o);
        ++reconnects;
        continue;
      }
      c.in.append(buf, static_cast<size_t>(n));
      int status = 0;
      size_t len = complete_response(c.in, status);
      if (len == 0) continue;
      auto done = Clock::now();
      c.in.erase(0, len);
      c.busy = false;
      if (status != 200) ++non_200;
      if (c.measured) {
        latencies.push_back(std::chrono::duration_cast<Nanos>(done - c.scheduled).count());
        service.push_back(std::chrono::duration_cast<Nanos>(done - c.sent).count());
        last_done = done;
      }
    }
  }
  for (auto& c : conns) close(c.fd);

  std::sort(latencies.begin(), latencies.end());
  std::sort(service.begin(), service.end());
  double elapsed = std::chrono::duration<double>(last_done - measure_start).count();
  double achieved = elapsed > 0 ? static_cast<double>(latencies.size()) / elapsed : 0;
  double p50 = percentile_ms(latencies, 0.50), p90 = percentile_ms(latencies, 0.90),
         p99 = percentile_ms(latencies, 0.99), p999 = percentile_ms(latencies, 0.999),
         max = latencies.empty() ? 0 : static_cast<double>(latencies.back()) / 1e6;
  std::printf(
      "offered %.0f req/s over %d connections for %.1f s (after %.1f s warm-up): %zu responses, "
      "achieved %.1f req/s, %llu non-200, %llu errors, %llu reconnects\n",
      o.rate, o.connections, o.duration_s, o.warmup_s, latencies.size(), achieved,
      static_cast<unsigned long long>(non_200), static_cast<unsigned long long>(errors),
      static_cast<unsigned long long>(reconnects));
  std::printf(
      "latency from scheduled send (ms): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", p50,
      p90, p99, p999, max);
  std::printf("service time from actual send (ms): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f\n",
              percentile_ms(service, 0.50), percentile_ms(service, 0.90),
              percentile_ms(service, 0.99), percentile_ms(service, 0.999));
  std::printf("generator: max send lag %.3f ms\n", static_cast<double>(max_send_lag.count()) / 1e6);
  std::printf(
      "RESULT rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
      "responses=%zu non200=%llu errors=%llu\n",
      achieved, p50, p90, p99, p999, max, latencies.size(),
      static_cast<unsigned long long>(non_200), static_cast<unsigned long long>(errors));
  return errors == 0 && non_200 == 0 ? 0 : 1;
}
