#pragma once

// Test harness for integration tests: runs the real `mill` binary (MILL_BINARY, set by
// CMake) in temp dirs on loopback with port 0, and cleans up after itself even when a
// test fails (destructors kill what they started and remove what they made).

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/http_client.h"
#include "support/crash_cleanup.h"
#include "support/temp_dir.h"

namespace mill::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `mill args...` to completion with extra environment variables and stdin.
CommandResult run_mill(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {},
                       const std::string& stdin_text = {});

// The mill binary under test.
std::string mill_binary();

// Several machines on one host (cluster.h): `mill args...` started in the network
// namespace /run/netns/<netns>, its stdout and stderr appended to log_path, killed
// when the test process dies; -1 when it cannot start. run_mill_in runs one to
// completion there.
pid_t start_mill_in(const std::string& netns, const std::vector<std::string>& args,
                    const std::string& log_path,
                    const std::map<std::string, std::string>& env = {});
CommandResult run_mill_in(const std::string& netns, const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env = {});
// Runs fn on a thread that entered the network namespace /run/netns/<netns>: the
// sockets fn opens (an API call, say) live there.
void run_in_netns(const std::string& netns, const std::function<void()>& fn);

// Runs `binary args...` (a copy of mill, say) to completion, killing it (a test
// failure, exit_code -1) if it still runs after `limit`.
CommandResult run_binary(const std::string& binary, const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env, std::chrono::seconds limit);

// `mill init --data-dir <dir>/data`, with the client config written to <dir>/client.toml.
// Returns the API token. Fails the test (ADD_FAILURE) and returns "" on error.
std::string init_data_dir(const TempDir& dir);

// A running `mill server`. Its stdout and stderr are appended to <dir>/server.log.
class MillServer {
 public:
  // Starts `mill server --data-dir <dir>/data --listen 127.0.0.1:0 [extra...]` (no
  // --listen when `mill init --listen` gave the data dir one) and waits
  // until it logs its address and has registered its node. Without `--bridge` in
  // extra the node runs no containers (`--no-containers`), so the host's network is
  // left alone; with it, start waits until the node is ready to run containers, and its
  // ingress proxy listens on 127.0.0.1 ports of its own choosing (unless extra says
  // `--proxy-http`). nullptr (and a test failure) if it does not come up in time.
  static std::unique_ptr<MillServer> start(const TempDir& dir,
                                           const std::vector<std::string>& extra = {},
                                           std::chrono::seconds timeout = std::chrono::seconds(60));
  ~MillServer();

  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  pid_t pid() const { return pid_; }
  // Everything every server run on this dir has written to <dir>/server.log.
  std::string log() const;
  // The HTTP port this run's ingress proxy bound (it is given port 0 and logs the one
  // it got); 0 when it has not said so within `limit`.
  uint16_t proxy_port(std::chrono::seconds limit = std::chrono::seconds(10)) const;

  // Sends sig and waits for the exit; returns the exit status (128+N if killed by N),
  // or -1 if it did not exit in time (then it is SIGKILLed).
  int stop(int sig, std::chrono::seconds timeout = std::chrono::seconds(15));

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::string log_path_;
  size_t log_start_ = 0;  // where this run's lines begin in the log
};

// While the result lives, a crash of the test process (which skips TearDown) kills
// every MillServer still running, runs `mill cleanup --data-dir data_dir` and removes
// the data dir's parent (the test's TempDir), so no container, bridge, netns, mount or
// file outlives the test (support/crash_cleanup.h).
std::unique_ptr<OnCrash> clean_up_on_crash(const std::string& data_dir);

// `prefix` and `hex_digits` random hex digits ("mc3fa91b"): a name of the test's own
// for a bridge, network namespace or interface, so concurrent tests never share one.
std::string random_name(const std::string& prefix, int hex_digits = 6);

// One API call with the given token ("" = no Authorization header).
net::ClientResponse api(const std::string& address, const std::string& method,
                        const std::string& target, const std::string& token,
                        const std::string& body = {});

// One API call with full control of the request (headers, content type, timeout).
// Transport errors fail the test (ADD_FAILURE) and return a response with status 0.
net::ClientResponse api_request(const std::string& address, const net::ClientRequest& request);

// Reads a whole file (binary-safe); "" when it cannot be read.
std::string read_file_text(const std::string& path);

// A raw TCP connection to a loopback "127.0.0.1:PORT" for tests that need control of
// the bytes on the wire: keep-alive, pipelining, partial requests, oversized heads.
class RawConnection {
 public:
  explicit RawConnection(const std::string& address);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Writes all of bytes; false on error (e.g. the peer closed).
  bool send(std::string_view bytes);
  // Reads one HTTP/1.x response framed by Content-Length. status 0 when the
  // connection closed or timed out before a whole response arrived.
  net::ClientResponse read_response(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True when the peer (a process on this machine) has read every byte sent to it so
  // far, as its socket's receive queue in /proc/net/tcp shows.
  bool peer_has_read_everything() const;
  // True when the peer closes the connection (EOF or reset) within the timeout.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  int fd_ = -1;
  std::string buffer_;  // bytes received but not yet consumed
};

// A loopback port that is bound but not listening, held for this object's lifetime:
// connecting to it is refused, and no other process can take it meanwhile.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Every file under dir, recursively, concatenated (binary-safe) for leak searches.
std::string read_tree(const std::string& dir);

// The value of one sample of a Prometheus exposition: the line that starts with
// `series` ("name{labels}"); nullopt when there is none.
std::optional<double> metric_sample(const std::string& exposition, const std::string& series);

// Runs `promtool check metrics` (Debian's prometheus package) over a Prometheus text
// exposition. "" when promtool accepts it; otherwise what promtool said, or why it
// could not run.
std::string promtool_problems(const std::string& exposition);

}  // namespace mill::testing
