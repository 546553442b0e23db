#include "server/data_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/files.h"
#include "support/temp_dir.h"

namespace mill::server {
namespace {

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_.dir = root_.file("nested/data"); }

  static int mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  }

  testing::TempDir root_;
  DataDir dir_;
};

TEST_F(DataDirTest, InitMakesPrivateFilesWithStrongTokens) {
  auto c = init_data_dir(dir_, InitMode::kFresh);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->api_token.size(), 64u) << "256 bits as hex";
  EXPECT_EQ(c->join_token.size(), 64u);
  EXPECT_NE(c->api_token, c->join_token);
  EXPECT_EQ(c->secrets_key.size(), 32u);
  EXPECT_EQ(mode_of(dir_.dir), 0700);
  EXPECT_EQ(mode_of(dir_.api_token_path()), 0600);
  EXPECT_EQ(mode_of(dir_.join_token_path()), 0600);
  EXPECT_EQ(mode_of(dir_.secrets_key_path()), 0600);

  auto loaded = load_data_dir(dir_);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->api_token, c->api_token);
  EXPECT_EQ(loaded->secrets_key, c->secrets_key);
}

TEST_F(DataDirTest, RefusesToReinitialiseWithoutForce) {
  auto first = *init_data_dir(dir_, InitMode::kFresh);
  auto again = init_data_dir(dir_, InitMode::kFresh);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(again.error().message.find("--force"), std::string::npos);
  EXPECT_EQ(load_data_dir(dir_)->api_token, first.api_token) << "nothing changed";

  auto forced = init_data_dir(dir_, InitMode::kForce);
  ASSERT_TRUE(forced);
  EXPECT_NE(forced->api_token, first.api_token);
  EXPECT_EQ(forced->secrets_key, first.secrets_key) << "secrets must stay readable";
}

TEST_F(DataDirTest, LoadingAnUninitialisedDirSaysWhatToDo) {
  auto r = load_data_dir(dir_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("mill init"), std::string::npos);
}

TEST_F(DataDirTest, CorruptKeyIsRejected) {
  ASSERT_TRUE(init_data_dir(dir_, InitMode::kFresh));
  ASSERT_TRUE(write_file_atomic(dir_.secrets_key_path(), std::string(64, 'z') + "\n", 0600));
  EXPECT_FALSE(load_data_dir(dir_));
}

TEST_F(DataDirTest, InitMakesTheClusterCaAndTheJoinTokenPinsIt) {
  auto c = init_data_dir(dir_, InitMode::kFresh);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(mode_of(dir_.ca_key_path()), 0600);
  auto ca = ensure_cluster_ca(dir_);
  ASSERT_TRUE(ca) << ca.error().to_string();
  EXPECT_EQ(ca->cert_pem, *read_file(dir_.ca_cert_path())) << "loaded, not made again";
  EXPECT_EQ(ca->key_pem, *read_file(dir_.ca_key_path()));
  auto token = join_token(dir_);
  ASSERT_TRUE(token) << token.error().to_string();
  auto parsed = crypto::parse_join_token(*token);
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(parsed->ca_fingerprint, *crypto::ca_fingerprint(ca->cert_pem));
  EXPECT_EQ(parsed->secret, c->join_token);

  // --force keeps the CA.
  ASSERT_TRUE(init_data_dir(dir_, InitMode::kForce));
  EXPECT_EQ(*read_file(dir_.ca_cert_path()), ca->cert_pem);
}

TEST_F(DataDirTest, ADirWithoutACaGetsOne) {
  ASSERT_TRUE(init_data_dir(dir_, InitMode::kFresh));
  const std::string old = *read_file(dir_.ca_cert_path());
  ASSERT_EQ(::unlink(dir_.ca_cert_path().c_str()), 0);
  ASSERT_EQ(::unlink(dir_.ca_key_path().c_str()), 0);
  auto ca = ensure_cluster_ca(dir_);
  ASSERT_TRUE(ca) << ca.error().to_string();
  EXPECT_NE(ca->cert_pem, old);
  EXPECT_EQ(*read_file(dir_.ca_cert_path()), ca->cert_pem);
  EXPECT_EQ(mode_of(dir_.ca_key_path()), 0600);
}

}  // namespace
}  // namespace mill::server
