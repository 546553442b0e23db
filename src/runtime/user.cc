#include "runtime/user.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <optional>
#include <vector>

namespace mill::runtime {
namespace {

std::optional<uint32_t> parse_u32(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

// Finds the line of an /etc/passwd or /etc/group file whose name (field 0) or id
// (field 2) matches; returns its fields.
std::optional<std::vector<std::string_view>> find_entry(std::string_view file, std::string_view key,
                                                        bool by_id) {
  for (auto line : split(file, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    auto fields = split(line, ':');
    if (fields.size() < 4) continue;
    if (fields[by_id ? 2 : 0] == key) return fields;
  }
  return std::nullopt;
}

// Reads a file under `root` with every path component resolved inside it.
std::string read_in_root(const std::string& root, const char* relative) {
  int dir = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return {};
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, dir, relative, &how, sizeof how));
  close(dir);
  if (fd < 0) return {};
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && out.size() < (16u << 20)) out.append(buf, n);
  close(fd);
  return out;
}

}  // namespace

Result<UidGid> parse_user(std::string_view user, std::string_view passwd, std::string_view group) {
  if (user.empty()) return UidGid{0, 0};
  auto colon = user.find(':');
  std::string_view u = user.substr(0, colon);
  std::optional<std::string_view> g;
  if (colon != std::string_view::npos) g = user.substr(colon + 1);

  uint32_t uid = 0, gid = 0;
  if (auto n = parse_u32(u)) {
    uid = *n;
    auto entry = find_entry(passwd, u, true);
    if (entry) gid = parse_u32((*entry)[3]).value_or(0);
  } else {
    auto entry = find_entry(passwd, u, false);
    if (!entry) {
      return make_error(ErrorCode::kInvalidArgument,
                        "user '" + std::string(u) + "' not found in the image's /etc/passwd");
    }
    auto id = parse_u32((*entry)[2]);
    if (!id) return make_error(ErrorCode::kInvalidArgument, "malformed /etc/passwd entry");
    uid = *id;
    gid = parse_u32((*entry)[3]).value_or(0);
  }
  if (g) {
    if (auto n = parse_u32(*g)) {
      gid = *n;
    } else {
      auto entry = find_entry(group, *g, false);
      auto id = entry ? parse_u32((*entry)[2]) : std::nullopt;
      if (!id) {
        return make_error(ErrorCode::kInvalidArgument,
                          "group '" + std::string(*g) + "' not found in the image's /etc/group");
      }
      gid = *id;
    }
  }
  return UidGid{uid, gid};
}

Result<UidGid> resolve_user(const std::string& rootfs, std::string_view user) {
  return parse_user(user, read_in_root(rootfs, "etc/passwd"), read_in_root(rootfs, "etc/group"));
}

}  // namespace mill::runtime
