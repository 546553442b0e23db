#pragma once

// Serves this node's allocation logs (spec: Logs) from the files the shims write:
// the whole log or its tail, then, when following, new lines as they land, until the
// client leaves or the allocation ends (then one last `event: end`). One thread looks
// after every follower, so hundreds of `mill logs -f` cost no thread each.

#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agent/alloc_runner.h"
#include "agent/containers.h"
#include "model/node_protocol.h"
#include "net/http.h"
#include "runtime/log_reader.h"

namespace mill::agent {

class LogService {
 public:
  LogService(Containers& containers, AllocRunner& runner, std::string node_id);
  ~LogService();

  // Streams the allocation's (or the service's) lines as SSE `data: {"ts","stream",
  // "line"}` events on `writer` (begin_stream, write, close); 404 when this node has
  // no log for it. With follow, it keeps the stream open until the client leaves or
  // the allocation ends, then sends a final `event: end`. A service's lines carry
  // "alloc", and its follow picks up allocations that start later (a deploy).
  void stream(const model::LogRequest& query, std::shared_ptr<net::ResponseWriter> writer);

  // Ends every follow (with no end event: the server is going away).
  void stop();

 private:
  struct Source {
    std::string id;
    runtime::LogCursor cursor;
  };
  struct Follower {
    std::string id;  // the allocation, or the service
    bool service = false;
    std::vector<Source> sources;  // a service: one per allocation, more as they start
    std::shared_ptr<net::ResponseWriter> writer;
  };
  // Reads every source's new lines; a service's come merged in time order, tagged.
  std::string read_new(Follower& f, std::optional<size_t> tail);
  void loop();
  // True when the follower is done (client gone or allocation ended and drained).
  bool pump(Follower& f);

  Containers& containers_;
  AllocRunner& runner_;
  const std::string node_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::list<Follower> followers_;
  bool stopping_ = false;
  std::thread thread_;
};

// One SSE event for a log line: `data: {"ts": ..., "stream": ..., "line": ...}`, with
// "alloc" when it is given (a service's merged log).
std::string sse_event(const runtime::LogLine& line, const std::string& alloc = "");

}  // namespace mill::agent
