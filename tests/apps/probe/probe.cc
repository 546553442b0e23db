// mill_probe: the program inside Mill's test images. A tiny HTTP/1.1 server (one
// thread per connection, Connection: close) whose endpoints let a test see and steer
// the container from outside: environment, hostname, PID, cgroup limits, logs, exit
// codes, crashes, memory use, slow answers, SIGTERM handling.
//
// Built static, no Boost, plain POSIX, so an image needs nothing but this file.
//
//   PORT=8080 (default; 0 picks a free one)   prints "listening on :PORT"
//   --ignore-sigterm or IGNORE_SIGTERM=1       SIGTERM is ignored; otherwise it
//                                              prints "got SIGTERM" and exits 0
//   --log-every MS                             prints "tick N" every MS ms
//   READY_AFTER_MS=N                           creates /ready N ms after it starts
//
// As a health-check command run in the container (`runc exec`), not a server:
//   --check PATH     exits 0 when PATH exists, else prints "PATH is missing", exits 3
//   --hang           never exits
//
//   GET /health                      200 "ok"
//   GET /env                         K=V lines
//   GET /hostname, /pid              gethostname(), getpid()
//   GET /init                        the name of PID 1 (/proc/1/comm)
//   GET /cgroup                      memory_max, cpu_quota, cpu_period, pids_max lines
//   GET /log?line=T&stream=stdout|stderr&count=N   prints T N times (default 1, stdout)
//   GET /exit?code=N                 answers, then exits with N
//   GET /crash                       abort(), no answer
//   GET /alloc?mb=N                  allocates, touches and keeps N MB
//   GET /sleep?ms=N                  answers after N ms
//   GET /spin?ms=N                   keeps one core busy for N ms, then answers
//                                    "spun N cpu_ms M": M is the CPU time the probe
//                                    has used so far (getrusage, user + system)
//   GET /forkbomb                    answers, then every process forks forever
//   GET /fill?mb=N                   writes N MB to /fill (synced): "wrote N MB", or
//                                    "error after M MB: <strerror>"
//   GET /connect?addr=IP:PORT&ms=N   a TCP connect from the container, waiting up to N ms
//                                    (default 3000): "ok", "refused", "unreachable",
//                                    "timeout" or "error: ..."
//   GET /knock?addrs=IP:PORT,...&ms=N one /connect round over the addresses, answered as
//                                    "ADDR RESULT MS" lines (MS: how long that connect
//                                    took); then knocks at them all again, round after
//                                    round with no pause, until the probe ends
//   GET /dns?name=N&server=IP[:PORT] an A query over UDP (default: the nameserver of
//                                    /etc/resolv.conf, port 53): the addresses, one a
//                                    line, or "nxdomain", "timeout", "error: ..."

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace {

// Whole lines in one write(2): unbuffered, so nothing is lost on exit or abort, and
// lines from different threads never interleave.
void print_line(int fd, std::string_view text) {
  std::string line(text);
  line += '\n';
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

void on_sigterm(int) {
  static constexpr char kMessage[] = "got SIGTERM\n";
  ssize_t ignored = ::write(STDOUT_FILENO, kMessage, sizeof kMessage - 1);
  (void)ignored;
  ::_exit(0);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 &&
               hex_value(in[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

std::string query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      return eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

long number_param(std::string_view query, std::string_view key, long fallback) {
  std::string text = query_param(query, key);
  if (text.empty()) return fallback;
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  return *end == '\0' ? value : fallback;
}

std::string first_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return line;
}

// This process's cgroup dir: inside a cgroup namespace (or with the container's
// cgroup bind-mounted) it is the mount root itself, else the path /proc names.
std::string cgroup_file(const std::string& controller_root, const std::string& rel,
                        const std::string& name) {
  std::string nested = controller_root + rel + "/" + name;
  if (std::ifstream(nested)) return nested;
  return controller_root + "/" + name;
}

std::string cgroup_report() {
  std::ifstream in("/proc/self/cgroup");
  std::string line, v2_path, memory_path, cpu_path, pids_path;
  while (std::getline(in, line)) {
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (path == "/") path.clear();
    if (controllers.empty()) v2_path = path;
    std::stringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');) {
      if (c == "memory") memory_path = path;
      if (c == "cpu") cpu_path = path;
      if (c == "pids") pids_path = path;
    }
  }
  auto value = [](const std::string& file) {
    std::string v = first_line_of(file);
    return v.empty() ? std::string("unknown") : v;
  };
  std::string out;
  if (std::ifstream("/sys/fs/cgroup/cgroup.controllers")) {  // v2
    const std::string root = "/sys/fs/cgroup";
    std::string cpu = value(cgroup_file(root, v2_path, "cpu.max"));  // "quota period"
    size_t space = cpu.find(' ');
    out += "cgroup=v2\n";
    out += "memory_max=" + value(cgroup_file(root, v2_path, "memory.max")) + "\n";
    out += "cpu_quota=" + cpu.substr(0, space) + "\n";
    out += "cpu_period=" + (space == std::string::npos ? "unknown" : cpu.substr(space + 1)) + "\n";
    out += "pids_max=" + value(cgroup_file(root, v2_path, "pids.max")) + "\n";
  } else {  // v1
    out += "cgroup=v1\n";
    out += "memory_max=" +
           value(cgroup_file("/sys/fs/cgroup/memory", memory_path, "memory.limit_in_bytes")) + "\n";
    out += "cpu_quota=" + value(cgroup_file("/sys/fs/cgroup/cpu", cpu_path, "cpu.cfs_quota_us")) +
           "\n";
    out += "cpu_period=" + value(cgroup_file("/sys/fs/cgroup/cpu", cpu_path, "cpu.cfs_period_us")) +
           "\n";
    out += "pids_max=" + value(cgroup_file("/sys/fs/cgroup/pids", pids_path, "pids.max")) + "\n";
  }
  return out;
}

std::mutex g_kept_mutex;
std::vector<std::vector<char>> g_kept;  // /alloc memory, kept until exit

// "IP:PORT" (PORT defaulting to `port`) as a socket address; false when malformed.
bool parse_address(const std::string& text, uint16_t port, sockaddr_in& out) {
  std::string ip = text;
  if (size_t colon = text.rfind(':'); colon != std::string::npos) {
    ip = text.substr(0, colon);
    port = static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1));
  }
  out = sockaddr_in{};
  out.sin_family = AF_INET;
  out.sin_port = htons(port);
  return port != 0 && ::inet_pton(AF_INET, ip.c_str(), &out.sin_addr) == 1;
}

std::string try_connect(const std::string& addr, long ms) {
  sockaddr_in to{};
  if (!parse_address(addr, 0, to)) return "error: bad addr";
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("error: ") + std::strerror(errno);
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(ms)) <= 0) {
        ::close(fd);
        return "timeout";
      }
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
  }
  ::close(fd);
  if (err == 0) return "ok";
  if (err == ECONNREFUSED) return "refused";
  if (err == EHOSTUNREACH || err == ENETUNREACH || err == EACCES || err == EPERM) {
    return "unreachable";
  }
  return std::string("error: ") + std::strerror(err);
}

