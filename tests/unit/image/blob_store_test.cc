#include "image/blob_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/files.h"
#include "crypto/sha256.h"
#include "support/temp_dir.h"

namespace mill::image {
namespace {

size_t files_under(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

TEST(BlobStore, StoresVerifiedBlobsByDigest) {
  testing::TempDir dir;
  auto store = BlobStore::open(dir.path());
  ASSERT_TRUE(store);
  std::string data(100000, 'z');
  std::string digest = crypto::sha256_digest(data);
  EXPECT_FALSE(store->has(digest));
  auto w = store->begin(digest, data.size());
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->write(std::string_view(data).substr(0, 5000)));
  EXPECT_FALSE(store->has(digest)) << "visible before commit";
  ASSERT_TRUE((*w)->write(std::string_view(data).substr(5000)));
  ASSERT_TRUE((*w)->commit());
  EXPECT_TRUE(store->has(digest));
  EXPECT_EQ(store->path(digest), dir.path() + "/blobs/sha256/" + digest.substr(7));
  EXPECT_EQ(*read_file(store->path(digest)), data);
  EXPECT_EQ(*store->size(digest), data.size());
  ASSERT_TRUE(store->remove(digest));
  EXPECT_FALSE(store->has(digest));
  EXPECT_TRUE(store->remove(digest)) << "removing an absent blob is fine";
}

TEST(BlobStore, MismatchLeavesNothingBehind) {
  testing::TempDir dir;
  auto store = BlobStore::open(dir.path());
  ASSERT_TRUE(store);
  std::string want = crypto::sha256_digest("expected");
  auto w = store->begin(want, 8);
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->write("tampered"));
  auto r = (*w)->commit();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "blob " + want + " does not match its digest (got " +
                                   crypto::sha256_digest("tampered") + ")");
  EXPECT_FALSE(store->has(want));
  EXPECT_EQ(files_under(dir.path()), 0u);

  // Too long, too short, and abandoned writers leave nothing either.
  auto longer = store->begin(want, 3);
  EXPECT_FALSE((*longer)->write("toolong"));
  auto shorter = store->begin(want, 100);
  ASSERT_TRUE((*shorter)->write("short"));
  EXPECT_FALSE((*shorter)->commit());
  {
    auto abandoned = store->begin(want, 8);
    ASSERT_TRUE((*abandoned)->write("partial"));
  }
  EXPECT_EQ(files_under(dir.path()), 0u);
  EXPECT_FALSE(store->begin("sha256:nothex", 1));
}

}  // namespace
}  // namespace mill::image
