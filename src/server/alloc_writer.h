#pragma once

// Every change to an allocation already placed: a stop asked for (kill), a state an
// agent reported, and its end of life (sweep forgets tasks ended long enough ago).
// Each is written to the store first and applied to the table after, under the
// allocation's write guard, so writes to one allocation take turns and readers of
// the table never wait for the store. Placing one is the plan applier's.
//
// Thread-safety: every method may be called from any thread. Locks: an allocation's
// write guard (held across its store write), then leaf mutexes (the table's, the
// volumes', the usage metrics'), one at a time.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/allocation.h"
#include "server/alloc_table.h"
#include "server/usage.h"
#include "server/volume_bindings.h"
#include "store/store.h"

namespace mill::server {

class AllocWriter {
 public:
  AllocWriter(store::Store& store, AllocTable& table, VolumeBindings& volumes, UsageMetrics& usage,
              const Clock& clock);

  // Asks the node to stop it (desired = stop); kNotFound if unknown. One that has
  // ended or is already stopping is returned as it is.
  Result<TaskView> kill(const std::string& id);
  // Its node is gone (down): the allocation ends as lost with `reason`, and its node is
  // asked to stop it should it come back. False if it had ended already. Its address
  // is released: nothing else is placed on a node that is down.
  Result<bool> lose(const std::string& id, const std::string& reason);
  // Records what the agent of `node` reports; ignores allocations not placed on it.
  Result<void> report(const std::string& node, const std::vector<model::AllocState>& states);
  // Forgets allocations that ended `retention` or more ago (records and addresses).
  Result<int> sweep(std::chrono::milliseconds retention);
  // The env and command bytes of the allocations sweep() forgot since the last call:
  // what their records held, for deciding whether freed memory is worth handing back.
  std::size_t take_forgotten_bytes() { return forgotten_bytes_.exchange(0); }

 private:
  Result<void> record(const std::string& node, const model::AllocState& reported);

  store::Store& store_;
  AllocTable& table_;
  VolumeBindings& volumes_;
  UsageMetrics& usage_;
  std::atomic<std::size_t> forgotten_bytes_{0};
  const Clock& clock_;
};

}  // namespace mill::server
