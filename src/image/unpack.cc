#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/fd.h"
#include "common/log.h"

namespace mill::image {
namespace {

// Compressed layers are read in big blocks: fewer syscalls, and zlib/zstd work best
// on large inputs.
constexpr size_t kReadBlock = 1 << 20;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMeta = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

constexpr int kExtractFlags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                              ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                              ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                              ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;

std::string errno_text(int err) { return std::strerror(err); }

using Fd = UniqueFd;

// "./a//b/./c/" -> "a/b/c"; "" or "." -> "" (the layer root). nullopt when the path
// is absolute or has a ".." component: such entries are rejected, never rewritten.
std::optional<std::string> normalize(std::string_view path) {
  if (path.empty()) return std::string();
  if (path.front() == '/') return std::nullopt;
  std::string out;
  out.reserve(path.size());
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    if (part == "..") return std::nullopt;
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out.append(part);
    }
    pos = end + 1;
  }
  return out;
}

std::pair<std::string, std::string> split_dir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

Unexpected reject(const std::string& entry, std::string_view why) {
  return make_error(ErrorCode::kInvalidArgument,
                    "layer entry '" + entry + "' rejected: " + std::string(why));
}

// What this layer put at a path so far. The layer dir starts empty and only this
// unpack writes to it, so the map is the whole truth about it.
enum class Kind { kDir, kSymlink, kWhiteout, kOther };

Kind kind_of(archive_entry* entry) {
  switch (archive_entry_filetype(entry)) {
    case AE_IFDIR:
      return Kind::kDir;
    case AE_IFLNK:
      return Kind::kSymlink;
    default:
      return Kind::kOther;
  }
}

// One unpack, run on a thread whose working directory is the layer dir.
class LayerUnpacker {
 public:
  explicit LayerUnpacker(int root_fd) : root_fd_(root_fd) {}
  ~LayerUnpacker() {
    if (out_ != nullptr) archive_write_free(out_);
    if (in_ != nullptr) archive_read_free(in_);
  }
  LayerUnpacker(const LayerUnpacker&) = delete;
  LayerUnpacker& operator=(const LayerUnpacker&) = delete;

  Result<UnpackStats> run(const LayerReader& read) {
    read_ = &read;
    in_ = archive_read_new();
    out_ = archive_write_disk_new();
    if (in_ == nullptr || out_ == nullptr)
      return make_error(ErrorCode::kIo, "libarchive: no memory");
    // OCI layers are plain, gzip or zstd; Docker also took bzip2 and xz. Only these,
    // all in-process: filter_all would run external programs (lzop, lrzip) on
    // whatever a blob claims to be.
    archive_read_support_filter_gzip(in_);
    archive_read_support_filter_zstd(in_);
    archive_read_support_filter_bzip2(in_);
    archive_read_support_filter_xz(in_);
    archive_read_support_format_tar(in_);  // ustar, pax, GNU
    // No user/group lookup callbacks: owners are restored by number.
    archive_write_disk_set_options(out_, kExtractFlags);
    if (archive_read_open(in_, this, nullptr, &LayerUnpacker::read_block, nullptr) != ARCHIVE_OK) {
      if (read_error_) return Unexpected(*read_error_);
      return make_error(ErrorCode::kInvalidArgument,
                        std::string("layer is not a readable tar: ") + archive_error_string(in_));
    }
    for (;;) {
      archive_entry* entry = nullptr;
      int r = archive_read_next_header(in_, &entry);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return corrupt();
      if (r == ARCHIVE_WARN) log::warn(std::string("layer: ") + archive_error_string(in_));
      ++stats_.entries;
      MILL_TRY(unpack_entry(entry));
    }
    // Applies the deferred directory modes and times.
    if (archive_write_close(out_) != ARCHIVE_OK) return write_error("(directory fix-ups)");
    for (const std::string& dir : opaque_) MILL_TRY(mark_opaque(dir));
    return stats_;
  }

 private:
  static la_ssize_t read_block(archive* a, void* self, const void** block) {
    auto* u = static_cast<LayerUnpacker*>(self);
    auto bytes = (*u->read_)();
    if (!bytes) {
      u->read_error_ = bytes.error();
      archive_set_error(a, EIO, "%s", bytes.error().message.c_str());
      return -1;
    }
    *block = bytes->data();
    return static_cast<la_ssize_t>(bytes->size());
  }

