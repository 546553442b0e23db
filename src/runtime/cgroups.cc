#include "runtime/cgroups.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>

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

Result<void> remove_cgroup(std::string_view path) {
  if (path.empty() || path == "/" || path.find("..") != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "refusing to remove cgroup '" + std::string(path) + "'");
  }
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
