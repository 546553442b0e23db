#include "runtime/oci_spec.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <csignal>

#include "runtime/seccomp.h"

namespace mill::runtime {
namespace {

namespace json = boost::json;

constexpr std::string_view kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kInitInContainer = "/sbin/mill-init";

// Docker's default capability set.
constexpr const char* kCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

// Docker's masked and read-only paths.
constexpr const char* kMaskedPaths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
constexpr const char* kReadonlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

struct SignalName {
  const char* name;
  int number;
};
constexpr SignalName kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2},   {"TERM", SIGTERM}, {"STOP", SIGSTOP},
    {"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR},   {"ALRM", SIGALRM},
};

Unexpected bad(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

template <size_t N>
json::array strings(const char* const (&v)[N]) {
  json::array a;
  for (const char* s : v) a.emplace_back(s);
  return a;
}

std::optional<uint32_t> parse_u32(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Numeric "uid" or "uid:gid" (Docker takes a bare uid with gid 0 when it has no
// passwd entry to consult); "" is root.
Result<std::pair<uint32_t, uint32_t>> numeric_user(std::string_view user) {
  if (user.empty()) return std::pair<uint32_t, uint32_t>{0, 0};
  auto colon = user.find(':');
  auto uid = parse_u32(user.substr(0, colon));
  auto gid = colon == std::string_view::npos ? std::optional<uint32_t>(0)
                                             : parse_u32(user.substr(colon + 1));
  if (!uid || !gid) {
    return bad("image user '" + std::string(user) +
               "' is not numeric; resolve it against the rootfs first");
  }
  return std::pair<uint32_t, uint32_t>{*uid, *gid};
}

json::object mount(std::string_view dest, std::string_view type, std::string_view source,
                   std::initializer_list<const char*> options) {
  json::array opts;
  for (const char* o : options) opts.emplace_back(o);
  return {{"destination", dest}, {"type", type}, {"source", source}, {"options", opts}};
}

json::object bind_mount(std::string_view source, std::string_view dest, bool read_only) {
  json::array opts{"rbind", "nosuid", "nodev"};
  if (read_only) opts.emplace_back("ro");
  return {{"destination", dest}, {"type", "bind"}, {"source", source}, {"options", opts}};
}

json::array mounts(const ContainerSpec& spec) {
  json::array m{
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
  };
  if (spec.init) m.push_back(bind_mount(spec.init_path, kInitInContainer, true));
  if (!spec.hosts_path.empty()) m.push_back(bind_mount(spec.hosts_path, "/etc/hosts", true));
  if (!spec.resolv_conf_path.empty()) {
    m.push_back(bind_mount(spec.resolv_conf_path, "/etc/resolv.conf", true));
  }
  if (!spec.hostname_path.empty())
    m.push_back(bind_mount(spec.hostname_path, "/etc/hostname", true));
  for (const auto& extra : spec.mounts) {
    m.push_back(bind_mount(extra.source, extra.destination, extra.read_only));
  }
  return m;
}

json::object resources(const ContainerSpec& spec) {
  json::object r{{"devices", json::array{json::object{{"allow", false}, {"access", "rwm"}}}}};
  if (spec.memory_bytes > 0) r["memory"] = json::object{{"limit", spec.memory_bytes}};
  if (spec.cpu > 0) {
    constexpr int64_t kPeriod = 100000;
    auto quota = static_cast<int64_t>(std::llround(spec.cpu * kPeriod));
    r["cpu"] = json::object{{"quota", std::max<int64_t>(quota, 1000)}, {"period", kPeriod}};
  }
  if (spec.pids_limit > 0) r["pids"] = json::object{{"limit", spec.pids_limit}};
  return r;
}

json::array namespaces(const ContainerSpec& spec) {
  json::array ns{json::object{{"type", "pid"}}, json::object{{"type", "mount"}},
                 json::object{{"type", "ipc"}}, json::object{{"type", "uts"}}};
  json::object net{{"type", "network"}};
  if (!spec.netns_path.empty()) net["path"] = spec.netns_path;
  ns.push_back(std::move(net));
  return ns;
}

}  // namespace

bool valid_container_id(std::string_view id) {
  if (id.empty() || id.size() > 64 || id.front() == '-') return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

std::vector<std::string> merged_args(const model::ImageConfig& image, const ContainerSpec& spec) {
  // Docker: an entrypoint of one empty string is no entrypoint (`ENTRYPOINT [""]`).
  auto none_if_blank = [](const std::vector<std::string>& e) {
    return e.size() == 1 && e[0].empty() ? std::vector<std::string>{} : e;
  };
  std::vector<std::string> args =
      spec.entrypoint.empty() ? none_if_blank(image.entrypoint) : spec.entrypoint;
  // Docker: a new entrypoint resets the image's cmd; a new command replaces it.
  const std::vector<std::string>& cmd =
      !spec.command.empty() ? spec.command
                            : (spec.entrypoint.empty() ? image.cmd : std::vector<std::string>{});
  args.insert(args.end(), cmd.begin(), cmd.end());
  return args;
}

std::vector<std::string> merged_env(const model::ImageConfig& image, const ContainerSpec& spec) {
  std::vector<std::string> env;
  std::map<std::string, std::string> pending = spec.env;
  if (!spec.hostname.empty() && !pending.count("HOSTNAME")) pending["HOSTNAME"] = spec.hostname;
  bool has_path = false;
  for (const auto& kv : image.env) {
    std::string key = kv.substr(0, kv.find('='));
    has_path = has_path || key == "PATH";
    auto it = pending.find(key);
    if (it == pending.end()) {
      env.push_back(kv);
    } else {
      env.push_back(key + "=" + it->second);
      pending.erase(it);
    }
  }
  if (!has_path && !pending.count("PATH")) env.emplace_back(kDefaultPath);
  for (const auto& [key, value] : pending) env.push_back(key + "=" + value);
  return env;
}

Result<int> parse_signal(std::string_view name) {
  if (auto n = parse_u32(name); n && *n > 0 && *n < 65) return static_cast<int>(*n);
  std::string_view bare = name.substr(0, 3) == "SIG" ? name.substr(3) : name;
  for (const auto& s : kSignals) {
    if (bare == s.name) return s.number;
  }
  return bad("unknown signal '" + std::string(name) + "'");
}

Result<std::string> build_oci_config(const model::ImageConfig& image, const ContainerSpec& spec) {
  if (!valid_container_id(spec.id)) return bad("invalid container id '" + spec.id + "'");
  if (spec.rootfs.empty() || spec.rootfs.front() != '/') {
    return bad("rootfs must be an absolute path");
  }
  std::vector<std::string> args = merged_args(image, spec);
  if (args.empty() || args.front().empty()) {
    // Said here, rather than left to fail as "exec  failed" inside the container.
    bool blank =
        spec.entrypoint.empty() && !image.entrypoint.empty() && image.entrypoint[0].empty();
    return bad(blank ? "the image's entrypoint is empty (\"\") and names no program: give a command"
                     : "neither the image nor the spec names a process to run");
  }
  if (spec.init) args.insert(args.begin(), {kInitInContainer, "--"});
  auto [uid, gid] = spec.user ? *spec.user : MILL_TRY(numeric_user(image.user));
  int stop_signal = image.stop_signal.empty() ? SIGTERM : MILL_TRY(parse_signal(image.stop_signal));
  std::string cwd = !spec.working_dir.empty()    ? spec.working_dir
                    : !image.working_dir.empty() ? image.working_dir
                                                 : "/";
  json::array caps = strings(kCapabilities);
  json::object process{
      {"terminal", false},
      {"user", json::object{{"uid", uid}, {"gid", gid}}},
      {"args", strings(args)},
      {"env", strings(merged_env(image, spec))},
      {"cwd", cwd},
      {"capabilities", json::object{{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"noNewPrivileges", true},
  };
  if (spec.nofile_limit > 0) {
    process["rlimits"] = json::array{json::object{
        {"type", "RLIMIT_NOFILE"}, {"hard", spec.nofile_limit}, {"soft", spec.nofile_limit}}};
  }
  std::string cgroup = spec.cgroup_path.empty() ? "/mill/" + spec.id : spec.cgroup_path;
  json::object linux{
      {"resources", resources(spec)},
      {"cgroupsPath", cgroup},
      {"namespaces", namespaces(spec)},
      {"maskedPaths", strings(kMaskedPaths)},
      {"readonlyPaths", strings(kReadonlyPaths)},
      {"seccomp", default_seccomp_profile()},
  };
  json::object config{
      {"ociVersion", "1.0.2"},
      {"process", std::move(process)},
      {"root", json::object{{"path", spec.rootfs}, {"readonly", false}}},
      {"hostname", spec.hostname},
      {"mounts", mounts(spec)},
      {"linux", std::move(linux)},
      {"annotations", json::object{{kStopSignalAnnotation, std::to_string(stop_signal)}}},
  };
  return json::serialize(config);
}

}  // namespace mill::runtime