  Result<void> unpack_entry(archive_entry* entry) {
    const char* raw = archive_entry_pathname(entry);
    std::string shown = raw != nullptr ? raw : "";
    std::optional<std::string> path = normalize(shown);
    if (!path) return reject(shown, "absolute path or '..' component");
    if (path->empty()) return {};  // the layer root itself: its dir already exists
    MILL_TRY(check_parents(*path, shown));

    auto [dir, base] = split_dir(*path);
    if (base.starts_with(kWhiteoutPrefix)) return whiteout(dir, base, shown);

    Kind kind = kind_of(entry);
    auto existing = kinds_.find(*path);
    if (existing != kinds_.end() && existing->second == Kind::kDir && kind != Kind::kDir) {
      return reject(shown, "replaces a directory of the same layer");
    }
    if (const char* link = archive_entry_hardlink(entry)) {
      std::optional<std::string> target = normalize(link);
      if (!target || target->empty()) return reject(shown, "hardlink target escapes the layer");
      auto found = kinds_.find(*target);
      if (found == kinds_.end() || found->second == Kind::kWhiteout) {
        return reject(shown, "hardlink target '" + std::string(link) + "' is not in the layer");
      }
      if (found->second == Kind::kDir) return reject(shown, "hardlink to a directory");
      if (found->second == Kind::kSymlink && archive_entry_size(entry) > 0) {
        return reject(shown, "hardlink with data to a symlink");
      }
      archive_entry_set_hardlink(entry, target->c_str());
      kind = found->second;
    }
    archive_entry_set_pathname(entry, path->c_str());

    int r = archive_write_header(out_, entry);
    if (r < ARCHIVE_WARN) return write_error(shown);
    if (r == ARCHIVE_WARN) log::warn("layer entry '" + shown + "': " + archive_error_string(out_));
    if (archive_entry_size(entry) > 0) MILL_TRY(copy_data(shown));
    if (archive_write_finish_entry(out_) < ARCHIVE_WARN) return write_error(shown);
    record(*path, kind);
    return {};
  }

