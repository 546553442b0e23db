#pragma once

// Cleanup that survives a crash. A test process that dies of a fatal signal (a
// segfault, an abort) runs no TearDown and no destructor, and would leave behind what
// it made on the host: servers, containers, bridges, network namespaces, mounts. The
// next run (CI runs right after a session, on the same machine) then trips over them.
//
// While an OnCrash lives, a fatal signal first kills every process registered with
// kill_on_crash(), then runs each registered command, then hands the signal to the
// handler that was there before (ASan's, say, which prints its report) or lets it end
// the process. An error ASan reports (it exits without a signal) runs the same cleanup
// from ASan's death callback. Everything the handler reads is copied into fixed buffers
// beforehand; it runs on its own stack (so a stack overflow is handled too) and calls
// only _Fork (no fork handlers, no malloc locks: the crash may hold one), execv, kill
// and waitpid. A SIGKILL (ctest's TIMEOUT) cannot be caught: nothing runs then.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace mill::testing {

namespace crash_cleanup_detail {

constexpr int kSlots = 16;
constexpr int kArgs = 6;
constexpr size_t kArgBytes = 4096;

inline volatile pid_t pids[kSlots] = {};
inline char commands[kSlots][kArgs][kArgBytes] = {};  // argv; commands[i][0][0]==0: free
inline constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
inline struct sigaction previous[sizeof kSignals / sizeof kSignals[0]] = {};

inline void clean_up() {
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
    pid_t child = ::_Fork();
    if (child == 0) {
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    if (child > 0) ::waitpid(child, nullptr, 0);
  }
}

inline void on_fatal_signal(int sig) {
  clean_up();
  // Hand the signal on: to the handler that was there before, else the default.
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    if (kSignals[i] == sig) ::sigaction(sig, &previous[i], nullptr);
  }
  ::raise(sig);
}

inline void install() {
  static const bool installed = [] {
    static char stack[64 * 1024];
    stack_t alt{};
    alt.ss_sp = stack;
    alt.ss_size = sizeof stack;
    ::sigaltstack(&alt, nullptr);
    struct sigaction action {};
    action.sa_handler = on_fatal_signal;
    action.sa_flags = SA_ONSTACK | SA_RESETHAND;
    ::sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < std::size(kSignals); ++i) {
      ::sigaction(kSignals[i], &action, &previous[i]);
    }
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(clean_up);
#endif
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
