#pragma once

// A node's agent. In this issue it registers its machine with the control plane and
// heartbeats what is free; later issues add running allocations. It reaches the
// control plane only through a NodeClient.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "agent/machine.h"
#include "agent/node_client.h"
#include "common/clock.h"
#include "common/result.h"

namespace mill::agent {

struct AgentOptions {
  std::string node_id_path;  // where this node's id is kept across restarts
  std::string name;          // default: the host name
  std::string address;       // default: primary_address()
  // The node's data dir, where allocations' disks live: the node reports the room for
  // them (sample_disk). Empty: it does not, and placement does not count disk on it.
  std::string data_dir = {};
};

class Agent {
 public:
  // Heartbeats are timed on `clock`.
  Agent(AgentOptions options, NodeClient& client, const Clock& clock);
  ~Agent();

  // Registers now (reusing the id kept in node_id_path, if any) and returns the id.
  Result<std::string> register_now();
  // Heartbeats on a thread until stop(); re-registers if the server forgot the node.
  void start();
  void stop();

  std::string node_id() const;
  // What the last registration answered (the node's subnet, the cluster network).
  model::RegisterResponse registration() const;

 private:
  void loop();

  AgentOptions options_;
  NodeClient& client_;
  const Clock& clock_;
  MachineSampler sampler_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::string node_id_;
  model::RegisterResponse registration_;
  std::chrono::milliseconds interval_{5000};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mill::agent
