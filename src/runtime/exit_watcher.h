#pragma once

// Learns that processes ended without polling: one thread, one epoll over pidfds.
// RuncRuntime watches its shims with it (a shim exits right after recording its
// container's exit), so the agent hears of every exit within milliseconds, however
// many containers run.

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mill::runtime {

class ExitWatcher {
 public:
  using Fired = std::function<void()>;

  ExitWatcher();
  // Stops the thread; callbacks not yet run are dropped.
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  // Takes ownership of `pidfd` and runs `fired` once, on the watcher's thread, when
  // its process has exited. pidfd < 0 (the process is already gone) fires at once,
  // also on the watcher's thread. `fired` must not block for long: it holds up others.
  void watch(int pidfd, Fired fired);

 private:
  void run();
  void wake();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::mutex mu_;
  std::map<int, Fired> watched_;  // pidfd -> callback
  std::vector<Fired> ready_;      // already gone at watch()
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::runtime
