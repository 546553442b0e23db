#pragma once

// Cleanup that survives a crash. A test process that dies of a fatal signal (a
// segfault, an abort) runs no TearDown and no destructor, and would leave behind what
// it made on the host: servers, containers, bridges, network namespaces, mounts. The
// next run (CI runs right after a session, on the same machine) then trips over them.
//
// While an OnCrash lives, a fatal signal first kills every process registered with
// kill_on_crash(), then runs each registered command, then lets the signal end the
// process as it would have. Everything the handler reads is copied into fixed
// buffers beforehand, and it calls only fork, execv, kill and waitpid.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace mill::testing {

namespace crash_cleanup_detail {

constexpr int kSlots = 16;
constexpr int kArgs = 6;
constexpr size_t kArgBytes = 2048;

inline volatile pid_t pids[kSlots] = {};
inline char commands[kSlots][kArgs][kArgBytes] = {};  // argv; commands[i][0][0]==0: free

inline void on_fatal_signal(int sig) {
  for (auto& pid : pids) {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  for (auto& command : commands) {
    if (command[0][0] == '\0') continue;
    char* argv[kArgs + 1] = {};
    for (int i = 0; i < kArgs && command[i][0] != '\0'; ++i) argv[i] = command[i];
    pid_t child = ::fork();
    if (child == 0) {
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    if (child > 0) ::waitpid(child, nullptr, 0);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

inline void install() {
  static const bool installed = [] {
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::signal(sig, on_fatal_signal);
    return true;
  }();
  (void)installed;
}

}  // namespace crash_cleanup_detail

// Registers (on) or forgets (off) a process to SIGKILL if the test process crashes.
inline void kill_on_crash(pid_t pid, bool on) {
  namespace d = crash_cleanup_detail;
  d::install();
  for (auto& slot : d::pids) {
    if (on ? slot == 0 : slot == pid) {
      slot = on ? pid : 0;
      return;
    }
  }
}

// While it lives, `argv` (argv[0] an absolute path) runs if the test process crashes.
class OnCrash {
 public:
  explicit OnCrash(const std::vector<std::string>& argv) {
    namespace d = crash_cleanup_detail;
    d::install();
    if (argv.empty() || argv.size() > d::kArgs) {
      ADD_FAILURE() << "OnCrash takes 1 to " << d::kArgs << " arguments";
      return;
    }
    for (const auto& a : argv) {
      if (a.empty() || a.size() >= d::kArgBytes) {
        ADD_FAILURE() << "OnCrash: an argument is empty or too long: " << a;
        return;
      }
    }
    for (int i = 0; i < d::kSlots; ++i) {
      if (d::commands[i][0][0] != '\0') continue;
      for (size_t j = 0; j < argv.size(); ++j) {
        std::memcpy(d::commands[i][j], argv[j].c_str(), argv[j].size() + 1);
      }
      slot_ = i;
      return;
    }
    ADD_FAILURE() << "OnCrash: no free slot";
  }
  ~OnCrash() {
    if (slot_ < 0) return;
    for (auto& arg : crash_cleanup_detail::commands[slot_]) arg[0] = '\0';
  }
  OnCrash(const OnCrash&) = delete;
  OnCrash& operator=(const OnCrash&) = delete;

 private:
  int slot_ = -1;
};

}  // namespace mill::testing