std::string resolv_conf_nameserver() {
  std::ifstream in("/etc/resolv.conf");
  std::string word, server;
  while (in >> word) {
    if (word == "nameserver" && in >> server) return server;
  }
  return "";
}

// One A query, one answer: enough for a test to see whether the node's DNS answers.
std::string dns_query(const std::string& name, std::string server) {
  if (server.empty()) server = resolv_conf_nameserver();
  sockaddr_in to{};
  if (!parse_address(server, 53, to)) return "error: bad server";
  std::string q("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = std::min(name.find('.', start), name.size());
    q += static_cast<char>(dot - start);
    q += name.substr(start, dot - start);
    start = dot + 1;
  }
  q += std::string("\x00\x00\x01\x00\x01", 5);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("error: ") + std::strerror(errno);
  unsigned char buf[1500];
  ssize_t n = -1;
  if (::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    int err = errno;
    ::close(fd);
    return std::string("error: ") + std::strerror(err);
  }
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 3000) > 0) n = ::recv(fd, buf, sizeof buf, 0);
  int err = errno;
  ::close(fd);
  if (n < 0) return p.revents == 0 ? "timeout" : std::string("error: ") + std::strerror(err);
  if (n < 12) return "error: short answer";
  if ((buf[3] & 0x0f) == 3) return "nxdomain";
  size_t at = 12;
  auto skip_name = [&] {
    while (at < static_cast<size_t>(n)) {
      unsigned char len = buf[at];
      if ((len & 0xc0) == 0xc0) {
        at += 2;
        return;
      }
      at += 1 + len;
      if (len == 0) return;
    }
  };
  skip_name();
  at += 4;  // the question's type and class
  std::string out;
  for (int i = 0, answers = buf[6] << 8 | buf[7]; i < answers; ++i) {
    skip_name();
    if (at + 10 > static_cast<size_t>(n)) break;
    int type = buf[at] << 8 | buf[at + 1];
    size_t len = static_cast<size_t>(buf[at + 8] << 8 | buf[at + 9]);
    at += 10;
    if (type == 1 && len == 4 && at + 4 <= static_cast<size_t>(n)) {
      char ip[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, buf + at, ip, sizeof ip);
      out += std::string(ip) + "\n";
    }
    at += len;
  }
  return out.empty() ? "empty" : out;
}

