#include "image/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "crypto/crypto.h"
#include "image/reference.h"

namespace mill::image {
namespace {

Unexpected sys_error(const std::string& what, const std::string& path) {
  return make_error(ErrorCode::kIo, what + " " + path + ": " + std::strerror(errno));
}

Result<void> make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot create " + path + ": " + ec.message());
  return {};
}

}  // namespace

Result<BlobStore> BlobStore::open(std::string root) {
  MILL_TRY(make_dirs(root + "/blobs/sha256"));
  MILL_TRY(make_dirs(root + "/tmp"));
  return BlobStore(std::move(root));
}

std::string BlobStore::path(std::string_view digest) const {
  std::string_view hex = digest.starts_with("sha256:") ? digest.substr(7) : digest;
  return root_ + "/blobs/sha256/" + std::string(hex);
}

bool BlobStore::has(std::string_view digest) const {
  if (!is_valid_digest(digest)) return false;
  struct stat st {};
  return ::stat(path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<uint64_t> BlobStore::size(std::string_view digest) const {
  if (!is_valid_digest(digest)) {
    return make_error(ErrorCode::kInvalidArgument, "bad digest '" + std::string(digest) + "'");
  }
  struct stat st {};
  if (::stat(path(digest).c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return make_error(ErrorCode::kNotFound, "no blob " + std::string(digest));
    }
    return sys_error("cannot stat", path(digest));
  }
  return static_cast<uint64_t>(st.st_size);
}

Result<void> BlobStore::remove(std::string_view digest) {
  if (!is_valid_digest(digest)) {
    return make_error(ErrorCode::kInvalidArgument, "bad digest '" + std::string(digest) + "'");
  }
  if (::unlink(path(digest).c_str()) != 0 && errno != ENOENT) {
    return sys_error("cannot remove", path(digest));
  }
  return {};
}

Result<std::unique_ptr<BlobWriter>> BlobStore::begin(std::string_view digest,
                                                     uint64_t expected_size) {
  if (!is_valid_digest(digest)) {
    return make_error(ErrorCode::kInvalidArgument, "bad digest '" + std::string(digest) + "'");
  }
  std::string tmp = root_ + "/tmp/blob-" + std::string(digest.substr(7, 16)) + "-" +
                    MILL_TRY(crypto::random_hex(6));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error("cannot create", tmp);
  return std::unique_ptr<BlobWriter>(
      new BlobWriter(fd, std::move(tmp), path(digest), std::string(digest), expected_size));
}

Result<void> BlobStore::put(std::string_view digest, std::string_view bytes) {
  auto writer = MILL_TRY(begin(digest, bytes.size()));
  MILL_TRY(writer->write(bytes));
  return writer->commit();
}

BlobCheck::BlobCheck(std::string digest, uint64_t expected_size)
    : digest_(std::move(digest)), expected_size_(expected_size) {}

Result<void> BlobCheck::update(std::string_view chunk) {
  if (seen_ + chunk.size() > expected_size_) {
    return make_error(ErrorCode::kInvalidArgument, "blob " + digest_ + " is larger than its " +
                                                       std::to_string(expected_size_) + " bytes");
  }
  hash_.update(chunk);
  seen_ += chunk.size();
  return {};
}

Result<void> BlobCheck::finish() {
  if (seen_ != expected_size_) {
    return make_error(ErrorCode::kInvalidArgument,
                      "blob " + digest_ + " has " + std::to_string(seen_) +
                          " bytes, its descriptor says " + std::to_string(expected_size_));
  }
  std::string got = "sha256:" + hash_.finish_hex();
  if (got != digest_) {
    return make_error(ErrorCode::kInvalidArgument,
                      "blob " + digest_ + " does not match its digest (got " + got + ")");
  }
  return {};
}

BlobWriter::BlobWriter(int fd, std::string tmp_path, std::string final_path, std::string digest,
                       uint64_t expected_size)
    : fd_(fd),
      tmp_path_(std::move(tmp_path)),
      final_path_(std::move(final_path)),
      check_(std::move(digest), expected_size) {}

BlobWriter::~BlobWriter() { discard(); }

void BlobWriter::discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_path_.c_str());
  }
}

Result<void> BlobWriter::write(std::string_view chunk) {
  if (fd_ < 0) return make_error(ErrorCode::kInternal, "blob writer already finished");
  if (auto checked = check_.update(chunk); !checked) {
    discard();
    return checked;
  }
  while (!chunk.empty()) {
    ssize_t n = ::write(fd_, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      auto err = sys_error("cannot write", tmp_path_);
      discard();
      return err;
    }
    chunk.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<void> BlobWriter::commit() {
  if (fd_ < 0) return make_error(ErrorCode::kInternal, "blob writer already finished");
  if (auto checked = check_.finish(); !checked) {
    discard();
    return checked;
  }
  if (::fsync(fd_) != 0) {
    auto err = sys_error("cannot fsync", tmp_path_);
    discard();
    return err;
  }
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), final_path_.c_str()) != 0) {
    auto err = sys_error("cannot rename into", final_path_);
    ::unlink(tmp_path_.c_str());
    return err;
  }
  return {};
}

}  // namespace mill::image
