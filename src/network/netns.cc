#include "network/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

namespace mill::network {
namespace {

Unexpected sys_error(const std::string& what, int err) {
  return make_error(ErrorCode::kIo, what + ": " + strerror(err));
}

// The mountinfo "root" field of the mount at exactly `dir`, or "" when `dir` is not a
// mount point. Paths in mountinfo escape spaces as \040; our dirs have none.
std::string mount_root_at(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::string root;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, mroot, point;
    fields >> id >> parent >> dev >> mroot >> point;
    if (point == dir) root = mroot;  // the last one is the one on top
  }
  return root;
}

}  // namespace

Result<void> prepare_netns_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kIo, "create " + dir + ": " + ec.message());
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return {};
  if (errno != EINVAL) return sys_error("make " + dir + " shared", errno);
  // Not a mount point yet: bind it onto itself, then share it.
  if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
    return sys_error("bind mount " + dir, errno);
  }
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    return sys_error("make " + dir + " shared", errno);
  }
  return {};
}

void release_netns_dir(const std::string& dir) {
  std::error_code ec;
  auto canonical = std::filesystem::weakly_canonical(dir, ec).string();
  // A mount whose root is "/" is a filesystem of its own (say a tmpfs): not ours.
  std::string root = mount_root_at(canonical);
  if (root.empty() || root == "/") return;
  if (!std::filesystem::is_empty(canonical, ec) || ec) return;
  ::umount2(canonical.c_str(), MNT_DETACH);
}

Result<NewNetns> make_netns() {
  // unshare(CLONE_NEWNET) moves only the calling thread, so a short-lived thread makes
  // the namespace and opens it and a netlink socket inside it; the caller's thread
  // never changes namespace.
  Result<NewNetns> result = make_error(ErrorCode::kInternal, "netns thread did not run");
  auto body = [&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      result = sys_error("unshare(CLONE_NEWNET)", errno);
      return;
    }
    std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
    NewNetns ns;
    ns.fd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns.fd < 0) {
      result = sys_error("open " + self, errno);
      return;
    }
    auto link = NetlinkSocket::open();
    if (!link) {
      ::close(ns.fd);
      result = Unexpected(link.error());
      return;
    }
    ns.link = std::move(*link);
    result = std::move(ns);
  };
  try {
    std::thread(body).join();
  } catch (const std::system_error& e) {
    result = make_error(ErrorCode::kIo, std::string("netns thread: ") + e.what());
  }
  return result;
}

Result<void> bind_netns(int fd, const std::string& path) {
  int file = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (file < 0) {
    if (errno == EEXIST) return make_error(ErrorCode::kAlreadyExists, path + " exists");
    return sys_error("create " + path, errno);
  }
  ::close(file);
  std::string source = "/proc/self/fd/" + std::to_string(fd);
  if (::mount(source.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
    int err = errno;
    (void)remove_netns(path);
    return sys_error("bind mount " + path, err);
  }
  return {};
}

Result<NewNetns> create_netns(const std::string& path) {
  auto ns = MILL_TRY(make_netns());
  if (auto bound = bind_netns(ns.fd, path); !bound) {
    ::close(ns.fd);
    return Unexpected(std::move(bound).error());
  }
  return ns;
}

Result<void> remove_netns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return sys_error("unmount " + path, errno);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("remove " + path, errno);
  return {};
}

}  // namespace mill::network
