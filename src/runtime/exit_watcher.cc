#include "runtime/exit_watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"

namespace mill::runtime {

ExitWatcher::ExitWatcher() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  if (epoll_fd_ < 0 || wake_fd_ < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    log::error("exit watcher: cannot set up epoll; exits will only be seen through wait()");
    return;
  }
  thread_ = std::thread([this] { run(); });
}

ExitWatcher::~ExitWatcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
  for (auto& [fd, fired] : watched_) close(fd);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void ExitWatcher::wake() {
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

void ExitWatcher::watch(int pidfd, Fired fired) {
  std::lock_guard lock(mu_);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = pidfd;
  if (pidfd >= 0 && epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, pidfd, &ev) == 0) {
    watched_[pidfd] = std::move(fired);
    return;
  }
  if (pidfd >= 0) close(pidfd);
  ready_.push_back(std::move(fired));
  wake();
}

void ExitWatcher::run() {
  epoll_event events[64];
  while (true) {
    int n = epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0 && errno != EINTR) {
      log::error("exit watcher: epoll_wait failed; stopping");
      return;
    }
    std::vector<Fired> due;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == wake_fd_) {
          uint64_t count;
          (void)!read(wake_fd_, &count, sizeof count);
          continue;
        }
        auto it = watched_.find(fd);
        if (it == watched_.end()) continue;
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        due.push_back(std::move(it->second));
        watched_.erase(it);
      }
      for (auto& f : ready_) due.push_back(std::move(f));
      ready_.clear();
    }
    for (auto& f : due) f();
  }
}

}  // namespace mill::runtime