struct Reply {
  int status = 200;
  std::string body;
  int exit_code = -1;  // >= 0: exit with it once the answer is sent
};

Reply handle(std::string_view path, std::string_view query) {
  if (path == "/health") return {200, "ok"};
  if (path == "/env") {
    std::string body;
    for (char** e = environ; *e != nullptr; ++e) body += std::string(*e) + "\n";
    return {200, body};
  }
  if (path == "/hostname") {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return {200, name};
  }
  if (path == "/pid") return {200, std::to_string(::getpid())};
  if (path == "/init") {  // what runs as PID 1 in this pid namespace
    std::ifstream comm("/proc/1/comm");
    std::string name;
    std::getline(comm, name);
    return {200, name};
  }
  if (path == "/cgroup") return {200, cgroup_report()};
  if (path == "/log") {
    int fd = query_param(query, "stream") == "stderr" ? STDERR_FILENO : STDOUT_FILENO;
    std::string line = query_param(query, "line");
    long count = number_param(query, "count", 1);
    for (long i = 0; i < count; ++i) print_line(fd, line);
    return {200, "logged " + std::to_string(count < 0 ? 0 : count)};
  }
  if (path == "/exit") {
    long code = number_param(query, "code", 0);
    return {200, "exiting " + std::to_string(code), static_cast<int>(code & 0xff)};
  }
  if (path == "/crash") std::abort();
  if (path == "/alloc") {
    long mb = number_param(query, "mb", 0);
    if (mb < 0) return {400, "bad mb"};
    std::vector<char> block(static_cast<size_t>(mb) << 20);
    for (size_t i = 0; i < block.size(); i += 4096) block[i] = 1;  // touch every page
    std::lock_guard lock(g_kept_mutex);
    g_kept.push_back(std::move(block));
    return {200, "allocated " + std::to_string(mb) + " MB"};
  }
  if (path == "/sleep") {
    long ms = number_param(query, "ms", 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return {200, "slept " + std::to_string(ms)};
  }
  if (path == "/spin") {
    long ms = number_param(query, "ms", 0);
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
    }
    struct rusage ru {};
    ::getrusage(RUSAGE_SELF, &ru);
    long cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                  (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
    return {200, "spun " + std::to_string(ms) + " cpu_ms " + std::to_string(cpu_ms)};
  }
  if (path == "/fill") {
    long mb = number_param(query, "mb", 0);
    int fd = ::open("/fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return {200, std::string("error after 0 MB: ") + std::strerror(errno)};
    std::string chunk(1 << 20, 'x');
    long written = 0;
    std::string error;
    for (; written < mb && error.empty(); ++written) {
      for (size_t done = 0; done < chunk.size() && error.empty();) {
        ssize_t n = ::write(fd, chunk.data() + done, chunk.size() - done);
        if (n < 0 && errno != EINTR) error = std::strerror(errno);
        if (n > 0) done += static_cast<size_t>(n);
      }
    }
    if (error.empty() && ::fsync(fd) != 0) error = std::strerror(errno);
    ::close(fd);
    if (!error.empty()) {
      return {200, "error after " + std::to_string(written - 1) + " MB: " + error};
    }
    return {200, "wrote " + std::to_string(written) + " MB"};
  }
  if (path == "/forkbomb") {
    std::thread([] {
      // After the answer went out, so no child holds the connection open.
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      for (;;) ::fork();
    }).detach();
    return {200, "forking"};
  }
  if (path == "/connect") {
    return {200, try_connect(query_param(query, "addr"), number_param(query, "ms", 3000))};
  }
  if (path == "/knock") {
    std::vector<std::string> addrs;
    std::istringstream list(query_param(query, "addrs"));
    for (std::string a; std::getline(list, a, ',');) {
      if (!a.empty()) addrs.push_back(a);
    }
    if (addrs.empty()) return {400, "no addrs"};
    const long ms = number_param(query, "ms", 3000);
    std::string out;
    for (const auto& a : addrs) {
      auto start = std::chrono::steady_clock::now();
      std::string result = try_connect(a, ms);
      auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
      out += a + " " + result + " " + std::to_string(took) + "\n";
    }
    std::thread([addrs, ms] {
      for (;;) {
        for (const auto& a : addrs) (void)try_connect(a, ms);
      }
    }).detach();
    return {200, out};
  }
  if (path == "/dns")
    return {200, dns_query(query_param(query, "name"), query_param(query, "server"))};
  return {404, "not found"};
}

bool send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void serve(int fd) {
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return;
    }
    request.append(buf, static_cast<size_t>(n));
  }
  // "GET /path?query HTTP/1.1"
  size_t sp1 = request.find(' ');
  size_t sp2 = sp1 == std::string::npos ? sp1 : request.find(' ', sp1 + 1);
  Reply reply{400, "bad request"};
  if (sp2 != std::string::npos) {
    std::string_view target(request.data() + sp1 + 1, sp2 - sp1 - 1);
    size_t q = target.find('?');
    std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
    reply = handle(target.substr(0, q), query);
  }
  const std::string& body = reply.body;
  std::string head =
      "HTTP/1.1 " + std::to_string(reply.status) + (reply.status == 200 ? " OK" : " Error") +
      "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  send_all(fd, head + body);
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
  // _exit: other threads may still be running; every output is already written.
  if (reply.exit_code >= 0) ::_exit(reply.exit_code);
}

}  // namespace

