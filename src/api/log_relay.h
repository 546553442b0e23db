#pragma once

// The control plane's side of logs over the node protocol. GET /v1/logs asks the node
// that keeps the log: the relay queues a LogRequest for that node, the node's agent
// takes it with its requests query (GET /v1/agent/requests, a blocking query it always
// has open) and sends the log back in LogChunks (POST /v1/agent/logs), which the relay
// passes to the client as they come. The in-process agent and a remote one take the
// same path; only the address they dial differs.
//
// When the client leaves, the node is told (a cancel in its next requests answer). A
// node whose agent is not polling gets no request: the client hears 503 at once. A
// request the agent has not begun answering within start_timeout gets 504; a node
// that stops polling, or whose agent restarts (a new session), ends its streams.
//
// Thread-safety: every method may be called from any thread. One thread runs the
// relay's timers, on the Clock.

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/node_protocol.h"
#include "net/http.h"

namespace mill::api {

struct LogRelayOptions {
  // How long an agent may take to begin answering a log request.
  std::chrono::milliseconds start_timeout{10000};
  // A node is attached while its agent polls: during a poll, and this long after one.
  std::chrono::milliseconds attach_grace{10000};
};

class LogRelay {
 public:
  explicit LogRelay(const Clock& clock, LogRelayOptions options = {});
  ~LogRelay();
  LogRelay(const LogRelay&) = delete;
  LogRelay& operator=(const LogRelay&) = delete;

  // Ends every stream and parked poll; later calls answer 503.
  void stop();

  // Whether the node's agent is polling for requests now.
  bool attached(const std::string& node) const;
  // Asks `node` for the log (request.id is set here) and answers `client` with what
  // the node sends: 503 when the node's agent is not attached.
  void stream(const std::string& node, model::LogRequest request,
              std::shared_ptr<net::ResponseWriter> client);

  // GET /v1/agent/requests: answers `agent` now when something is queued for the node,
  // else when something is or once `query.wait` passes (then with nothing).
  void poll(const model::RequestsQuery& query, std::shared_ptr<net::ResponseWriter> agent);
  // POST /v1/agent/logs. more=false when the stream is over here (its client left, it
  // ended, or the relay never had it); kNotFound when the stream is another node's,
  // kInvalidArgument for a chunk out of order (a status after the first).
  Result<model::LogChunkAnswer> chunk(model::LogChunk chunk);

 private:
  struct Node {
    std::string session;
    std::vector<model::LogRequest> queued;
    std::vector<std::string> cancel;
    std::shared_ptr<net::ResponseWriter> poller;  // a parked poll
    SystemTime poll_until{};                      // when it is answered with nothing
    SystemTime last_seen{};                       // a poll began or ended
  };
  struct Stream {
    std::string node;
    std::string session;  // the agent session that took it; empty while queued
    std::shared_ptr<net::ResponseWriter> client;
    bool begun = false;  // the node's first chunk came
    SystemTime start_by{};
  };
  // Under the lock. Writer calls are cheap and never call back inline (only
  // on_client_gone may, so that one is called without the lock).
  bool attached_locked(const Node& node, SystemTime now) const;
  // Answers the node's parked poll with what is queued (maybe nothing).
  void answer_poll_locked(Node& node, SystemTime now);
  // Ends a stream: its client hears `status` and `why` if nothing began, else the
  // stream closes.
  void end_stream_locked(std::map<std::string, Stream>::iterator it, int status,
                         const std::string& why);
  void client_left(const std::string& id);
  void poller_left(const std::string& node, const net::ResponseWriter* poller);
  void loop();

  const Clock& clock_;
  const LogRelayOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, Node> nodes_;
  std::map<std::string, Stream> streams_;
  bool changed_ = false;  // the timer thread must look again
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::api
