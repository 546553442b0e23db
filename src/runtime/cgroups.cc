#include "runtime/cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "common/files.h"

namespace mill::runtime {
namespace {

namespace fs = std::filesystem;

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

int64_t to_int(std::string_view s) {
  int64_t v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() ? v : -1;
}

bool has_controller(const CgroupMount& m, std::string_view c) {
  for (const auto& x : m.controllers) {
    if (x == c) return true;
  }
  return false;
}

Result<void> check_path(std::string_view path) {
  if (path.empty() || path == "/" || path.find("..") != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument, "refusing cgroup '" + std::string(path) + "'");
  }
  return {};
}

bool write_text(const std::string& file, std::string_view text) {
  if (file.empty()) return false;
  int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// The processes of cgroup directory `dir` and of every cgroup under it.
std::vector<pid_t> processes_under(const std::string& dir) {
  std::vector<pid_t> out;
  std::error_code ec;
  std::vector<std::string> dirs{dir};
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path());
  }
  for (const auto& d : dirs) {
    std::string procs = read_file(d + "/cgroup.procs").value_or(std::string());
    size_t i = 0;
    while (i < procs.size()) {
      size_t j = procs.find('\n', i);
      if (j == std::string::npos) j = procs.size();
      if (int64_t pid = to_int(std::string_view(procs).substr(i, j - i)); pid > 1) {
        out.push_back(static_cast<pid_t>(pid));
      }
      i = j + 1;
    }
  }
  return out;
}

}  // namespace

std::vector<CgroupMount> parse_cgroup_mounts(std::string_view mountinfo) {
  // "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu"
  std::vector<CgroupMount> out;
  size_t start = 0;
  while (start < mountinfo.size()) {
    size_t end = mountinfo.find('\n', start);
    if (end == std::string_view::npos) end = mountinfo.size();
    auto f = fields(mountinfo.substr(start, end - start));
    start = end + 1;
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 3 >= f.size()) continue;
    std::string_view type = f[dash + 1];
    if (type != "cgroup" && type != "cgroup2") continue;
    CgroupMount m{std::string(f[4]), type == "cgroup2", {}};
    std::string_view opts = f[dash + 3];
    size_t i = 0;
    while (i <= opts.size()) {
      size_t j = opts.find(',', i);
      if (j == std::string_view::npos) j = opts.size();
      std::string_view o = opts.substr(i, j - i);
      if (!m.v2 && o != "rw" && o != "ro" && o.find('=') == std::string_view::npos) {
        m.controllers.emplace_back(o);
      }
      i = j + 1;
    }
    out.push_back(std::move(m));
  }
  return out;
}

const std::vector<CgroupMount>& cgroup_mounts() {
  static const std::vector<CgroupMount> mounts =
      parse_cgroup_mounts(read_file("/proc/self/mountinfo").value_or(std::string()));
  return mounts;
}

bool cgroup_v2_only() {
  for (const auto& m : cgroup_mounts()) {
    if (m.path == "/sys/fs/cgroup") return m.v2;
  }
  return false;
}

std::string cgroup_file(std::string_view path, std::string_view controller, std::string_view name) {
  const CgroupMount* v2 = nullptr;
  for (const auto& m : cgroup_mounts()) {
    if (!m.v2 && has_controller(m, controller)) {
      return m.path + std::string(path) + "/" + std::string(name);
    }
    if (m.v2) v2 = &m;
  }
  return v2 ? v2->path + std::string(path) + "/" + std::string(name) : std::string();
}

int64_t parse_cpu_stat_usec(std::string_view cpu_stat) {
  constexpr std::string_view kKey = "usage_usec ";
  size_t at = cpu_stat.find(kKey);
  if (at == std::string_view::npos || (at > 0 && cpu_stat[at - 1] != '\n')) return -1;
  std::string_view rest = cpu_stat.substr(at + kKey.size());
  return to_int(rest.substr(0, rest.find('\n')));
}

Result<Usage> read_cgroup_usage(std::string_view path) {
  Usage u;
  bool v1_cpu = false;
  for (const auto& m : cgroup_mounts()) v1_cpu = v1_cpu || has_controller(m, "cpuacct");
  if (v1_cpu) {
    auto ns = MILL_TRY(read_file(cgroup_file(path, "cpuacct", "cpuacct.usage")));
    u.cpu_seconds = static_cast<double>(to_int(trim(ns))) / 1e9;
  } else {
    auto stat = MILL_TRY(read_file(cgroup_file(path, "cpu", "cpu.stat")));
    u.cpu_seconds = static_cast<double>(parse_cpu_stat_usec(stat)) / 1e6;
  }
  std::string mem_file = cgroup_file(path, "memory", "memory.usage_in_bytes");
  auto mem = read_file(mem_file);
  if (!mem) mem = MILL_TRY(read_file(cgroup_file(path, "memory", "memory.current")));
  u.memory_bytes = to_int(trim(*mem));
  return u;
}

int64_t parse_oom_kills(std::string_view text) {
  constexpr std::string_view kKey = "oom_kill ";
  for (size_t at = text.find(kKey); at != std::string_view::npos; at = text.find(kKey, at + 1)) {
    if (at > 0 && text[at - 1] != '\n') continue;
    std::string_view rest = text.substr(at + kKey.size());
    return std::max<int64_t>(to_int(rest.substr(0, rest.find('\n'))), 0);
  }
  return 0;
}

int64_t read_oom_kills(std::string_view path) {
  auto v1 = read_file(cgroup_file(path, "memory", "memory.oom_control"));
  if (v1) return parse_oom_kills(*v1);
  return parse_oom_kills(read_file(cgroup_file(path, "memory", "memory.events")).value_or(""));
}

Result<void> kill_cgroup(std::string_view path, std::chrono::milliseconds limit) {
  MILL_TRY(check_path(path));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  if (!write_text(cgroup_file(path, "cpu", "cpu.cfs_quota_us"), "-1")) {
    write_text(cgroup_file(path, "cpu", "cpu.max"), "max");
  }
  std::string procs = cgroup_file(path, "pids", "cgroup.procs");
  if (procs.empty()) return {};
  const std::string dir = procs.substr(0, procs.rfind('/'));
  for (;;) {
    auto pids = processes_under(dir);
    if (pids.empty()) return {};
    if (std::chrono::steady_clock::now() >= deadline) {
      return make_error(ErrorCode::kTimeout, std::to_string(pids.size()) + " processes of cgroup " +
                                                 std::string(path) + " survive SIGKILL");
    }
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<void> remove_cgroup(std::string_view path) {
  MILL_TRY(check_path(path));
  for (const auto& m : cgroup_mounts()) {
    std::string dir = m.path + std::string(path);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    // Children first (a container may have made its own sub-cgroups).
    std::vector<std::string> dirs;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec)) dirs.push_back(it->path());
    }
    for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) rmdir(d->c_str());
    if (rmdir(dir.c_str()) != 0 && errno != ENOENT) {
      return make_error(errno == EBUSY ? ErrorCode::kConflict : ErrorCode::kIo,
                        "cannot remove cgroup " + dir + ": " + std::strerror(errno));
    }
  }
  return {};
}

}  // namespace mill::runtime
