// mill-shim: one per container (like conmon). Started detached by the runtime, it runs
// the OCI runtime, reports the container's pid on the sync fd, then holds the
// container's stdout/stderr, writes them as JSON lines with rotation, reaps the
// container (it is the child subreaper) and records its exit. It outlives the agent.
// Protocol: runtime/shim_protocol.h. Plain C++/POSIX, linked static: RSS stays small.

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "runtime/shim/log_writer.h"
#include "runtime/shim_protocol.h"

namespace shim = mill::runtime::shim;

namespace {

struct Args {
  std::string id, state_dir, runtime, runtime_root;
  uint64_t log_max_bytes = 0;
  int log_max_files = 0;
};

std::string path_in(const std::string& dir, std::string_view name) {
  return dir + "/" + std::string(name);
}

std::string read_small(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && out.size() < 65536) out.append(buf, n);
  close(fd);
  return out;
}

// Clock ticks since boot at which `pid` started (/proc/PID/stat field 22), 0 if gone.
unsigned long long start_time(int pid) {
  std::string stat = read_small("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  const char* p = stat.c_str() + paren + 2;  // field 3
  for (int field = 3; field < 22 && *p; ++field) {
    p = std::strchr(p, ' ');
    if (!p) return 0;
    ++p;
  }
  return std::strtoull(p, nullptr, 10);
}

bool write_atomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  // No fsync: these files must survive the agent's crash, which the page cache does;
  // after the host's, there is no container left to describe. It keeps start() fast.
  bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  close(fd);
  return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

void report(const std::string& line) {
  std::string msg = line + "\n";
  (void)!write(shim::kSyncFd, msg.data(), msg.size());
  close(shim::kSyncFd);
}

// Everything readable now from a non-blocking pipe.
std::string drain_now(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && out.size() < 65536) out.append(buf, n);
  return out;
}

// Runs the OCI runtime with the container's stdio on the given pipes. Returns its pid.
// No --pid-file: runc writes that with O_SYNC, a journal commit (~5 ms) on every
// start. The container's pid is found as our child instead (see container_pid).
pid_t spawn_runtime(const Args& a, int out_w, int err_w) {
  std::string bundle = path_in(a.state_dir, shim::kBundleDir);
  const char* argv[] = {
      a.runtime.c_str(), "--root",       a.runtime_root.c_str(), "run",  "--detach",
      "--bundle",        bundle.c_str(), a.id.c_str(),           nullptr};
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(null_fd, 0);
    dup2(out_w, 1);
    dup2(err_w, 2);
    execv(argv[0], const_cast<char* const*>(argv));
    dprintf(2, "cannot execute %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (null_fd >= 0) close(null_fd);
  return pid;
}

// The pid of our one child, once the runtime has exited: the container's init was
// reparented to us (we are its subreaper) when `run --detach` returned. A container
// that already exited is a zombie child and is found too. 0 when there is not
// exactly one.
pid_t container_pid() {
  std::string self = std::to_string(getpid());
  std::string list = read_small("/proc/" + self + "/task/" + self + "/children");
  std::vector<pid_t> found;
  if (!list.empty()) {
    for (const char* p = list.c_str(); *p;) {
      char* end;
      long v = std::strtol(p, &end, 10);
      if (end == p) break;
      found.push_back(static_cast<pid_t>(v));
      p = end;
      while (*p == ' ' || *p == '\n') ++p;
    }
  } else if (DIR* d = opendir("/proc")) {
    // Kernels without CONFIG_PROC_CHILDREN: look for processes whose parent we are.
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      std::string stat = read_small(std::string("/proc/") + e->d_name + "/stat");
      size_t paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 4 >= stat.size()) continue;
      if (std::atoi(stat.c_str() + paren + 4) == getpid()) found.push_back(std::atoi(e->d_name));
    }
    closedir(d);
  }
  return found.size() == 1 ? found[0] : 0;
}

std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s.empty() ? "the OCI runtime failed without a message" : s;
}

std::string exit_record(int status) {
  std::string out = "{";
  if (WIFSIGNALED(status)) {
    out += "\"signal\":" + std::to_string(WTERMSIG(status));
  } else {
    out += "\"code\":" + std::to_string(WEXITSTATUS(status));
  }
  return out + ",\"finished_at\":\"" + shim::now_rfc3339() + "\"}\n";
}

