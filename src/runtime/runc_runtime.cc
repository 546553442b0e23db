#include "runtime/runc_runtime.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/command.h"
#include "common/files.h"
#include "common/log.h"
#include "runtime/cgroups.h"
#include "runtime/oci_spec.h"
#include "runtime/process.h"
#include "runtime/shim_protocol.h"
#include "runtime/user.h"

namespace mill::runtime {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

struct ShimState {
  int pid = 0, shim_pid = 0;
  uint64_t pid_start = 0, shim_start = 0;
};

std::string join(const std::string& dir, std::string_view name) {
  return dir + "/" + std::string(name);
}

Unexpected io_error(std::string what) {
  return make_error(ErrorCode::kIo, std::move(what) + ": " + std::strerror(errno));
}

Result<json::object> read_json(const std::string& path) {
  auto text = MILL_TRY(read_file(path));
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return make_error(ErrorCode::kInternal, "malformed " + path);
  return std::move(v.as_object());
}

int64_t int_field(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : (v && v->is_uint64() ? int64_t(v->as_uint64()) : 0);
}

std::optional<ShimState> read_shim_state(const std::string& dir) {
  auto o = read_json(join(dir, shim::kStateFile));
  if (!o) return std::nullopt;
  return ShimState{static_cast<int>(int_field(*o, "pid")),
                   static_cast<int>(int_field(*o, "shim_pid")),
                   static_cast<uint64_t>(int_field(*o, "pid_start")),
                   static_cast<uint64_t>(int_field(*o, "shim_start"))};
}

std::optional<ExitStatus> read_exit(const std::string& dir) {
  auto o = read_json(join(dir, shim::kExitFile));
  if (!o) return std::nullopt;
  ExitStatus e;
  e.signal = static_cast<int>(int_field(*o, "signal"));
  e.code = e.signal ? 128 + e.signal : static_cast<int>(int_field(*o, "code"));
  if (auto* t = o->if_contains("finished_at"); t && t->is_string()) {
    e.finished_at = std::string(t->as_string());
  }
  return e;
}

bool is_executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

bool in_memory(const std::string& dir) {
  struct statfs fs {};
  return statfs(dir.c_str(), &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
}

// `dir`, created if missing, on a tmpfs: as it is (/run is one on most hosts), or
// with one of its own mounted there (private, for root alone, never executable).
Result<void> keep_in_memory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot create " + dir + ": " + ec.message());
  if (in_memory(dir)) return {};
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "mode=0700,size=64m") != 0) {
    return make_error(ErrorCode::kIo,
                      "cannot mount a tmpfs on " + dir +
                          " (container bundles are kept in memory): " + std::strerror(errno));
  }
  return {};
}

std::string default_shim_path() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string exe(buf, static_cast<size_t>(n));
  return exe.substr(0, exe.rfind('/')) + "/mill-shim";
}

