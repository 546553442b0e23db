#pragma once

// What a node should run, as the node protocol's blocking query answers it: the
// allocations placed on the node with their last reported states, the images it is
// asked to pull, the volumes to destroy, and every routed service's healthy
// allocations for its proxy. Read from memory only; the index comes from the hub
// the writers wake once their change is visible here (watch_hub.h).
//
// Thread-safety: every method may be called from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/allocation.h"
#include "model/node.h"
#include "model/node_protocol.h"
#include "server/alloc_table.h"
#include "server/image_pulls.h"
#include "server/volume_bindings.h"
#include "server/watch_hub.h"

namespace mill::server {

// What a node should run: every allocation placed on it that is not yet forgotten.
struct NodeAllocations {
  int64_t index = 0;                  // pass back as `after` to wait for the next change
  std::vector<TaskView> allocations;  // with their last reported state
  std::optional<model::ImagePulls> pulls;
  std::vector<std::string> remove_volumes;  // volumes of this node to destroy
  // Every routed service's healthy allocations, cluster-wide, for the node's proxy
  // (TLS still as secret references). Read with the allocations, so a node learns of a
  // new healthy allocation no later than of the old one it replaces being stopped.
  std::vector<model::ServiceRoute> routes;
};

class NodeProtocolView {
 public:
  NodeProtocolView(const AllocTable& table, const DeployPulls& pulls, const VolumeBindings& volumes,
                   WatchHub& hub);

  NodeAllocations allocations_for(const std::string& node) const;
  // Calls back (true) once anything changed after `after` (an index), else (false) at
  // the deadline.
  void wait(int64_t after, WatchHub::Deadline deadline, WatchHub::Callback callback);

 private:
  const AllocTable& table_;
  const DeployPulls& pulls_;
  const VolumeBindings& volumes_;
  WatchHub& hub_;
};

}  // namespace mill::server
