#include "volume/scratch_disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "volume/ext4.h"
#include "volume/loop_device.h"
#include "volume/mount.h"

namespace mill::volume {
namespace {

Unexpected io_error(const std::string& what, int err) {
  return make_error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

}  // namespace

Result<std::string> make_scratch_disk(const std::string& dir, std::int64_t bytes) {
  if (bytes < (std::int64_t{1} << 20)) {
    return make_error(ErrorCode::kInvalidArgument, "a disk needs at least 1M");
  }
  const std::string image = dir + "/disk.img";
  const std::string mnt = dir + "/disk";
  MILL_TRY(remove_scratch_disk(dir));
  if (::mkdir(mnt.c_str(), 0700) != 0 && errno != EEXIST) {
    return io_error("cannot create " + mnt, errno);
  }
  int fd = ::open(image.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create " + image, errno);
  bool sized = ::ftruncate(fd, bytes) == 0;
  int err = errno;
  ::close(fd);
  auto fail = [&](Error e) -> Result<std::string> {
    (void)remove_scratch_disk(dir);
    return Unexpected(std::move(e));
  };
  if (!sized) return fail({ErrorCode::kIo, "cannot size " + image + ": " + std::strerror(err)});
  if (auto made = make_ext4(image, Ext4Use::kScratch); !made) return fail(made.error());
  auto device = attach_loop_device(image);
  if (!device) return fail(device.error());
  // The mount keeps the device attached from here on (autoclear once unmounted).
  if (auto mounted = mount_ext4(device->path, mnt, /*scratch=*/true); !mounted)
    return fail(mounted.error());
  return mnt;
}

Result<void> remove_scratch_disk(const std::string& dir) {
  const std::string mnt = dir + "/disk";
  MILL_TRY(unmount(mnt, WhenBusy::kDetach));
  ::rmdir(mnt.c_str());
  if (::unlink((dir + "/disk.img").c_str()) != 0 && errno != ENOENT) {
    return io_error("cannot remove " + dir + "/disk.img", errno);
  }
  return {};
}

namespace {
constexpr std::string_view kSparePrefix = ".spare-";
}  // namespace

bool is_spare_disk_dir(std::string_view name) { return name.starts_with(kSparePrefix); }

SpareDisks::SpareDisks(std::string root, std::int64_t size, int count)
    : root_(std::move(root)),
      size_(size),
      pool_(
          "spare disk", size > 0 ? count : 0,
          [this]() -> Result<std::string> {
            const std::string dir = root_ + "/" + std::string(kSparePrefix) +
                                    std::to_string(::getpid()) + "-" + std::to_string(next_++);
            if (::mkdir(dir.c_str(), 0700) != 0) return io_error("cannot create " + dir, errno);
            if (auto made = make_scratch_disk(dir, size_); !made) {
              ::rmdir(dir.c_str());
              return Unexpected(std::move(made).error());
            }
            return dir;
          },
          [](std::string& dir) {
            if (auto r = remove_scratch_disk(dir); !r) {
              log::warn("spare disk " + dir + ": " + r.error().message);
            }
            ::rmdir(dir.c_str());
          }) {}

bool SpareDisks::take(const std::string& dir, std::int64_t bytes) {
  if (bytes != size_) return false;
  auto spare = pool_.take();
  if (!spare) return false;
  if (::rename(spare->c_str(), dir.c_str()) != 0) {
    // `dir` is left from an interrupted start: the caller makes its own disk there.
    pool_.put_back(std::move(*spare));
    return false;
  }
  return true;
}

}  // namespace mill::volume
