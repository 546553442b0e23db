#include "volume/scratch_disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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
    : root_(std::move(root)), size_(size), count_(count) {}

SpareDisks::~SpareDisks() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (const auto& dir : ready_) {
    if (auto r = remove_scratch_disk(dir); !r)
      log::warn("spare disk " + dir + ": " + r.error().message);
    ::rmdir(dir.c_str());
  }
}

void SpareDisks::start() {
  if (count_ <= 0 || size_ <= 0 || thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

bool SpareDisks::take(const std::string& dir, std::int64_t bytes) {
  std::string spare;
  {
    std::lock_guard lock(mu_);
    if (bytes != size_ || ready_.empty()) return false;
    spare = std::move(ready_.front());
    ready_.pop_front();
  }
  cv_.notify_all();
  if (::rename(spare.c_str(), dir.c_str()) != 0) {
    // `dir` is left from an interrupted start: the caller makes its own disk there.
    std::lock_guard lock(mu_);
    ready_.push_front(std::move(spare));
    return false;
  }
  return true;
}

void SpareDisks::starting() {
  std::lock_guard lock(mu_);
  ++starting_;
}

void SpareDisks::started() {
  {
    std::lock_guard lock(mu_);
    if (starting_ > 0) --starting_;
  }
  cv_.notify_all();
}

void SpareDisks::run() {
  using Clock = std::chrono::steady_clock;
  constexpr std::chrono::seconds kStartPause{2};
  std::unique_lock lock(mu_);
  const std::string prefix =
      root_ + "/" + std::string(kSparePrefix) + std::to_string(::getpid()) + "-";
  while (true) {
    cv_.wait(lock, [this] { return stop_ || ready_.size() < static_cast<size_t>(count_); });
    if (stop_) return;
    // While containers start, they have the machine; unless none is left for the next.
    if (!ready_.empty() && starting_ > 0) {
      cv_.wait_until(lock, Clock::now() + kStartPause,
                     [this] { return stop_ || ready_.empty() || starting_ == 0; });
      if (stop_) return;
    }
    const std::string dir = prefix + std::to_string(next_++);
    lock.unlock();
    Result<std::string> made = ::mkdir(dir.c_str(), 0700) == 0
                                   ? make_scratch_disk(dir, size_)
                                   : Result<std::string>(io_error("cannot create " + dir, errno));
    if (!made) ::rmdir(dir.c_str());
    lock.lock();
    if (made) {
      ready_.push_back(dir);
    } else {
      log::warn("cannot make a spare disk: " + made.error().message);
      cv_.wait_for(lock, std::chrono::seconds(5), [this] { return stop_; });
    }
  }
}

}  // namespace mill::volume
