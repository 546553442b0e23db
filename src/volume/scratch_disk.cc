#include "volume/scratch_disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
  if (auto made = make_ext4(image); !made) return fail(made.error());
  auto device = attach_loop_device(image);
  if (!device) return fail(device.error());
  // The mount keeps the device attached from here on (autoclear once unmounted).
  if (auto mounted = mount_ext4(device->path, mnt); !mounted) return fail(mounted.error());
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

}  // namespace mill::volume
