#pragma once

// The control plane's view of nodes. Registrations are durable (in the store);
// heartbeats are kept in memory, as Nomad keeps its heartbeat timers: a node whose
// last heartbeat is older than `down_after` shows as down, and one that has not
// heartbeated since this server started is down until it does.
//
// Thread-safety: every method may be called from any thread.

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/node.h"
#include "model/node_protocol.h"
#include "store/store.h"

namespace mill::server {

class NodeRegistry {
 public:
  NodeRegistry(store::Store& store, const Clock& clock, std::chrono::milliseconds down_after);

  // Creates or updates the node's record and counts as a heartbeat.
  // An empty reg.id asks for a new node: the server assigns "node-N".
  Result<model::Node> register_node(const model::RegisterRequest& reg);
  // kNotFound for a node that never registered (the agent should register again).
  Result<void> heartbeat(const std::string& id, const model::Resources& resources);
  Result<std::vector<model::Node>> list();
  // kNotFound for an unknown node.
  Result<model::Node> get(const std::string& id);
  // Starts (deadline: when its tasks are killed; force: and whatever else is left) or
  // ends a drain: a draining node takes no new allocations. kNotFound for an unknown
  // node.
  Result<model::Node> set_drain(const std::string& id, std::optional<SystemTime> deadline,
                                bool draining, bool force = false);
  // Forgets the node. Its id stays taken, never given to another node: its agent's
  // registrations are refused (kPermissionDenied) from then on. Its /24 goes back to
  // the pool. The caller checks it runs nothing.
  Result<void> remove(const std::string& id);

  static constexpr std::string_view kPrefix = "/nodes/";
  static constexpr std::string_view kRemovedPrefix = "/nodes-removed/";

 private:
  struct Live {
    SystemTime last_heartbeat;
    model::Resources resources;
  };
  Result<std::string> allocate_id();
  // The lowest /24 index no registered node holds.
  Result<int> free_subnet();
  model::Node with_live_state(model::Node node);

  store::Store& store_;
  const Clock& clock_;
  std::chrono::milliseconds down_after_;
  std::mutex register_mutex_;
  std::mutex mutex_;
  std::map<std::string, Live> live_;
};

}  // namespace mill::server
