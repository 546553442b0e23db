// The `mill` CLI against a real server: init (and --force), status/nodes tables and
// --json, secret set/get/ls/rm, and the error messages a user sees when things fail.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/version.h"
#include "harness.h"

namespace mill::testing {
namespace {

namespace json = boost::json;

using Env = std::map<std::string, std::string>;

size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1))
    ++n;
  return n;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool valid_json(const std::string& text) {
  boost::system::error_code ec;
  json::parse(text, ec);
  return !ec;
}

std::string trimmed_file(const std::string& path) {
  std::string s = read_file_text(path);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A TempDir with an initialised data dir and a running server; env() points the
// CLI at it through the client config `mill init` wrote plus MILL_ADDR.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = init_data_dir(dir_);
    ASSERT_FALSE(token_.empty());
    server_ = MillServer::start(dir_);
    ASSERT_TRUE(server_);
  }
  Env env() const {
    return {{"MILL_CONFIG", dir_.file("client.toml")}, {"MILL_ADDR", server_->address()}};
  }
  CommandResult mill(const std::vector<std::string>& args, const std::string& in = {}) const {
    return run_mill(args, env(), in);
  }

  TempDir dir_;
  std::string token_;
  std::unique_ptr<MillServer> server_;
};

TEST(CliInit, CreatesFilesAndPrintsTokenOnce) {
  TempDir dir;
  const std::string data = dir.file("data");
  auto r = run_mill({"init", "--data-dir", data}, {{"MILL_CONFIG", dir.file("client.toml")}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"api.token", "join.token", "secrets.key"}) {
    EXPECT_FALSE(trimmed_file(data + "/" + f).empty()) << f << " missing or empty";
  }
  std::string token = trimmed_file(data + "/api.token");
  ASSERT_EQ(token.size(), 64u);
  EXPECT_EQ(count_of(r.out + r.err, token), 1u) << "the token should be printed exactly once:\n"
                                                << r.out << r.err;
  // The join token and the secrets key are not printed.
  EXPECT_EQ(count_of(r.out + r.err, trimmed_file(data + "/join.token")), 0u);
  EXPECT_EQ(count_of(r.out + r.err, trimmed_file(data + "/secrets.key")), 0u);
  // The client config holds the token for later commands.
  std::string client = read_file_text(dir.file("client.toml"));
  EXPECT_NE(client.find(token), std::string::npos) << client;
}

// `mill init --listen`: the server on that data dir listens there without being told,
// and the client config points there, so `mill` on this machine finds it (it pointed
// at 127.0.0.1:4400 whatever the server later listened on). A bad address changes
// nothing.
TEST(CliInit, ListenIsWhereTheServerListensAndWhereTheCliLooks) {
  TempDir dir;
  const std::string data = dir.file("data");
  const std::map<std::string, std::string> env{{"MILL_CONFIG", dir.file("client.toml")}};
  auto bad = run_mill({"init", "--data-dir", data, "--listen", "4401"}, env);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--listen must be HOST:PORT"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(data + "/api.token")) << "a refused init made files";

  // A loopback port nothing listens on (taken from the kernel, then given back).
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  const std::string listen = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto r = run_mill({"init", "--data-dir", data, "--listen", listen}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_file_text(dir.file("client.toml")).find("address = \"http://" + listen + "\""),
            std::string::npos)
      << read_file_text(dir.file("client.toml"));
  EXPECT_NE(r.out.find("talks to http://" + listen), std::string::npos) << r.out;
  auto server = MillServer::start(dir);  // no --listen: the data dir's
  ASSERT_TRUE(server);
  EXPECT_EQ(server->address(), listen);
  auto status = run_mill({"status"}, env);
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
}

