// unpack_layer against real libarchive on the real filesystem, as any user. What needs
// root (owners, device nodes, trusted.* xattrs) is in tests/system/image.

#include "image/unpack.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "support/files.h"
#include "support/tar_writer.h"
#include "support/temp_dir.h"
#include "support/unpack_fixture.h"

namespace mill::image {
namespace {

namespace fs = std::filesystem;
using testing::Compression;
using testing::names_in;
using testing::slurp;
using testing::tar_dir;
using testing::tar_file;
using testing::tar_hardlink;
using testing::tar_symlink;
using testing::TarEntry;
using testing::UnpackTest;
using testing::write_tar;

class UnpackCompressionTest : public UnpackTest,
                              public ::testing::WithParamInterface<Compression> {};

TEST_P(UnpackCompressionTest, UnpacksFilesDirsAndLinks) {
  auto stats = unpack({tar_dir("etc"), tar_file("etc/hosts", "127.0.0.1 localhost\n"),
                       tar_file("./bin/app", "binary!", 0755),  // parent dir not in the tar
                       tar_symlink("bin/sh", "/bin/app"), tar_hardlink("bin/app2", "bin/app")},
                      GetParam());
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_EQ(stats->entries, 5u);
  EXPECT_EQ(stats->bytes, 27u);
  EXPECT_EQ(slurp(in_dest("etc/hosts")), "127.0.0.1 localhost\n");
  EXPECT_EQ(slurp(in_dest("bin/app")), "binary!");
  EXPECT_EQ(fs::read_symlink(in_dest("bin/sh")), "/bin/app");
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat(in_dest("bin/app").c_str(), &a), 0);
  ASSERT_EQ(::stat(in_dest("bin/app2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
}

INSTANTIATE_TEST_SUITE_P(Formats, UnpackCompressionTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd));

// Each unpack changes directory on a thread of its own: concurrent unpacks land in
// their own dirs and the process's working directory never moves.
TEST_F(UnpackTest, ConcurrentUnpacksKeepToTheirOwnDirs) {
  std::string cwd_before = fs::current_path();
  constexpr int kLayers = 4;
  for (int i = 0; i < kLayers; ++i) {
    write_tar(tmp_.file("l" + std::to_string(i) + ".tar"),
              {tar_dir("d"), tar_file("d/f", std::string(100000, static_cast<char>('a' + i)))});
    fs::create_directory(tmp_.file("l" + std::to_string(i)));
  }
  std::vector<std::thread> threads;
  std::vector<Result<UnpackStats>> results(kLayers);
  for (int i = 0; i < kLayers; ++i) {
    threads.emplace_back([&, i] {
      std::string name = "l" + std::to_string(i);
      results[i] = unpack_layer(tmp_.file(name + ".tar"), tmp_.file(name), Sync::kNo);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kLayers; ++i) {
    std::string dir = tmp_.file("l" + std::to_string(i));
    ASSERT_TRUE(results[i]) << results[i].error().to_string();
    EXPECT_EQ(names_in(dir), std::set<std::string>{"d"});
    EXPECT_EQ(slurp(dir + "/d/f"), std::string(100000, static_cast<char>('a' + i)));
  }
  EXPECT_EQ(fs::current_path(), cwd_before);
  EXPECT_FALSE(fs::exists(cwd_before + "/d"));
}

TEST_F(UnpackTest, RefusesNonEmptyDestAndMissingBlob) {
  auto missing = unpack_layer(tmp_.file("nope.tar"), dest_);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);

  std::ofstream(in_dest("existing")) << "keep me";
  write_tar(blob_, {tar_file("f", "x")});
  auto busy = unpack_layer(blob_, dest_);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(names_in(dest_), std::set<std::string>{"existing"});
  EXPECT_EQ(slurp(in_dest("existing")), "keep me");
}

TEST_F(UnpackTest, CorruptAndTruncatedArchivesFailAndLeaveDestEmpty) {
  std::string big(256 * 1024, 'z');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) % 251);
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    write_tar(blob_, {tar_file("first", "ok"), tar_file("big", big)}, c);
    fs::resize_file(blob_, fs::file_size(blob_) / 2);
    auto truncated = unpack_layer(blob_, dest_);
    ASSERT_FALSE(truncated) << "compression " << static_cast<int>(c);
    EXPECT_EQ(truncated.error().code, ErrorCode::kInvalidArgument);
    EXPECT_TRUE(fs::is_empty(dest_)) << "compression " << static_cast<int>(c);
  }
  std::ofstream(blob_, std::ios::trunc) << std::string(4096, '\x5a');
  auto garbage = unpack_layer(blob_, dest_);
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(fs::is_empty(dest_));
}

// The image store unpacks layers while they download: the bytes come through a
// reader, in pieces of any size, and a reader's error (a dropped connection, a bad
// digest found at the end) is the unpack's error, with nothing left behind.
TEST_F(UnpackTest, UnpacksFromAReaderAndPassesOnItsError) {
  std::string big(300 * 1024, '\0');  // incompressible: the blob is as big
  uint32_t x = 7;
  for (char& c : big) c = static_cast<char>((x = x * 1664525u + 1013904223u) >> 24);
  write_tar(blob_, {tar_dir("d"), tar_file("d/big", big), tar_file("small", "hi")},
            Compression::kGzip);
  const std::string bytes = slurp(blob_);
  ASSERT_GT(bytes.size(), big.size());
  // Hands out the blob in odd-sized pieces; past `fail_at` bytes, a dropped connection.
  auto reader = [&bytes](size_t fail_at) {
    return [&bytes, fail_at, at = size_t{0}]() mutable -> Result<std::string_view> {
      if (at >= fail_at) return make_error(ErrorCode::kUnavailable, "connection reset");
      size_t n = std::min<size_t>(4093, bytes.size() - at);
      at += n;
      return std::string_view(bytes).substr(at - n, n);
    };
  };
  auto failed = unpack_layer(reader(bytes.size() / 2), dest_, Sync::kNo);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(failed.error().message, "connection reset");
  EXPECT_TRUE(fs::is_empty(dest_));

  auto stats = unpack_layer(reader(SIZE_MAX), dest_, Sync::kNo);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(slurp(in_dest("d/big")), big);
  EXPECT_EQ(slurp(in_dest("small")), "hi");
}

// Each attack is a tar that tries to write outside the layer dir. The layer dir sits
// beside the blob and a directory "outside" holding one file; after the failed unpack
// the parent must hold exactly those three, "outside" its one untouched file (no new
// hardlink to it either), and the layer dir nothing.
struct Attack {
  std::string name;
  std::vector<TarEntry> entries;
  std::string culprit;                                      // the entry the error must name
  std::function<void(const std::string&)> patch = nullptr;  // edits the written tar
};

// libarchive's writers drop the data of hardlink entries, but pax readers accept
// hardlinks that carry data. Turns the ustar header of regular file `name` into a
// hardlink to `target`, keeping its size and data (and its pax header, which makes
// the reader trust the size).
void turn_into_hardlink_with_data(const std::string& tar, const std::string& name,
                                  const std::string& target) {
  std::string bytes = slurp(tar);
  for (size_t off = 0; off + 512 <= bytes.size(); off += 512) {
    char* h = bytes.data() + off;
    if (std::string(h, strnlen(h, 100)) != name || h[156] != '0') continue;
    h[156] = '1';
    std::memset(h + 157, 0, 100);
    std::memcpy(h + 157, target.data(), target.size());
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(h[i]);
    std::snprintf(h + 148, 8, "%06o", sum);
    std::ofstream(tar, std::ios::binary | std::ios::trunc) << bytes;
    return;
  }
  ADD_FAILURE() << "no header for " << name;
}

std::vector<Attack> attacks(const std::string& outside) {
  TarEntry data_for_hardlink = tar_file("h", "overwrite");
  data_for_hardlink.xattrs = {{"user.pax", "1"}};  // forces a pax header
  return {
      {"DotDot", {tar_file("ok", "1"), tar_file("../pwned", "x")}, "../pwned"},
      {"DotDotInside", {tar_dir("a"), tar_file("a/../../pwned", "x")}, "a/../../pwned"},
      {"Absolute",
       {tar_file("ok", "1"), tar_file("/etc/mill-unpack-test-escape", "x")},
       "/etc/mill-unpack-test-escape"},
      {"HardlinkOut", {tar_hardlink("h", "../outside/secret")}, "'h'"},
      {"HardlinkAbsolute", {tar_hardlink("h", outside + "/secret")}, "'h'"},
      {"HardlinkMissing", {tar_file("ok", "1"), tar_hardlink("h", "nothere")}, "'h'"},
      {"SymlinkThenWrite", {tar_symlink("a", "../outside"), tar_file("a/pwned", "x")}, "a/pwned"},
      {"AbsoluteSymlinkThenWrite",
       {tar_symlink("a", outside), tar_dir("a/sub"), tar_file("a/sub/pwned", "x")},
       "a/sub"},
      {"SymlinkThenWhiteout", {tar_symlink("a", outside), tar_file("a/.wh.secret", "")}, "a/.wh"},
      {"DirReplacedBySymlink",
       {tar_dir("d", 0700), tar_symlink("d", outside), tar_file("d/pwned", "x")},
       "'d'"},
      {"HardlinkToSymlinkWithData",
       {tar_symlink("s", outside + "/secret"), data_for_hardlink},
       "'h'",
       [](const std::string& tar) { turn_into_hardlink_with_data(tar, "h", "s"); }},
  };
}

TEST_F(UnpackTest, EveryEscapeIsRejectedAndNothingIsWrittenOutside) {
  for (const Attack& attack : attacks(tmp_.file("outside"))) {
    SCOPED_TRACE(attack.name);
    fs::remove_all(tmp_.file("outside"));
    fs::create_directory(tmp_.file("outside"));
    std::ofstream(tmp_.file("outside/secret")) << "s";
    write_tar(blob_, attack.entries);
    if (attack.patch) attack.patch(blob_);
    auto stats = unpack_layer(blob_, dest_);
    ASSERT_FALSE(stats) << attack.name << " was accepted";
    EXPECT_EQ(stats.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(stats.error().message.find(attack.culprit), std::string::npos)
        << stats.error().message;
    EXPECT_EQ(names_in(tmp_.path()), (std::set<std::string>{"layer", "layer.tar", "outside"}));
    EXPECT_EQ(names_in(tmp_.file("outside")), std::set<std::string>{"secret"});
    EXPECT_EQ(slurp(tmp_.file("outside/secret")), "s");
    EXPECT_EQ(fs::hard_link_count(tmp_.file("outside/secret")), 1u);
    EXPECT_TRUE(fs::is_empty(dest_));
    EXPECT_FALSE(fs::exists("/etc/mill-unpack-test-escape"));
  }
}

}  // namespace
}  // namespace mill::image
