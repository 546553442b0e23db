#pragma once

// A cluster network 10.<octet>.0.0/16 for one test: an octet in [lo, hi] that no route
// on this host mentions (so a bridge a killed run left behind, or another Mill on the
// machine, cannot shadow the test's containers) and that no other test process holds
// (a lock file per octet). Released, lock file and all, when the lease is destroyed.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <utility>

namespace mill::testing {

class ClusterLease {
 public:
  ClusterLease() = default;
  ClusterLease(const ClusterLease&) = delete;
  ClusterLease& operator=(const ClusterLease&) = delete;
  ClusterLease(ClusterLease&& o) noexcept
      : octet_(std::exchange(o.octet_, -1)),
        fd_(std::exchange(o.fd_, -1)),
        path_(std::move(o.path_)) {}
  ClusterLease& operator=(ClusterLease&& o) noexcept {
    if (this != &o) {
      release();
      octet_ = std::exchange(o.octet_, -1);
      fd_ = std::exchange(o.fd_, -1);
      path_ = std::move(o.path_);
    }
    return *this;
  }
  ~ClusterLease() { release(); }

  // A free octet in [lo, hi], or a lease with octet() == -1 when there is none.
  static ClusterLease take(int lo, int hi) {
    ClusterLease lease;
    std::string routes = "\n" + host_routes();
    int span = hi - lo + 1;
    int start = static_cast<int>(std::random_device{}() % static_cast<unsigned>(span));
    for (int i = 0; i < span; ++i) {
      int o = lo + (start + i) % span;
      std::string net = "10." + std::to_string(o) + ".";
      if (routes.find(" " + net) != std::string::npos ||
          routes.find("\n" + net) != std::string::npos) {
        continue;
      }
      std::string path = "/tmp/mill-network-test-10." + std::to_string(o) + ".lock";
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0) continue;
      // The holder unlinks the file on release: a lock on an inode that is no longer at
      // the path is stale, so check that it still is.
      struct stat held {};
      struct stat now {};
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::fstat(fd, &held) == 0 &&
          ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino) {
        lease.octet_ = o;
        lease.fd_ = fd;
        lease.path_ = path;
        return lease;
      }
      ::close(fd);
    }
    return lease;
  }

  int octet() const { return octet_; }
  // "10.<octet>.<c>.<d>"
  std::string ip(int c, int d) const {
    return "10." + std::to_string(octet_) + "." + std::to_string(c) + "." + std::to_string(d);
  }
  std::string cidr() const { return ip(0, 0) + "/16"; }

 private:
  // Every IPv4 route of every table, one per line, as `ip` prints them.
  static std::string host_routes() {
    std::string out;
    FILE* p = ::popen("ip -4 route show table all 2>/dev/null", "r");
    if (p == nullptr) return out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
  }

  void release() {
    if (fd_ >= 0) {
      ::unlink(path_.c_str());
      ::close(fd_);
    }
    fd_ = -1;
    octet_ = -1;
  }

  int octet_ = -1;
  int fd_ = -1;
  std::string path_;
};

}  // namespace mill::testing
