#pragma once

// The agent's side of logs over the node protocol (api/log_relay.h is the control
// plane's). It keeps a requests query open with the control plane; each log it is
// asked for starts on the node's log service with a writer that queues what the
// service writes, and one thread sends every stream's queue back as LogChunks, in
// order, a bounded piece at a time. A cancel (the client left), or an answer that
// wants no more, tells the log service the client is gone. The agent dials the
// control plane for all of it, so it needs no listening port of its own.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "agent/node_client.h"
#include "model/node_protocol.h"
#include "net/http.h"

namespace mill::agent {

struct LogUplinkOptions {
  std::chrono::milliseconds wait{30000};  // the requests query's length
  size_t chunk_bytes = 128 * 1024;        // of log text per LogChunk (a JSON body < 1 MiB)
  // A stream whose unsent text passes this is cut (the control plane is not keeping
  // up): the log service sees its client gone.
  size_t max_queued_bytes = 16 * 1024 * 1024;
};

class LogUplink {
 public:
  // Starts `request` (write the log to the writer: LogService::stream).
  using Serve =
      std::function<void(const model::LogRequest& request, std::shared_ptr<net::ResponseWriter>)>;

  LogUplink(NodeClient& client, std::string node_id, Serve serve, LogUplinkOptions options = {});
  ~LogUplink();
  LogUplink(const LogUplink&) = delete;
  LogUplink& operator=(const LogUplink&) = delete;

  // Joins both threads (the requests query ends when the control plane answers it);
  // streams still open see their client gone.
  void stop();

  struct Outbox;  // the streams' queues, shared with their writers

 private:
  void poll_loop();
  void send_loop();

  NodeClient& client_;
  const std::string node_;
  Serve serve_;
  const LogUplinkOptions options_;
  const std::string session_;
  std::shared_ptr<Outbox> outbox_;
  std::thread poller_;
  std::thread sender_;
};

}  // namespace mill::agent
