#pragma once

// Builds tar layers for tests with libarchive's write API: any entry a real layer
// can hold, and the hostile ones a real tool would never write ("../x", hardlinks
// out of the layer). Failures are gtest failures; the test binary must link
// libarchive (mill_image does).

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mill::testing {

enum class Compression { kNone, kGzip, kZstd };

struct TarEntry {
  std::string path;
  unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFIFO, ...
  unsigned mode = 0644;      // permission bits, setuid/setgid/sticky included
  int64_t uid = 0;
  int64_t gid = 0;
  std::string content;   // regular files
  std::string symlink;   // AE_IFLNK target
  std::string hardlink;  // when set, the entry is a hardlink to this path
  int64_t mtime = 1700000000;
  unsigned rdev_major = 0, rdev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

inline TarEntry tar_entry(std::string path, unsigned type, unsigned mode) {
  TarEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  return e;
}
inline TarEntry tar_file(std::string path, std::string content, unsigned mode = 0644) {
  TarEntry e = tar_entry(std::move(path), AE_IFREG, mode);
  e.content = std::move(content);
  return e;
}
inline TarEntry tar_dir(std::string path, unsigned mode = 0755) {
  return tar_entry(std::move(path), AE_IFDIR, mode);
}
inline TarEntry tar_symlink(std::string path, std::string target) {
  TarEntry e = tar_entry(std::move(path), AE_IFLNK, 0777);
  e.symlink = std::move(target);
  return e;
}
inline TarEntry tar_hardlink(std::string path, std::string target) {
  TarEntry e = tar_entry(std::move(path), AE_IFREG, 0644);
  e.hardlink = std::move(target);
  return e;
}

// Writes `entries`, in order, as a pax tar to `path`.
inline void write_tar(const std::string& path, const std::vector<TarEntry>& entries,
                      Compression compression = Compression::kNone) {
  archive* out = archive_write_new();
  ASSERT_NE(out, nullptr);
  archive_write_set_format_pax_restricted(out);
  if (compression == Compression::kGzip) archive_write_add_filter_gzip(out);
  if (compression == Compression::kZstd) archive_write_add_filter_zstd(out);
  ASSERT_EQ(archive_write_open_filename(out, path.c_str()), ARCHIVE_OK)
      << archive_error_string(out);
  for (const TarEntry& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime, 0);
    if (!e.hardlink.empty()) {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_perm(entry, e.mode);
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
      archive_entry_set_size(entry, 0);
    } else {
      archive_entry_set_filetype(entry, e.type);
      archive_entry_set_perm(entry, e.mode);
      if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.symlink.c_str());
      if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
        archive_entry_set_rdev(entry, makedev(e.rdev_major, e.rdev_minor));
      }
      archive_entry_set_size(entry, e.type == AE_IFREG ? e.content.size() : 0);
    }
    for (const auto& [name, value] : e.xattrs) {
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    }
    EXPECT_EQ(archive_write_header(out, entry), ARCHIVE_OK) << archive_error_string(out);
    if (e.hardlink.empty() && e.type == AE_IFREG && !e.content.empty()) {
      EXPECT_EQ(archive_write_data(out, e.content.data(), e.content.size()),
                static_cast<la_ssize_t>(e.content.size()));
    }
    archive_entry_free(entry);
  }
  EXPECT_EQ(archive_write_close(out), ARCHIVE_OK) << archive_error_string(out);
  archive_write_free(out);
}

}  // namespace mill::testing