  // A parent that is a symlink of this layer would make libarchive write through it.
  Result<void> check_parents(const std::string& path, const std::string& shown) const {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      auto it = kinds_.find(path.substr(0, slash));
      if (it != kinds_.end() && it->second == Kind::kSymlink) {
        return reject(shown, "path goes through a symlink");
      }
    }
    return {};
  }

  // Once an entry is written, its parents are directories (libarchive made the
  // missing ones, or replaced a file or whiteout standing in the way).
  void record(const std::string& path, Kind kind) {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      kinds_[path.substr(0, slash)] = Kind::kDir;
    }
    kinds_[path] = kind;
  }

  Result<void> whiteout(const std::string& dir, const std::string& base, const std::string& shown) {
    if (base == kOpaqueMarker) {
      opaque_.insert(dir);
      return {};
    }
    if (base.starts_with(kWhiteoutMeta)) return {};  // aufs bookkeeping, meaningless here
    std::string name = base.substr(kWhiteoutPrefix.size());
    if (name.empty() || name == "." || name == "..") return reject(shown, "bad whiteout name");
    std::string hidden = dir.empty() ? name : dir + "/" + name;
    // A whiteout hides lower layers only; what this layer itself has at that name wins.
    if (kinds_.contains(hidden)) return {};
    Fd dir_fd = MILL_TRY(open_dir(dir, shown));
    if (::mknodat(dir_fd.get(), name.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0 && errno != EEXIST) {
      return make_error(ErrorCode::kIo, "whiteout '" + shown + "': " + errno_text(errno));
    }
    record(hidden, Kind::kWhiteout);
    return {};
  }

  Result<void> mark_opaque(const std::string& dir) {
    if (auto it = kinds_.find(dir); it != kinds_.end() && it->second != Kind::kDir) {
      return reject(dir + "/" + std::string(kOpaqueMarker), "opaque marker in a non-directory");
    }
    Fd fd = MILL_TRY(open_dir(dir, dir));
    if (::fsetxattr(fd.get(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
      return make_error(ErrorCode::kIo, "opaque dir '" + dir + "': " + errno_text(errno));
    }
    return {};
  }

  // Opens (creating as 0755 where missing) a directory of the layer, one component
  // at a time and never through a symlink.
  Result<Fd> open_dir(const std::string& dir, const std::string& shown) {
    Fd fd(::fcntl(root_fd_, F_DUPFD_CLOEXEC, 0));
    size_t pos = 0;
    while (fd.get() >= 0 && pos < dir.size()) {
      size_t end = dir.find('/', pos);
      if (end == std::string::npos) end = dir.size();
      std::string part = dir.substr(pos, end - pos);
      pos = end + 1;
      ::mkdirat(fd.get(), part.c_str(), 0755);  // EEXIST is fine; openat judges
      fd = Fd(::openat(fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    if (fd.get() < 0) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "layer entry '" + shown + "': cannot open its directory: " + errno_text(errno));
    }
    return fd;
  }

  Result<void> copy_data(const std::string& shown) {
    for (;;) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(in_, &block, &size, &offset);
      if (r == ARCHIVE_EOF) return {};
      if (r < ARCHIVE_WARN) return corrupt();
      if (archive_write_data_block(out_, block, size, offset) < ARCHIVE_WARN) {
        return write_error(shown);
      }
      stats_.bytes += size;
    }
  }

  Unexpected corrupt() {
    if (read_error_) return Unexpected(*read_error_);  // the bytes did not come
    return make_error(ErrorCode::kInvalidArgument,
                      std::string("corrupt or truncated layer: ") + archive_error_string(in_));
  }

  // libarchive's own safety checks fail with a message and no errno worth a kIo.
  Unexpected write_error(const std::string& shown) {
    int err = archive_errno(out_);
    bool system = err == ENOSPC || err == EDQUOT || err == EIO || err == EROFS || err == ENOMEM ||
                  err == EMFILE || err == ENFILE;
    const char* text = archive_error_string(out_);
    return make_error(system ? ErrorCode::kIo : ErrorCode::kInvalidArgument,
                      "layer entry '" + shown + "': " + (text != nullptr ? text : "write failed"));
  }

  int root_fd_;
  const LayerReader* read_ = nullptr;
  std::optional<Error> read_error_;
  archive* in_ = nullptr;
  archive* out_ = nullptr;
  UnpackStats stats_;
  std::unordered_map<std::string, Kind> kinds_;
  std::set<std::string> opaque_;
};

// Runs on its own thread: a private cwd (and umask, which libarchive briefly
// changes) so that relative extraction starts at the layer dir.
Result<UnpackStats> unpack_on_this_thread(const LayerReader& read, int root_fd) {
  if (::unshare(CLONE_FS) != 0 || ::fchdir(root_fd) != 0) {
    return make_error(ErrorCode::kIo, "unpack: private working directory: " + errno_text(errno));
  }
  LayerUnpacker unpacker(root_fd);
  return unpacker.run(read);
}

void clear_dir(const std::string& dir) {
  std::error_code ec;
  for (const auto& child : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code ignored;
    std::filesystem::remove_all(child.path(), ignored);
  }
}

}  // namespace

Result<UnpackStats> unpack_layer(const std::string& blob_path, const std::string& dest_dir,
                                 Sync sync) {
  Fd blob(::open(blob_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (blob.get() < 0) {
    ErrorCode code = errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo;
    return make_error(code, "layer blob " + blob_path + ": " + errno_text(errno));
  }
  std::unique_ptr<char[]> buffer(new char[kReadBlock]);
  LayerReader read = [&]() -> Result<std::string_view> {
    for (;;) {
      ssize_t n = ::read(blob.get(), buffer.get(), kReadBlock);
      if (n >= 0) return std::string_view(buffer.get(), static_cast<size_t>(n));
      if (errno != EINTR) {
        return make_error(ErrorCode::kIo, "layer blob " + blob_path + ": " + errno_text(errno));
      }
    }
  };
  return unpack_layer(read, dest_dir, sync);
}

Result<UnpackStats> unpack_layer(const LayerReader& read, const std::string& dest_dir, Sync sync) {
  Fd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) {
    return make_error(ErrorCode::kIo, "layer dir " + dest_dir + ": " + errno_text(errno));
  }
  std::error_code ec;
  if (!std::filesystem::is_empty(dest_dir, ec) || ec) {
    return make_error(ErrorCode::kInvalidArgument, "layer dir " + dest_dir + " is not empty");
  }

  Result<UnpackStats> result = make_error(ErrorCode::kInternal, "unpack did not run");
  try {
    std::thread worker([&] { result = unpack_on_this_thread(read, root.get()); });
    worker.join();
  } catch (const std::exception& e) {  // std::thread could not start
    result = make_error(ErrorCode::kIo, std::string("unpack thread: ") + e.what());
  }
  if (!result) {
    clear_dir(dest_dir);
    return result;
  }
  if (sync == Sync::kYes && ::syncfs(root.get()) != 0) {
    return make_error(ErrorCode::kIo, "syncfs " + dest_dir + ": " + errno_text(errno));
  }
  return result;
}

}  // namespace mill::image
