#pragma once

// Test harness for integration tests: runs the real `mill` binary (MILL_BINARY, set by
// CMake) in temp dirs on loopback with port 0, and cleans up after itself even when a
// test fails (destructors kill what they started and remove what they made).

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/http_client.h"

namespace mill::testing {

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `mill args...` to completion with extra environment variables and stdin.
CommandResult run_mill(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {},
                       const std::string& stdin_text = {});

// `mill init --data-dir <dir>/data`, with the client config written to <dir>/client.toml.
// Returns the API token. Fails the test (ADD_FAILURE) and returns "" on error.
std::string init_data_dir(const TempDir& dir);

// A running `mill server`. Its stdout and stderr go to <dir>/server.log.
class MillServer {
 public:
  // Starts `mill server --data-dir <dir>/data --listen 127.0.0.1:0 [extra...]` and waits
  // until it logs its address and has registered its node. nullptr (and a test
  // failure) if it does not come up within the timeout.
  static std::unique_ptr<MillServer> start(const TempDir& dir,
                                           const std::vector<std::string>& extra = {},
                                           std::chrono::seconds timeout = std::chrono::seconds(20));
  ~MillServer();

  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  pid_t pid() const { return pid_; }
  std::string log() const;

  // Sends sig and waits for the exit; returns the exit status (128+N if killed by N),
  // or -1 if it did not exit in time (then it is SIGKILLed).
  int stop(int sig, std::chrono::seconds timeout = std::chrono::seconds(15));

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::string log_path_;
};

// One API call with the given token ("" = no Authorization header).
net::ClientResponse api(const std::string& address, const std::string& method,
                        const std::string& target, const std::string& token,
                        const std::string& body = {});

// Every file under dir, recursively, concatenated (binary-safe) for leak searches.
std::string read_tree(const std::string& dir);

}  // namespace mill::testing
