#include "agent/machine.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace mill::agent {
namespace {

Result<std::string> slurp(const char* path) {
  std::ifstream in(path);
  if (!in) return make_error(ErrorCode::kIo, std::string("cannot read ") + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Value of a "Key:   123 kB" line, in bytes.
std::optional<int64_t> meminfo_field(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string_view line = text.substr(pos, end == std::string_view::npos ? end : end - pos);
    pos = end == std::string_view::npos ? text.size() : end + 1;
    if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':') continue;
    std::string_view rest = line.substr(key.size() + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
    if (ec != std::errc()) return std::nullopt;
    std::string_view unit = std::string_view(p, rest.data() + rest.size() - p);
    return unit.find("kB") != std::string_view::npos ? v * 1024 : v;
  }
  return std::nullopt;
}

}  // namespace

Result<MemInfo> parse_meminfo(std::string_view text) {
  auto total = meminfo_field(text, "MemTotal");
  auto available = meminfo_field(text, "MemAvailable");
  if (!total || !available) {
    return make_error(ErrorCode::kInvalidArgument, "meminfo lacks MemTotal or MemAvailable");
  }
  return MemInfo{*total, *available};
}

Result<CpuTimes> parse_proc_stat(std::string_view text) {
  if (!text.starts_with("cpu ")) {
    return make_error(ErrorCode::kInvalidArgument, "/proc/stat does not start with 'cpu '");
  }
  std::string_view line = text.substr(4, text.find('\n') - 4);
  CpuTimes t;
  int field = 0;
  while (!line.empty()) {
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty()) break;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
    if (ec != std::errc()) return make_error(ErrorCode::kInvalidArgument, "bad /proc/stat field");
    line.remove_prefix(static_cast<size_t>(p - line.data()));
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already counted in user and nice, so it is not added again.
    if (field < 8) t.total += v;
    if (field == 3 || field == 4) t.idle += v;
    ++field;
  }
  if (field < 4) return make_error(ErrorCode::kInvalidArgument, "short /proc/stat cpu line");
  return t;
}

double idle_cores(const CpuTimes& before, const CpuTimes& after, double cores) {
  if (after.total <= before.total || after.idle < before.idle) return cores;
  double fraction = static_cast<double>(after.idle - before.idle) /
                    static_cast<double>(after.total - before.total);
  if (fraction > 1) fraction = 1;
  return cores * fraction;
}

Result<void> sample_disk(const std::string& data_dir, model::Resources& r) {
  struct statvfs fs {};
  if (::statvfs(data_dir.c_str(), &fs) != 0) {
    return make_error(ErrorCode::kIo, "cannot statvfs " + data_dir + ": " + std::strerror(errno));
  }
  const std::string alloc_root = data_dir + "/allocs";
  const auto frsize = static_cast<int64_t>(fs.f_frsize);
  const int64_t size = static_cast<int64_t>(fs.f_blocks) * frsize;
  const int64_t free = static_cast<int64_t>(fs.f_bavail) * frsize;
  int64_t held = 0;
  if (DIR* d = ::opendir(alloc_root.c_str())) {
    while (auto* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      std::string image = alloc_root + "/" + std::string(name) + "/disk.img";
      if (::stat(image.c_str(), &st) == 0) held += static_cast<int64_t>(st.st_blocks) * 512;
    }
    ::closedir(d);
  }
  constexpr int64_t kMaxReserve = int64_t{2} << 30;
  const int64_t reserve = std::min(size / 20, kMaxReserve);
  r.disk_available = free;
  r.disk_total = std::max<int64_t>(0, free + held - reserve);
  return {};
}

Result<model::Resources> MachineSampler::sample() {
  model::Resources r;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  r.cpu_total = online > 0 ? static_cast<double>(online) : 1.0;
  auto mem = MILL_TRY(parse_meminfo(MILL_TRY(slurp("/proc/meminfo"))));
  r.memory_total = mem.total;
  r.memory_available = mem.available;
  if (!last_) {
    last_ = MILL_TRY(parse_proc_stat(MILL_TRY(slurp("/proc/stat"))));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CpuTimes now = MILL_TRY(parse_proc_stat(MILL_TRY(slurp("/proc/stat"))));
  r.cpu_available = idle_cores(*last_, now, r.cpu_total);
  last_ = now;
  if (!data_dir_.empty()) MILL_TRY(sample_disk(data_dir_, r));
  return r;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

std::string primary_address() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "127.0.0.1";
  std::string found = "127.0.0.1";
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET_ADDRSTRLEN] = {};
    auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if (inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text)) {
      found = text;
      break;
    }
  }
  freeifaddrs(list);
  return found;
}

std::vector<std::string> host_addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET_ADDRSTRLEN] = {};
    auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if (inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text)) out.push_back(text);
  }
  freeifaddrs(list);
  return out;
}

}  // namespace mill::agent
