#pragma once

// Where each volume lives: the node it was first created on, for good (/volumes/<name>,
// written by the plan applier in the placement that created it), and the removals
// asked of nodes (/volume-removals/<node>/<name>, until the node answers). Both are
// kept in memory as well, loaded at start: placement pins allocations to their
// volumes' node, and the node protocol delivers removals, without reading the store.
//
// A change is written to the store first, then applied here; a removal request or
// answer wakes the node protocol's blocking query (`hub`) and the volume's waiters.
//
// Thread-safety: every method may be called from any thread. The mutex is a leaf, never
// held across store I/O; callbacks run on the waiters' thread.

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/allocation.h"
#include "model/node.h"
#include "model/node_protocol.h"
#include "server/waiters.h"
#include "server/watch_hub.h"
#include "store/store.h"

namespace mill::server {

// Where a volume lives: created on `node` when `service` first landed there.
struct VolumeBinding {
  std::string name;
  std::string node;
  std::string service;
  int64_t size = 0;  // bytes, as first created
  SystemTime created_at{};
  int64_t used = 0;  // bytes in use, as last reported by an allocation mounting it
};

class VolumeBindings {
 public:
  VolumeBindings(store::Store& store, Waiters& waiters, WatchHub& hub);

  Result<void> load();

  // The node the spec's volumes pin it to ("" when none is made yet); volumes without
  // a home yet go to `unbound`. kConflict for volumes of two nodes.
  Result<std::string> pin(const model::AllocSpec& spec, std::vector<std::string>* unbound) const;
  // For a placement's transaction: the record of a new binding, written only if the
  // volume has none yet.
  static void add_to(store::Txn& txn, const VolumeBinding& binding);
  // After that transaction committed.
  void bound(std::vector<VolumeBinding> bindings);
  // Bytes in use, as an allocation mounting them reported.
  void set_used(const std::map<std::string, int64_t>& used);

  // Volumes that have a home node, by name.
  std::vector<VolumeBinding> list() const;
  // Names of the volumes `node` is asked to destroy, by name.
  std::vector<std::string> removals_for(const std::string& node) const;

  // Asks the volume's node to destroy it; kNotFound when it has no home.
  Result<void> remove(const std::string& name);
  // The node's answer; a removed volume's record goes.
  void removed(const std::string& node, const std::vector<model::VolumeReport>& reports);
  // Calls back once the volume is gone (ok), its node failed to remove it (the error),
  // or at the deadline (kTimeout).
  void when_removed(const std::string& name, Waiters::Deadline deadline,
                    std::function<void(Result<void>)> callback);

 private:
  store::Store& store_;
  Waiters& waiters_;
  WatchHub& hub_;
  mutable std::mutex mutex_;
  std::map<std::string, VolumeBinding> bindings_;           // by name
  std::set<std::pair<std::string, std::string>> removals_;  // (node, name) asked to destroy
  std::map<std::string, std::string> errors_;               // volume -> its node's error
};

}  // namespace mill::server
