#pragma once

// Sends this node's allocation states to the control plane (POST /v1/agent/status):
// one thread, batches whatever was queued since the last send, a newer state of an
// allocation replacing one not yet sent; keeps what failed to send and tries again.
//
// Thread-safety: every method may be called from any thread.

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "agent/node_client.h"
#include "model/allocation.h"

namespace mill::agent {

class StatusReporter {
 public:
  // `current` gives an allocation's state as it is now, for resend().
  using Current = std::function<std::optional<model::AllocState>(const std::string& id)>;
  StatusReporter(NodeClient& client, Current current);
  ~StatusReporter();

  void start(const std::string& node);
  void queue(const model::AllocState& state);
  // The control plane shows another state than ours: send ours again, as it is when
  // the reporter gets to it.
  void resend(const std::vector<std::string>& ids);
  // Sends what is queued, then returns.
  void stop();

 private:
  void loop();

  NodeClient& client_;
  Current current_;
  std::string node_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, model::AllocState> pending_;
  std::set<std::string> resend_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::agent
