#pragma once

// Named network namespaces, the way `ip netns add` makes them: an empty file under a
// directory with the namespace bind-mounted onto it, so it outlives every process in
// it and anyone (runc, `ip netns exec`, setns) can join it by path. Internal.

#include <string>

#include "common/result.h"
#include "network/netlink.h"

namespace mill::network {

// Makes `dir` exist and be a shared mount point (bind-mounting it onto itself if it
// is not a mount point yet), as iproute2 does: unmounting a netns file then
// propagates to mount namespaces that copied it, so no copy keeps the netns alive.
Result<void> prepare_netns_dir(const std::string& dir);
// Undoes the self bind mount of prepare_netns_dir when `dir` is such a mount and
// holds no files any more. Anything else is left alone.
void release_netns_dir(const std::string& dir);

struct NewNetns {
  int fd = -1;         // the namespace, open (O_CLOEXEC); the caller closes it
  NetlinkSocket link;  // a NETLINK_ROUTE socket that acts inside the new namespace
};

// A new network namespace held only by the returned fd: bound nowhere, it goes away
// when the fd is closed. Does not move the calling thread.
Result<NewNetns> make_netns();
// Binds the namespace `fd` at `path`. kAlreadyExists when the file exists. On
// failure nothing is left behind.
Result<void> bind_netns(int fd, const std::string& path);
// make_netns + bind_netns.
Result<NewNetns> create_netns(const std::string& path);
// Unmounts and removes `path`; missing pieces are fine. The kernel frees the
// namespace (and the veth peers in it) once nothing else holds it.
Result<void> remove_netns(const std::string& path);

}  // namespace mill::network
