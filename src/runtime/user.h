#pragma once

// Docker's user resolution: "uid", "uid:gid", "name", "name:group", "uid:group" ...
// looked up in the image's own /etc/passwd and /etc/group.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace mill::runtime {

using UidGid = std::pair<uint32_t, uint32_t>;

// PURE. `passwd` and `group` are the files' contents (may be empty). A bare user takes
// the primary group from passwd (0 for a numeric uid without an entry). kInvalidArgument
// when a name is not found.
Result<UidGid> parse_user(std::string_view user, std::string_view passwd, std::string_view group);

// Reads <rootfs>/etc/passwd and /etc/group, resolving symlinks inside the rootfs (an
// image's /etc/passwd -> /host/path never leaves it), then parse_user.
Result<UidGid> resolve_user(const std::string& rootfs, std::string_view user);

}  // namespace mill::runtime