// Relays output until the container has exited and its pipes are drained; returns
// its wait status.
int supervise(pid_t container, int sfd, int out_r, int err_r, shim::LogWriter& logs) {
  int fds[2] = {out_r, err_r};
  bool exited = false;
  int status = 0;
  timespec exited_at{};
  char buf[65536];
  auto reap = [&] {
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
      if (p == container) {
        exited = true;
        status = st;
        clock_gettime(CLOCK_MONOTONIC, &exited_at);
      }
    }
  };
  reap();
  while (!exited || fds[0] >= 0 || fds[1] >= 0) {
    // Once the signalfd is unusable (POLLNVAL), look for the exit a few times a second.
    int timeout = sfd < 0 ? 100 : -1;
    if (exited) {
      // Processes that escaped the container's pid namespace could hold the pipes
      // forever; give them a moment after PID 1 is gone, no more.
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      long waited =
          (now.tv_sec - exited_at.tv_sec) * 1000 + (now.tv_nsec - exited_at.tv_nsec) / 1000000;
      if (waited >= 2000) break;
      timeout = static_cast<int>(2000 - waited);
    }
    pollfd p[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(p, 3, timeout) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i], buf, sizeof buf);
      if (n > 0) {
        logs.feed(static_cast<shim::Stream>(i), buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        logs.finish(static_cast<shim::Stream>(i));
        close(fds[i]);
        fds[i] = -1;
      }
    }
    if (sfd < 0 || (p[2].revents & (POLLNVAL | POLLERR))) {
      sfd = -1;
      reap();
    } else if (p[2].revents & POLLIN) {
      signalfd_siginfo si{};
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
          // Stopping the shim means stopping its container: pass it on and keep
          // going until the exit can be recorded.
          if (!exited) kill(container, SIGTERM);
        }
      }
      reap();
    }
  }
  for (int i = 0; i < 2; ++i) logs.finish(static_cast<shim::Stream>(i));
  return status;
}

bool parse_args(int argc, char** argv, Args& a) {
  if (argc != 7) return false;
  a.id = argv[1];
  a.state_dir = argv[2];
  a.runtime = argv[3];
  a.runtime_root = argv[4];
  a.log_max_bytes = std::strtoull(argv[5], nullptr, 10);
  a.log_max_files = std::atoi(argv[6]);
  return !a.id.empty() && !a.state_dir.empty() && a.log_max_bytes > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  bool okk = parse_args(argc, argv, a);
  if (!okk) {
    dprintf(2, "usage: mill-shim ID STATE_DIR RUNTIME RUNTIME_ROOT LOG_MAX_BYTES LOG_MAX_FILES\n");
    return 2;
  }
  // Without the agent's pipe on fd 3, the first descriptor opened below would land
  // there and report() would close it.
  if (fcntl(shim::kSyncFd, F_SETFD, FD_CLOEXEC) != 0) {
    dprintf(2, "mill-shim: fd %d must be the agent's sync pipe\n", shim::kSyncFd);
    return 2;
  }
  // The agent starts us in a new session and waits for this first process: the child
  // carries on as an orphan, so nothing of the agent (its exit, a SIGKILL, its process
  // group's signals) reaches it.
  if (pid_t first = fork(); first != 0) {
    if (first < 0) report(std::string("error cannot fork the shim: ") + strerror(errno));
    _exit(first < 0 ? 1 : 0);
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

  shim::LogWriter logs(path_in(a.state_dir, shim::kLogDir), a.log_max_bytes, a.log_max_files);
  int out[2], err[2];
  if (sfd < 0 || !logs.open() || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    report(std::string("error shim setup failed: ") + strerror(errno));
    return 1;
  }
  pid_t runtime = spawn_runtime(a, out[1], err[1]);
  close(out[1]);
  close(err[1]);
  int st = 0;
  while (runtime > 0 && waitpid(runtime, &st, 0) < 0 && errno == EINTR) {
  }
  if (runtime < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::string msg = drain_now(err[0]);
    msg += drain_now(out[0]);
    report("error " + one_line(msg));
    return 1;
  }
  pid_t container = container_pid();
  unsigned long long container_start = container > 0 ? start_time(container) : 0;
  std::string state = "{\"pid\":" + std::to_string(container) +
                      ",\"pid_start\":" + std::to_string(container_start) +
                      ",\"shim_pid\":" + std::to_string(getpid()) +
                      ",\"shim_start\":" + std::to_string(start_time(getpid())) + "}\n";
  if (container <= 0 || !write_atomic(path_in(a.state_dir, shim::kStateFile), state)) {
    report("error cannot record the container's pid");
    return 1;
  }
  report("ok " + std::to_string(container));

  int status = supervise(container, sfd, out[0], err[0], logs);
  if (!write_atomic(path_in(a.state_dir, shim::kExitFile), exit_record(status))) {
    dprintf(2, "cannot write the exit record: %s\n", strerror(errno));
    return 1;
  }
  return 0;
}
