#pragma once

// The fixture of the layer-unpack tests (tests/unit/image/unpack_test.cc, and the ones
// that need root in tests/system/image): a tar built in a temp dir, unpacked into
// another.

#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <filesystem>
#include <string>
#include <vector>

#include "image/unpack.h"
#include "support/tar_writer.h"
#include "support/temp_dir.h"

namespace mill::testing {

// The value of extended attribute `name` of `path` (not followed), "<none>" if unset.
inline std::string xattr(const std::string& path, const std::string& name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
  return n < 0 ? std::string("<none>") : std::string(buf, n);
}

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directory(dest_); }

  Result<image::UnpackStats> unpack(const std::vector<TarEntry>& entries,
                                    Compression compression = Compression::kNone) {
    write_tar(blob_, entries, compression);
    return image::unpack_layer(blob_, dest_);
  }
  std::string in_dest(const std::string& rel) const { return dest_ + "/" + rel; }

  TempDir tmp_;
  std::string blob_ = tmp_.file("layer.tar");
  std::string dest_ = tmp_.file("layer");
};
}  // namespace mill::testing