// `openssl x509 -fingerprint -sha256` of a PEM file, as 64 lower-case hex digits.
std::string sha256_of_certificate(const std::string& path) {
  std::string out;
  FILE* p = ::popen(("openssl x509 -noout -fingerprint -sha256 -in '" + path + "'").c_str(), "r");
  char buf[256];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  if (p) ::pclose(p);
  std::string hex;
  for (char c : out.substr(out.find('=') + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return hex;
}

TEST(CliInit, MakesTheClusterCaAndTheJoinTokenPinsIt) {
  TempDir dir;
  const std::string data = dir.file("data");
  Env init_env{{"MILL_CONFIG", dir.file("client.toml")}};
  ASSERT_EQ(run_mill({"init", "--data-dir", data}, init_env).exit_code, 0);
  struct stat st {};
  ASSERT_EQ(::stat((data + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(read_file_text(data + "/ca.key").find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_NE(read_file_text(data + "/ca.pem").find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(read_file_text(dir.file("client.toml")).find("ca = \"" + data + "/ca.pem\""),
            std::string::npos)
      << read_file_text(dir.file("client.toml"));

  const std::string pin = sha256_of_certificate(data + "/ca.pem");
  ASSERT_EQ(pin.size(), 64u);
  auto token = run_mill({"join-token", "--data-dir", data});
  ASSERT_EQ(token.exit_code, 0) << token.err;
  EXPECT_EQ(token.out, "mill-join-v1." + pin + "." + trimmed_file(data + "/join.token") + "\n");

  // --force keeps the CA: the nodes that joined still trust this server.
  const std::string ca = read_file_text(data + "/ca.pem");
  ASSERT_EQ(run_mill({"init", "--force", "--data-dir", data}, init_env).exit_code, 0);
  EXPECT_EQ(read_file_text(data + "/ca.pem"), ca);

  // A data dir from before the CA gets one when the server starts.
  std::filesystem::remove(data + "/ca.pem");
  std::filesystem::remove(data + "/ca.key");
  {
    auto server = MillServer::start(dir);
    ASSERT_TRUE(server);
    ASSERT_EQ(server->stop(SIGTERM), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(data + "/ca.key"));
  const std::string made = sha256_of_certificate(data + "/ca.pem");
  EXPECT_EQ(made.size(), 64u);
  EXPECT_NE(made, pin);
  auto again = run_mill({"join-token", "--data-dir", data});
  EXPECT_EQ(again.out, "mill-join-v1." + made + "." + trimmed_file(data + "/join.token") + "\n");
}

TEST(CliInit, SecondInitNeedsForceAndForceRotatesTokenKeepingSecrets) {
  TempDir dir;
  const std::string data = dir.file("data");
  Env init_env{{"MILL_CONFIG", dir.file("client.toml")}};
  ASSERT_EQ(run_mill({"init", "--data-dir", data}, init_env).exit_code, 0);
  std::string old_token = trimmed_file(data + "/api.token");
  std::string old_join = trimmed_file(data + "/join.token");
  std::string key = read_file_text(data + "/secrets.key");

  // A secret set before re-initialising.
  std::string address;
  {
    auto server = MillServer::start(dir);
    ASSERT_TRUE(server);
    Env env{{"MILL_CONFIG", dir.file("client.toml")}, {"MILL_ADDR", server->address()}};
    auto set = run_mill({"secret", "set", "survivor", "still-here"}, env);
    ASSERT_EQ(set.exit_code, 0) << set.err;
    ASSERT_EQ(server->stop(SIGTERM), 0);
  }

  auto again = run_mill({"init", "--data-dir", data}, init_env);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;
  EXPECT_EQ(trimmed_file(data + "/api.token"), old_token) << "a refused init changed the token";

  auto forced = run_mill({"init", "--force", "--data-dir", data}, init_env);
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  std::string new_token = trimmed_file(data + "/api.token");
  EXPECT_EQ(new_token.size(), 64u);
  EXPECT_NE(new_token, old_token) << "--force did not rotate the API token";
  EXPECT_NE(trimmed_file(data + "/join.token"), old_join)
      << "--force did not rotate the join token";
  EXPECT_EQ(read_file_text(data + "/secrets.key"), key) << "--force changed the secrets key";
  EXPECT_EQ(count_of(forced.out, new_token), 1u) << forced.out;

  auto server = MillServer::start(dir);
  ASSERT_TRUE(server);
  Env env{{"MILL_CONFIG", dir.file("client.toml")}, {"MILL_ADDR", server->address()}};
  auto get = run_mill({"secret", "get", "survivor"}, env);
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "still-here\n");
  // The old token no longer works.
  EXPECT_EQ(api(server->address(), "GET", "/v1/status", old_token).status, 401);
  auto old = run_mill({"status"}, {{"MILL_ADDR", server->address()},
                                   {"MILL_TOKEN", old_token},
                                   {"MILL_CONFIG", dir.file("nonexistent.toml")}});
  EXPECT_EQ(old.exit_code, 1);
  // Same node after re-init: the node id lives in the data dir.
  auto nodes = json::parse(api(server->address(), "GET", "/v1/nodes", new_token).body);
  ASSERT_EQ(nodes.as_array().size(), 1u);
  EXPECT_EQ(nodes.as_array()[0].at("id").as_string(), "node-1");
}

TEST_F(CliTest, StatusPrintsReadableSummaryAndTable) {
  auto r = mill({"status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  bool header = false, row = false;
  for (const auto& l : lines) {
    header = header || (l.starts_with("ID") && l.find("STATUS") != std::string::npos &&
                        l.find("NAME") != std::string::npos);
    row = row || (l.starts_with("node-1") && l.find("ready") != std::string::npos);
  }
  EXPECT_TRUE(header) << r.out;
  EXPECT_TRUE(row) << r.out;
  EXPECT_NE(r.out.find("1 ready of 1"), std::string::npos) << r.out;
  EXPECT_FALSE(valid_json(r.out)) << "the default output should be a table, not JSON";

  auto j = mill({"status", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  ASSERT_TRUE(valid_json(j.out)) << j.out;
  auto v = json::parse(j.out);
  EXPECT_EQ(v.at("nodes").as_array().size(), 1u);
  EXPECT_TRUE(v.at("services").is_array());
  EXPECT_TRUE(v.at("tasks").is_array());
}

TEST_F(CliTest, NodesPrintsTableAndJson) {
  auto r = mill({"nodes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("ID")) << r.out;
  for (const char* col : {"NAME", "ADDRESS", "STATUS", "CPU ALLOCATABLE", "CPU USED",
                          "MEM ALLOCATABLE", "MEM USED", "DISK ALLOCATABLE", "SEEN", "VERSION"}) {
    EXPECT_NE(lines[0].find(col), std::string::npos) << col << " column missing:\n" << r.out;
  }
  EXPECT_TRUE(lines[1].starts_with("node-1")) << r.out;
  EXPECT_NE(lines[1].find("ready"), std::string::npos) << r.out;
  // Columns line up: STATUS header and the row's status start at the same place.
  EXPECT_EQ(lines[0].find("STATUS"), lines[1].find("ready")) << r.out;
  EXPECT_NE(lines[1].find("s ago"), std::string::npos) << "when it was last heard:\n" << r.out;
  EXPECT_NE(lines[1].find(std::string(mill::version())), std::string::npos) << "its Mill version:\n"
                                                                            << r.out;

  auto j = mill({"nodes", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  ASSERT_TRUE(valid_json(j.out)) << j.out;
  auto v = json::parse(j.out);
  ASSERT_EQ(v.as_array().size(), 1u);
  EXPECT_EQ(v.as_array()[0].at("id").as_string(), "node-1");
}

TEST_F(CliTest, SecretSetGetLsRm) {
  auto set = mill({"secret", "set", "db_url", "postgres://u:p@db/app"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  auto get = mill({"secret", "get", "db_url"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "postgres://u:p@db/app\n");

  // From stdin with "-": the trailing newline of `echo` is not part of the value.
  auto set_stdin = mill({"secret", "set", "from_stdin", "-"}, "stdin-value with spaces\n");
  ASSERT_EQ(set_stdin.exit_code, 0) << set_stdin.err;
  EXPECT_EQ(mill({"secret", "get", "from_stdin"}).out, "stdin-value with spaces\n");
  // Multi-line from stdin keeps inner newlines.
  ASSERT_EQ(mill({"secret", "set", "pem", "-"}, "line1\nline2\n").exit_code, 0);
  auto pem = api(server_->address(), "GET", "/v1/secrets/pem", token_);
  EXPECT_EQ(json::parse(pem.body).at("value").as_string(), "line1\nline2");

  // The API sees the same value the CLI set.
  auto via_api = api(server_->address(), "GET", "/v1/secrets/db_url", token_);
  EXPECT_EQ(json::parse(via_api.body).at("value").as_string(), "postgres://u:p@db/app");

  auto ls = mill({"secret", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("NAME"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("db_url"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("from_stdin"), std::string::npos) << ls.out;
  EXPECT_EQ(ls.out.find("postgres://"), std::string::npos) << "ls printed a value:\n" << ls.out;
  EXPECT_EQ(ls.out.find("stdin-value"), std::string::npos) << "ls printed a value:\n" << ls.out;
  auto ls_json = mill({"secret", "ls", "--json"});
  EXPECT_TRUE(valid_json(ls_json.out)) << ls_json.out;
  EXPECT_EQ(ls_json.out.find("postgres://"), std::string::npos);

  auto rm = mill({"secret", "rm", "db_url"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(api(server_->address(), "GET", "/v1/secrets/db_url", token_).status, 404);
  EXPECT_EQ(mill({"secret", "ls"}).out.find("db_url"), std::string::npos);
  // rm of a missing secret fails.
  auto rm_again = mill({"secret", "rm", "db_url"});
  EXPECT_EQ(rm_again.exit_code, 1);
  EXPECT_NE(rm_again.err.find("db_url"), std::string::npos) << rm_again.err;
}

TEST_F(CliTest, SecretNamesAreSentExactly) {
  // A name with a slash is refused by the server, not turned into another path.
  auto r = mill({"secret", "set", "a/b", "v"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("invalid secret name"), std::string::npos) << r.err;
  auto up = mill({"secret", "set", "../status", "v"});
  EXPECT_EQ(up.exit_code, 1) << up.out;
}

TEST_F(CliTest, GetMissingSecretExits1WithClearMessage) {
  auto r = mill({"secret", "get", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("no secret named 'nope'"), std::string::npos) << r.err;
}

TEST_F(CliTest, WrongTokenExits1WithTokenMessage) {
  Env env{{"MILL_ADDR", server_->address()},
          {"MILL_TOKEN", std::string(64, 'f')},
          {"MILL_CONFIG", dir_.file("client.toml")}};
  for (const std::vector<std::string>& args : {std::vector<std::string>{"status"},
                                               {"nodes"},
                                               {"secret", "ls"},
                                               {"secret", "get", "x"},
                                               {"secret", "set", "x", "y"}}) {
    auto r = run_mill(args, env);
    EXPECT_EQ(r.exit_code, 1) << args[0];
    EXPECT_NE(r.err.find("token"), std::string::npos) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("MILL_TOKEN"), std::string::npos) << r.err;
  }
  EXPECT_EQ(api(server_->address(), "GET", "/v1/secrets/x", token_).status, 404);
}

TEST(CliOffline, UnreachableServerExits1SayingSo) {
  TempDir dir;
  ClosedPort closed;
  Env env{{"MILL_ADDR", closed.address()},
          {"MILL_TOKEN", std::string(64, 'a')},
          {"MILL_CONFIG", dir.file("none.toml")}};
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"status"}, {"nodes"}, {"secret", "ls"}, {"secret", "get", "x"}}) {
    auto r = run_mill(args, env);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("cannot reach"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(closed.address()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("MILL_ADDR"), std::string::npos) << r.err;
  }
}

TEST(CliValidate, GoodFileExits0) {
  TempDir dir;
  std::ofstream(dir.file("mill.toml")) << R"([service.web]
image = "registry.example.com/web:v1"
replicas = 2
port = 3000
memory = "512M"
env = { DATABASE_URL = "${secret:db_url}" }
health = { path = "/healthz" }

[task.job]
image = "registry.example.com/job:v1"
timeout = "1h"
)";
  // Offline: the one secret reference is listed as not checked, and nothing else.
  auto r = run_mill({"validate", "--offline", dir.file("mill.toml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ok"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "note: " + dir.file("mill.toml") +
                       ":6:24: service.web: env.DATABASE_URL: secret \"db_url\" not checked\n"
                       "note: 1 secret reference not checked: --offline\n");
  // An empty file is a valid, empty config.
  std::ofstream(dir.file("empty.toml")) << "";
  EXPECT_EQ(run_mill({"validate", dir.file("empty.toml")}).exit_code, 0);
  // Valid, but start-first on a writable volume: a warning at its line, exit 0.
  std::ofstream(dir.file("db.toml")) << "[volume.pg]\nsize = \"1G\"\n\n[service.db]\n"
                                        "image = \"postgres\"\nvolumes = [\"pg:/data\"]\n"
                                        "update = { order = \"start-first\" }\n";
  auto warned = run_mill({"validate", dir.file("db.toml")});
  EXPECT_EQ(warned.exit_code, 0) << warned.err;
  EXPECT_NE(warned.err.find("warning: " + dir.file("db.toml") + ":7:"), std::string::npos)
      << warned.err;
}

// mill validate asks the server the CLI points at which secrets exist (names only, GET
// /v1/secrets): a missing one is an error at its line and column, among the others.
TEST_F(CliTest, ValidateChecksSecretsAgainstTheServer) {
  ASSERT_EQ(mill({"secret", "set", "db_url", "postgres://u:p@db/app"}).exit_code, 0);
  const std::string bad = dir_.file("bad.toml");
  std::ofstream(bad) << "[service.web]\nimage = \"r/web:v1\"\n"
                        "env = { A = \"${secret:db_uri}\", B = \"${secret:db_url}\" }\n"
                        "replicas = -1\n";
  auto r = mill({"validate", bad});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 3u) << r.err;
  EXPECT_EQ(lines[0], bad +
                          ":3:13: service.web: env.A: secret \"db_uri\" is not set (mill secret "
                          "set db_uri); did you mean \"db_url\"?");
  EXPECT_TRUE(lines[1].starts_with(bad + ":4:12: service.web: replicas")) << r.err;
  EXPECT_EQ(lines[2], "2 errors in " + bad);
  EXPECT_EQ((r.out + r.err).find("postgres://"), std::string::npos) << "a value reached the CLI";

  const std::string good = dir_.file("good.toml");
  std::ofstream(good) << "[service.web]\nimage = \"r/web:v1\"\n"
                         "env = { B = \"${secret:db_url}\", C = \"x${secret:db_url}\" }\n";
  auto ok = mill({"validate", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(ok.err.empty()) << ok.err;
  EXPECT_NE(ok.out.find("2 secret references checked against " + server_->address()),
            std::string::npos)
      << ok.out;

  // --offline: not asked; an otherwise valid file exits 0 and says what it did not check.
  std::ofstream(dir_.file("missing.toml")) << "[service.web]\nimage = \"r/web:v1\"\n"
                                              "env = { A = \"${secret:db_uri}\" }\n";
  auto off = mill({"validate", "--offline", dir_.file("missing.toml")});
  EXPECT_EQ(off.exit_code, 0) << off.err;
  EXPECT_EQ(off.err, "note: " + dir_.file("missing.toml") +
                         ":3:13: service.web: env.A: secret \"db_uri\" not checked\n"
                         "note: 1 secret reference not checked: --offline\n");
  EXPECT_NE(off.out.find("ok ("), std::string::npos) << off.out;
  EXPECT_NE(off.out.find("1 secret reference not checked"), std::string::npos) << off.out;
  // Online, the same file is refused.
  EXPECT_EQ(mill({"validate", dir_.file("missing.toml")}).exit_code, 1);
}

// No server to ask (unreachable, or none configured): the references are listed as not
// checked, with why, and a file that is otherwise valid exits 0; errors still exit 1.
TEST(CliValidate, WithoutAServerSecretsAreListedAsNotChecked) {
  TempDir dir;
  ClosedPort closed;
  const std::string file = dir.file("mill.toml");
  std::ofstream(file)
      << "[service.web]\nimage = \"r/web:v1\"\nenv = { A = \"${secret:db_url}\" }\n";
  Env unreachable{{"MILL_ADDR", closed.address()},
                  {"MILL_TOKEN", std::string(64, 'a')},
                  {"MILL_CONFIG", dir.file("none.toml")}};
  auto r = run_mill({"validate", file}, unreachable);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 2u) << r.err;
  EXPECT_EQ(lines[0], "note: " + file + ":3:13: service.web: env.A: secret \"db_url\" not checked");
  EXPECT_TRUE(
      lines[1].starts_with("note: 1 secret reference not checked: could not ask the "
                           "server at " +
                           closed.address() + ": "))
      << r.err;
  EXPECT_NE(r.out.find("1 secret reference not checked"), std::string::npos) << r.out;

  Env nothing{{"MILL_CONFIG", dir.file("none.toml")}, {"MILL_TOKEN", ""}, {"MILL_ADDR", ""}};
  auto none = run_mill({"validate", file}, nothing);
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.err.find("not checked: no server to ask"), std::string::npos) << none.err;

  std::ofstream(dir.file("bad.toml")) << "[service.web]\nimage = \"r/web:v1\"\n"
                                         "env = { A = \"${secret:db_url}\" }\nport = 0\n";
  auto bad = run_mill({"validate", dir.file("bad.toml")}, unreachable);
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find(dir.file("bad.toml") + ":4:8: "), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("not checked"), std::string::npos) << bad.err;
}

TEST(CliValidate, BadFileExits1WithFileLineColMessages) {
  TempDir dir;
  const std::string file = dir.file("bad.toml");
  std::ofstream(file) << R"([service.web]
image = "registry.example.com/web:v1"
replicas = -1
memroy = "512M"

[service.api]
cpu = 0.5
)";
  auto r = run_mill({"validate", file});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  std::regex line_re("^" +
                     std::regex_replace(file, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                     R"(:(\d+):(\d+): .+$)");
  std::vector<int> lines;
  for (const auto& l : lines_of(r.err)) {
    std::smatch m;
    if (std::regex_match(l, m, line_re)) lines.push_back(std::stoi(m[1]));
  }
  // replicas (line 3), the misspelt key (line 4) and the missing image (service.api).
  EXPECT_GE(lines.size(), 3u) << r.err;
  EXPECT_NE(std::find(lines.begin(), lines.end(), 3), lines.end()) << r.err;
  EXPECT_NE(std::find(lines.begin(), lines.end(), 4), lines.end()) << r.err;
  EXPECT_TRUE(std::is_sorted(lines.begin(), lines.end())) << r.err;
  EXPECT_NE(r.err.find("did you mean"), std::string::npos) << r.err;

  // A TOML syntax error: reported alone, with its position.
  std::ofstream(dir.file("syntax.toml")) << "[service.web\nimage = \"x\"\n";
  auto s = run_mill({"validate", dir.file("syntax.toml")});
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_TRUE(std::regex_search(s.err, std::regex(R"(syntax\.toml:1:\d+: )"))) << s.err;

  // A missing file is an error too, not a crash.
  auto missing = run_mill({"validate", dir.file("missing.toml")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_FALSE(missing.err.empty());
}

// A usage error never exits 0, and never spawns anything: the server is not even asked.
TEST(CliUsage, BadSpawnUsageExitsNonZero) {
  TempDir dir;
  ClosedPort nobody;  // a spawn that did reach for the server would say it is unreachable
  Env env{{"MILL_ADDR", nobody.address()},
          {"MILL_TOKEN", std::string(64, 'a')},
          {"MILL_CONFIG", dir.file("none.toml")}};
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"spawn", "--image", "x", "--bogus"},
                                             {"spawn", "--image", "x", "--command"},
                                             {"spawn", "--cpu", "lots", "--image", "x"},
                                             {"spawn"}}) {
    auto r = run_mill(args, env);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_NE(r.exit_code, 0) << joined << "\n" << r.out << r.err;
    EXPECT_EQ((r.out + r.err).find("cannot reach"), std::string::npos) << joined << r.err;
  }
}

}  // namespace
}  // namespace mill::testing
