// Secrets stay secret at rest: no plaintext value in the data dir (SQLite WAL
// included) or the server log, no token in the log, and private file modes.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "harness.h"

namespace mill::testing {
namespace {

namespace fs = std::filesystem;

std::string random_hex(size_t bytes) {
  std::ifstream in("/dev/urandom", std::ios::binary);
  std::string out;
  const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    unsigned char c = static_cast<unsigned char>(in.get());
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

std::string to_hex(const std::string& s) {
  std::string out;
  const char* hex = "0123456789abcdef";
  for (unsigned char c : s) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

int mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return st.st_mode & 07777;
}

bool wal_file_exists(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().string().ends_with("-wal") && fs::file_size(e.path()) > 0) return true;
  }
  return false;
}

// Leak checks: the value itself, and the trivially "encoded" forms of it.
void expect_absent(const std::string& haystack, const std::string& value,
                   const std::string& where) {
  EXPECT_EQ(haystack.find(value), std::string::npos) << "secret value in plaintext in " << where;
  EXPECT_EQ(haystack.find(to_hex(value)), std::string::npos)
      << "secret value hex-encoded in " << where;
  // A distinctive middle part, in case of framing around the value.
  EXPECT_EQ(haystack.find(value.substr(8, 24)), std::string::npos)
      << "part of the secret value in " << where;
}

TEST(SecretsAtRest, ValueNeverInPlaintextOnDiskOrInLog) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  const std::string value = "leak-probe-" + random_hex(24);
  auto put = api(server->address(), "PUT", "/v1/secrets/leak_probe", token,
                 boost::json::serialize(boost::json::object{{"value", value}}));
  ASSERT_EQ(put.status, 200) << put.body;
  // Read it back, so the read path gets a chance to leak it too.
  auto get = api(server->address(), "GET", "/v1/secrets/leak_probe", token);
  ASSERT_EQ(get.status, 200);
  ASSERT_NE(get.body.find(value), std::string::npos) << "the probe is not findable at all";

  // While running: the write sits in the WAL, which must be covered by the search.
  const std::string data = dir.file("data");
  EXPECT_TRUE(wal_file_exists(data)) << "expected a non-empty SQLite WAL while running";
  std::string tree = read_tree(data);
  ASSERT_FALSE(tree.empty());
  // The search works: the name is stored in the clear (it is not secret).
  EXPECT_NE(tree.find("leak_probe"), std::string::npos) << "the search would find nothing";
  expect_absent(tree, value, "the data dir (running)");
  expect_absent(server->log(), value, "the server log (running)");

  ASSERT_EQ(server->stop(SIGTERM), 0) << server->log();
  expect_absent(read_tree(data), value, "the data dir (stopped)");
  std::string log = server->log();
  expect_absent(log, value, "the server log (stopped)");
  // The log was written to (so the check above looked at something).
  EXPECT_NE(log.find("/v1/secrets/leak_probe"), std::string::npos) << log;
}

TEST(SecretsAtRest, TokensNeverInTheLog) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  std::string join = read_file_text(dir.file("data/join.token"));
  while (!join.empty() && join.back() == '\n') join.pop_back();
  ASSERT_EQ(token.size(), 64u);
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  // Successful and failed attempts alike; the token in a header, a body and a path.
  EXPECT_EQ(api(server->address(), "GET", "/v1/status", token).status, 200);
  EXPECT_EQ(api(server->address(), "GET", "/v1/status", token + "x").status, 401);
  EXPECT_EQ(api(server->address(), "GET", "/v1/status", join).status, 401);
  auto bad = api(server->address(), "PUT", "/v1/secrets/t", token, "{\"value\":" + token);
  EXPECT_EQ(bad.status, 400);
  ASSERT_EQ(server->stop(SIGTERM), 0) << server->log();
  std::string log = server->log();
  EXPECT_FALSE(log.empty());
  EXPECT_EQ(log.find(token), std::string::npos) << "API token in the log:\n" << log;
  EXPECT_EQ(log.find(token.substr(0, 16)), std::string::npos) << "API token prefix in the log";
  EXPECT_EQ(log.find(join), std::string::npos) << "join token in the log";
  EXPECT_EQ(log.find(join.substr(0, 16)), std::string::npos) << "join token prefix in the log";
}

TEST(SecretsAtRest, DataDirAndKeyFilesArePrivate) {
  TempDir dir;
  std::string token = init_data_dir(dir);
  const std::string data = dir.file("data");
  auto check = [&](const std::string& when) {
    EXPECT_EQ(mode_of(data), 0700) << "data dir mode " << when;
    for (const char* f : {"api.token", "join.token", "secrets.key"}) {
      EXPECT_EQ(mode_of(data + "/" + f), 0600) << f << " mode " << when;
    }
    // The client config holds the token too.
    EXPECT_EQ(mode_of(dir.file("client.toml")), 0600) << "client.toml mode " << when;
  };
  check("after init");
  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  ASSERT_EQ(api(server->address(), "PUT", "/v1/secrets/s", token, R"({"value":"v"})").status, 200);
  check("while running");
  ASSERT_EQ(server->stop(SIGTERM), 0) << server->log();
  // --force keeps the modes.
  auto r =
      run_mill({"init", "--force", "--data-dir", data}, {{"MILL_CONFIG", dir.file("client.toml")}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check("after init --force");
}

}  // namespace
}  // namespace mill::testing
