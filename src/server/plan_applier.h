#pragma once

// Placement, as Nomad's plan applier does it: a snapshot of the nodes and what live
// allocations reserve, the pure scheduler's plan, then one store transaction that
// records the allocation, takes its address from the node's pool (/ipam/<node>/<ip>)
// and binds its new volumes, with compare-and-swap on the placement epoch
// (/sched/epoch) read before the snapshot: if anything else placed meanwhile, the
// commit fails and the placement is planned again. Only then does the table learn of
// the allocation.
//
// Thread-safety: every method may be called from any thread. Placements take turns on
// placement_, which is held across the transaction (the leader is the only writer, so
// they are serial anyway); the table's and the volumes' locks are only taken briefly
// inside it. Nothing else waits on placement_.

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/allocation.h"
#include "model/ipv4.h"
#include "scheduler/scheduler.h"
#include "server/alloc_table.h"
#include "server/node_registry.h"
#include "server/volume_bindings.h"
#include "store/store.h"

namespace mill::server {

// The address pool's record that `ip` of `node` is taken (its value: the allocation).
std::string address_key(const std::string& node, const std::string& ip);

class PlanApplier {
 public:
  PlanApplier(store::Store& store, NodeRegistry& nodes, AllocTable& table, VolumeBindings& volumes,
              const Clock& clock, model::Ipv4Net cluster_network);

  // Places and records one allocation of `group` (id "<id_prefix>-xxxx"), spread over
  // nodes away from the group's other allocations: kUnavailable when no node is
  // ready, kConflict when none has room.
  Result<TaskView> place(const std::string& kind, const std::string& group,
                         const std::string& id_prefix, const model::AllocSpec& spec);
  // Whether `count` more allocations of `spec` fit now, all of them (the scheduler's
  // whole plan): a deploy checks a batch before it places any of it.
  Result<void> check_fit(std::string_view kind, const std::string& group,
                         const model::AllocSpec& spec, int count);

 private:
  // Nodes for `count` allocations, or the scheduler's reason. Caller holds placement_.
  Result<std::vector<model::Node>> plan(std::string_view kind, const std::string& group,
                                        const model::AllocSpec& spec, int count,
                                        std::vector<std::string>* unbound);
  // The scheduler's view of the nodes for a group.
  std::vector<scheduler::NodeView> snapshot(std::string_view kind, const std::string& group,
                                            const std::vector<model::Node>& nodes) const;
  // The lowest address of the node's /24 no live allocation holds.
  std::optional<std::string> free_address(const model::Node& node) const;

  store::Store& store_;
  NodeRegistry& nodes_;
  AllocTable& table_;
  VolumeBindings& volumes_;
  const Clock& clock_;
  const model::Ipv4Net cluster_network_;
  std::mutex placement_;  // serialises placement: snapshot, choose, commit
};

}  // namespace mill::server