int main(int argc, char** argv) {
  bool ignore_sigterm = false;
  long log_every_ms = 0;
  if (const char* env = std::getenv("IGNORE_SIGTERM"); env != nullptr && std::string(env) == "1") {
    ignore_sigterm = true;
  }
  if (argc == 3 && std::string(argv[1]) == "--check") {
    if (::access(argv[2], F_OK) == 0) return 0;
    print_line(STDERR_FILENO, std::string(argv[2]) + " is missing");
    return 3;
  }
  if (argc == 2 && std::string(argv[1]) == "--hang") {
    for (;;) ::pause();
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--ignore-sigterm") {
      ignore_sigterm = true;
    } else if (arg == "--log-every" && i + 1 < argc) {
      log_every_ms = std::atol(argv[++i]);
    } else {
      print_line(STDERR_FILENO, "usage: mill_probe [--ignore-sigterm] [--log-every MS]");
      return 2;
    }
  }

  struct sigaction action {};
  action.sa_handler = ignore_sigterm ? SIG_IGN : on_sigterm;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);

  const char* port_env = std::getenv("PORT");
  int port = port_env != nullptr && *port_env != '\0' ? std::atoi(port_env) : 8080;
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 128) != 0) {
    print_line(STDERR_FILENO, std::string("mill_probe: cannot listen: ") + std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  print_line(STDOUT_FILENO, "listening on :" + std::to_string(ntohs(addr.sin_port)));

  if (const char* env = std::getenv("READY_AFTER_MS"); env != nullptr && *env != '\0') {
    long ms = std::atol(env);
    std::thread([ms] {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      int fd = ::open("/ready", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd >= 0) ::close(fd);
    }).detach();
  }
  if (log_every_ms > 0) {
    std::thread([log_every_ms] {
      for (long n = 1;; ++n) {
        print_line(STDOUT_FILENO, "tick " + std::to_string(n));
        std::this_thread::sleep_for(std::chrono::milliseconds(log_every_ms));
      }
    }).detach();
  }
  for (;;) {
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread(serve, fd).detach();
  }
}
