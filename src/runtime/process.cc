#include "runtime/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/files.h"

extern char** environ;

namespace mill::runtime {

uint64_t parse_start_time(std::string_view stat) {
  size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos) return 0;
  std::string_view rest = stat.substr(paren + 1);  // " S ppid ..." : field 3 onwards
  int field = 2;
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t j = rest.find(' ', i);
    if (j == std::string_view::npos) j = rest.size();
    if (++field == 22) {
      uint64_t v = 0;
      std::from_chars(rest.data() + i, rest.data() + j, v);
      return v;
    }
    i = j;
  }
  return 0;
}

uint64_t process_start_time(int pid) {
  if (pid <= 0) return 0;
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  return stat ? parse_start_time(*stat) : 0;
}

namespace {

bool is_zombie(int pid) {
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  size_t paren = stat->rfind(')');
  return paren == std::string::npos || paren + 2 >= stat->size() || (*stat)[paren + 2] == 'Z' ||
         (*stat)[paren + 2] == 'X';
}

}  // namespace

int open_process(int pid, uint64_t start) {
  if (pid <= 0 || start == 0) return -1;
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return -1;
  // The pidfd pins the process it was opened for; checking identity after opening
  // makes the pair race-free against pid reuse.
  if (process_start_time(pid) != start || is_zombie(pid)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_signal(int pidfd, int sig) {
  return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}

bool wait_exit(int pidfd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{pidfd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;  // a broken pidfd: let the caller look at the state
  }
}

}  // namespace mill::runtime