bool all_digits_or_colon(std::string_view s) {
  for (char c : s) {
    if (!(c == ':' || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

// A descriptor moved to >= 10, so the child's dup2s onto 0..3 cannot clobber it.
int high_fd(int fd) {
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return h;
}

}  // namespace

Result<std::unique_ptr<RuncRuntime>> RuncRuntime::create(RuntimeOptions o) {
  if (o.state_root.empty() || o.runc_root.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "state_root and runc_root are required");
  }
  if (o.shim_path.empty()) o.shim_path = default_shim_path();
  if (!is_executable(o.runtime_path)) {
    return make_error(ErrorCode::kInvalidArgument, "OCI runtime not executable: " + o.runtime_path);
  }
  if (!is_executable(o.shim_path)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "mill-shim not found at " + o.shim_path +
                          ": it must sit next to the mill binary (install both: mill and "
                          "mill-shim from the same build, into the same directory)");
  }
  std::error_code ec;
  fs::create_directories(o.state_root, ec);
  if (!ec) fs::create_directories(o.runc_root, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot create runtime dirs: " + ec.message());
  return std::unique_ptr<RuncRuntime>(new RuncRuntime(std::move(o)));
}

Result<ContainerState> RuncRuntime::start(const ContainerSpec& in,
                                          const model::ImageConfig& image) {
  if (!valid_container_id(in.id)) {
    return make_error(ErrorCode::kInvalidArgument, "invalid container id '" + in.id + "'");
  }
  ContainerSpec spec = in;
  if (!spec.user && !all_digits_or_colon(image.user)) {
    spec.user = MILL_TRY(resolve_user(spec.rootfs, image.user));
  }
  std::string config = MILL_TRY(build_oci_config(image, spec));
  std::string d = dir(spec.id);
  std::string bundle = join(d, shim::kBundleDir);
  // A dir without a bundle holds the kept logs of a removed container of that id:
  // the new one appends to them.
  bool kept_logs = mkdir(d.c_str(), 0700) != 0 && errno == EEXIST;
  MILL_TRY(make_bundle_dir(spec.id, bundle));
  if (mkdir(join(d, shim::kLogDir).c_str(), 0750) != 0 && errno != EEXIST) {
    auto err = io_error("cannot create the log dir of " + spec.id);
    cleanup_failed_start(spec.id, kept_logs);
    return err;
  }
  // No fsync: a bundle that did not survive a host crash belongs to a container that
  // did not either.
  int fd = open(join(bundle, "config.json").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  bool written = fd >= 0 && write(fd, config.data(), config.size()) == ssize_t(config.size());
  if (fd >= 0) close(fd);
  if (!written) {
    auto err = io_error("cannot write the bundle of " + spec.id);
    cleanup_failed_start(spec.id, kept_logs);
    return err;
  }
  auto pid = launch_shim(spec.id);
  if (!pid) {
    cleanup_failed_start(spec.id, kept_logs);
    return Unexpected(std::move(pid).error());
  }
  return state(spec.id);
}

Result<void> RuncRuntime::make_bundle_dir(const std::string& id, const std::string& bundle) {
  if (options_.bundle_root.empty()) {
    if (mkdir(bundle.c_str(), 0700) == 0) return {};
    if (errno == EEXIST)
      return make_error(ErrorCode::kAlreadyExists, "container " + id + " exists");
    return io_error("cannot create " + bundle);
  }
  {
    std::lock_guard lock(bundle_root_mutex_);
    if (!bundle_root_ready_) {
      MILL_TRY(keep_in_memory(options_.bundle_root));
      bundle_root_ready_ = true;
    }
  }
  const std::string target = join(options_.bundle_root, id);
  std::error_code ec;
  if (fs::is_symlink(bundle, ec) || fs::exists(bundle, ec)) {
    return make_error(ErrorCode::kAlreadyExists, "container " + id + " exists");
  }
  fs::remove_all(target, ec);  // left by a start that did not finish
  if (mkdir(target.c_str(), 0700) != 0) return io_error("cannot create " + target);
  if (symlink(target.c_str(), bundle.c_str()) != 0) {
    auto err = io_error("cannot link " + bundle);
    fs::remove_all(target, ec);
    return err;
  }
  return {};
}

Result<int> RuncRuntime::launch_shim(const std::string& id) {
  std::string d = dir(id);
  std::string max_bytes = std::to_string(options_.log_max_bytes);
  std::string max_files = std::to_string(options_.log_max_files);
  const char* argv[] = {options_.shim_path.c_str(),
                        id.c_str(),
                        d.c_str(),
                        options_.runtime_path.c_str(),
                        options_.runc_root.c_str(),
                        max_bytes.c_str(),
                        max_files.c_str(),
                        nullptr};
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) != 0) return io_error("pipe");
  int rd = high_fd(sync[0]), wr = high_fd(sync[1]);
  int null_fd = high_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
  int log_fd = high_fd(
      open(join(d, shim::kShimLog).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  // posix_spawn (vfork-like: no copy of the agent's page tables) into a new session;
  // the shim then forks once and this first process exits, so it ends an orphan.
  pid_t child = -1;
  int spawn_err = EBADF;
  if (rd >= 0 && wr >= 0 && null_fd >= 0 && log_fd >= 0) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, null_fd, 0);
    posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
    posix_spawn_file_actions_adddup2(&fa, wr, shim::kSyncFd);
    posix_spawn_file_actions_addclosefrom_np(&fa, shim::kSyncFd + 1);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    spawn_err = posix_spawn(&child, argv[0], &fa, &attr, const_cast<char* const*>(argv), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (spawn_err != 0) child = -1;
  }
  for (int fd : {wr, null_fd, log_fd}) {
    if (fd >= 0) close(fd);
  }
  if (child < 0) {
    if (rd >= 0) close(rd);
    errno = spawn_err;
    return io_error("cannot start mill-shim");
  }
  while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  // One line: "ok PID" or "error MESSAGE"; EOF first means the shim died.
  std::string reply;
  auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  char buf[4096];
  while (reply.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{rd, POLLIN, 0};
    int n = left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(rd);
      return make_error(ErrorCode::kTimeout, "container " + id + " did not start in time");
    }
    ssize_t r = read(rd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    reply.append(buf, static_cast<size_t>(r));
  }
  close(rd);
  if (reply.rfind("ok ", 0) == 0) return std::atoi(reply.c_str() + 3);
  if (reply.rfind("error ", 0) == 0) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot start container " + id + ": " + trim(reply.substr(6)));
  }
  std::string shim_log = read_file(join(d, shim::kShimLog)).value_or("");
  return make_error(ErrorCode::kInternal,
                    "mill-shim for " + id + " exited without reporting: " + trim(shim_log));
}

void RuncRuntime::cleanup_failed_start(const std::string& id, bool kept_logs) {
  if (auto r = remove(id, kept_logs ? KeepLogs::kYes : KeepLogs::kNo); !r) {
    log::warn("cleanup after a failed start of " + id + ": " + r.error().to_string());
  }
}

Result<ContainerState> RuncRuntime::state(const std::string& id) {
  if (!valid_container_id(id)) return make_error(ErrorCode::kNotFound, "no container " + id);
  std::string d = dir(id);
  struct stat st {};
  if (stat(join(d, shim::kBundleDir).c_str(), &st) != 0) {
    return make_error(ErrorCode::kNotFound, "no container " + id);
  }
  ContainerState s;
  s.id = id;
  s.log_dir = join(d, shim::kLogDir);
  auto shim_state = read_shim_state(d);
  if (shim_state) {
    s.pid = shim_state->pid;
    s.shim_pid = shim_state->shim_pid;
  }
  s.exit = exit_of(id);
  if (!s.exit && shim_state) {
    int fd = open_process(shim_state->pid, shim_state->pid_start);
    s.running = fd >= 0;
    if (fd >= 0) close(fd);
    // The shim may have recorded the exit between the two reads.
    if (!s.running) s.exit = exit_of(id);
  }
  return s;
}

Result<std::vector<ContainerState>> RuncRuntime::list() {
  std::vector<ContainerState> out;
  std::error_code ec;
  for (fs::directory_iterator it(options_.state_root, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    auto s = state(it->path().filename());
    if (s) out.push_back(std::move(*s));
  }
  if (ec)
    return make_error(ErrorCode::kIo, "cannot list " + options_.state_root + ": " + ec.message());
  return out;
}

Result<void> RuncRuntime::signal(const std::string& id, int sig) {
  auto shim_state = read_shim_state(dir(id));
  if (!shim_state) return make_error(ErrorCode::kNotFound, "no running container " + id);
  int fd = open_process(shim_state->pid, shim_state->pid_start);
  if (fd < 0) return make_error(ErrorCode::kConflict, "container " + id + " is not running");
  bool sent = send_signal(fd, sig);
  close(fd);
  if (!sent) return make_error(ErrorCode::kConflict, "container " + id + " is not running");
  return {};
}

Result<ExitStatus> RuncRuntime::wait(const std::string& id, std::chrono::milliseconds timeout) {
  std::string d = dir(id);
  if (auto e = exit_of(id)) return *e;
  auto shim_state = read_shim_state(d);
  if (!shim_state) return make_error(ErrorCode::kNotFound, "no started container " + id);
  // The shim writes exit.json and then exits, so its exit is the event to wait for.
  int fd = open_process(shim_state->shim_pid, shim_state->shim_start);
  if (fd >= 0) {
    bool ended = wait_exit(fd, timeout);
    close(fd);
    if (!ended) return make_error(ErrorCode::kTimeout, "container " + id + " is still running");
  }
  if (auto e = exit_of(id)) return *e;
  return make_error(ErrorCode::kInternal,
                    "mill-shim of " + id + " is gone without recording an exit");
}

Result<void> RuncRuntime::on_exit(const std::string& id, ExitCallback callback) {
  auto shim_state = read_shim_state(dir(id));
  if (!shim_state) return make_error(ErrorCode::kNotFound, "no started container " + id);
  std::call_once(watcher_once_, [this] { watcher_ = std::make_unique<ExitWatcher>(); });
  // -1 when the shim is already gone: the watcher then fires at once.
  int fd = open_process(shim_state->shim_pid, shim_state->shim_start);
  // Ended means nothing of it runs: what PID 1 left behind goes before the callback.
  watcher_->watch(fd, [this, id, cb = std::move(callback)] {
    if (auto emptied = empty_cgroup(id); !emptied) {
      log::warn("runtime: " + id + ": " + emptied.error().message);
    }
    cb(id, wait(id, std::chrono::milliseconds(0)));
  });
  return {};
}

Result<ExitStatus> RuncRuntime::stop(const std::string& id, std::chrono::milliseconds grace) {
  if (auto e = exit_of(id)) {
    MILL_TRY(empty_cgroup(id));
    return *e;
  }
  int sig = SIGTERM;
  if (auto config = read_json(join(join(dir(id), shim::kBundleDir), "config.json"))) {
    if (auto* a = config->if_contains("annotations"); a && a->is_object()) {
      if (auto* s = a->as_object().if_contains(kStopSignalAnnotation); s && s->is_string()) {
        sig = parse_signal(std::string(s->as_string())).value_or(SIGTERM);
      }
    }
  }
  if (auto r = signal(id, sig); !r && r.error().code == ErrorCode::kNotFound) {
    return Unexpected(std::move(r).error());
  }
  auto exit = wait(id, grace);
  if (!exit && exit.error().code == ErrorCode::kTimeout) {
    (void)signal(id, SIGKILL);  // PID 1 first: its exit is the one recorded
    MILL_TRY(empty_cgroup(id));
    exit = wait(id, std::chrono::seconds(10));
  }
  if (exit) MILL_TRY(empty_cgroup(id));
  return exit;
}

std::optional<ExitStatus> RuncRuntime::exit_of(const std::string& id) const {
  auto e = read_exit(dir(id));
  // PID 1 SIGKILLed, or an init that passes on its child's SIGKILL as 137.
  if (e && (e->signal == SIGKILL || e->code == 128 + SIGKILL)) {
    if (auto cgroup = cgroup_path(id)) e->oom_killed = read_oom_kills(*cgroup) > 0;
  }
  return e;
}

Result<void> RuncRuntime::empty_cgroup(const std::string& id) {
  auto cgroup = cgroup_path(id);
  if (!cgroup) return {};  // no bundle: nothing was started
  if (auto killed = kill_cgroup(*cgroup, kKillLimit); !killed) {
    return make_error(ErrorCode::kConflict,
                      "container " + id + " survives SIGKILL: " + killed.error().message);
  }
  return {};
}

Result<std::string> RuncRuntime::cgroup_path(const std::string& id) const {
  {
    std::lock_guard lock(cgroups_mutex_);
    if (auto it = cgroups_.find(id); it != cgroups_.end()) return it->second;
  }
  auto config = MILL_TRY(read_json(join(join(dir(id), shim::kBundleDir), "config.json")));
  if (auto* l = config.if_contains("linux"); l && l->is_object()) {
    if (auto* p = l->as_object().if_contains("cgroupsPath"); p && p->is_string()) {
      std::string path(p->as_string());
      std::lock_guard lock(cgroups_mutex_);
      cgroups_[id] = path;
      return path;
    }
  }
  return make_error(ErrorCode::kInternal, "bundle of " + id + " has no cgroupsPath");
}

Result<void> RuncRuntime::remove(const std::string& id, KeepLogs keep_logs) {
  if (!valid_container_id(id)) return make_error(ErrorCode::kInvalidArgument, "invalid id " + id);
  std::string d = dir(id);
  std::error_code ec;
  if (!fs::exists(d, ec)) return {};
  // Until exit.json exists the shim may still be writing into the dir: kill what
  // runs and wait for the shim to finish (wait() returns at once if it is gone).
  if (auto s = state(id); s && !s->exit) {
    if (s->running) (void)signal(id, SIGKILL);
    MILL_TRY(empty_cgroup(id));
    if (auto e = wait(id, std::chrono::seconds(10)); !e && e.error().code == ErrorCode::kTimeout) {
      return make_error(ErrorCode::kConflict, "container " + id + " survives SIGKILL");
    }
  }
  MILL_TRY(empty_cgroup(id));
  auto cgroup = cgroup_path(id);
  {
    std::lock_guard lock(cgroups_mutex_);
    cgroups_.erase(id);  // a later container of this id may have another
  }
  // The runtime keeps its state in <root>/<id>: without it there is nothing to delete
  // (a second remove, after one that kept the logs), and starting runc costs ~50 ms.
  if (fs::exists(options_.runc_root + "/" + id, ec)) {
    auto deleted = MILL_TRY(mill::run_command(
        {options_.runtime_path, "--root", options_.runc_root, "delete", "--force", id}));
    if (deleted.exit_code != 0 && deleted.output.find("does not exist") == std::string::npos &&
        deleted.output.find("not found") == std::string::npos) {
      return make_error(ErrorCode::kIo, "runtime delete " + id + ": " + trim(deleted.output));
    }
  }
  if (cgroup) MILL_TRY(remove_cgroup(*cgroup));
  if (!options_.bundle_root.empty()) fs::remove_all(join(options_.bundle_root, id), ec);
  for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
    if (keep_logs == KeepLogs::kYes && it->path().filename() == shim::kLogDir) continue;
    fs::remove_all(it->path(), ec);
    if (ec) break;
  }
  if (keep_logs == KeepLogs::kNo && !ec) fs::remove(d, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot remove " + d + ": " + ec.message());
  return {};
}

Result<Usage> RuncRuntime::usage(const std::string& id) {
  auto usage = read_cgroup_usage(MILL_TRY(cgroup_path(id)));
  if (!usage) {
    // Gone (removed meanwhile): nothing worth remembering.
    std::lock_guard lock(cgroups_mutex_);
    cgroups_.erase(id);
  }
  return usage;
}

// runc exec takes the process from the container's own config (user, env, cwd,
// capabilities, seccomp, rlimits) with these args; no terminal, stdio inherited.
ExecCommand RuncRuntime::exec_command(const std::string& id,
                                      const std::vector<std::string>& args) const {
  ExecCommand out;
  out.pid_file = dir(id) + "/exec.pid";
  out.argv = {options_.runtime_path, "--root", options_.runc_root, "exec", "--pid-file",
              out.pid_file,          id};
  out.argv.insert(out.argv.end(), args.begin(), args.end());
  return out;
}

void release_bundle_root(const std::string& bundle_root) {
  if (bundle_root.empty()) return;
  // Ours when it is a tmpfs mount point: its parent is another filesystem.
  struct stat here {};
  struct stat parent {};
  const std::string up = fs::path(bundle_root).parent_path();
  if (stat(bundle_root.c_str(), &here) == 0 && stat(up.c_str(), &parent) == 0 &&
      here.st_dev != parent.st_dev && in_memory(bundle_root)) {
    umount2(bundle_root.c_str(), MNT_DETACH);
  }
  std::error_code ec;
  fs::remove_all(bundle_root, ec);
}

}  // namespace mill::runtime
