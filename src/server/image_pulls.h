#pragma once

// A deploy's `pulling` phase: which images each node is asked to have (delivered with
// its desired allocations, through the node protocol), and what the nodes answered.
// What is asked lives in memory; `/pulls/<node>` records that a node is being asked
// (a previous server's requests are dropped at start). One deploy pulls at a time.
//
// Asking or no longer asking wakes the node protocol's blocking query (`hub`); an
// answer wakes the waiters' listeners (a deploy waits on them).
//
// Thread-safety: every method may be called from any thread; the mutex is a leaf,
// never held across store I/O.

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/node.h"
#include "model/node_protocol.h"
#include "server/waiters.h"
#include "server/watch_hub.h"
#include "store/store.h"

namespace mill::server {

class DeployPulls {
 public:
  DeployPulls(store::Store& store, Waiters& waiters, WatchHub& hub);

  // Drops the requests of a previous server process.
  Result<void> load();

  // Asks each of `nodes` to have `images` and forgets earlier answers.
  Result<void> request(const std::string& deploy, const std::vector<std::string>& nodes,
                       const std::vector<std::string>& images);
  // Ends it: the nodes stop being asked.
  void clear(const std::vector<std::string>& nodes);
  // What `node` is asked to pull, if anything.
  std::optional<model::ImagePulls> asked_of(const std::string& node) const;
  // A node's answer; ignored unless the node is asked for `deploy`.
  void answered(const std::string& node, const std::string& deploy,
                const std::vector<model::PullReport>& reports);
  // The answers so far for `deploy`, by node then image; error empty when present.
  std::map<std::string, std::map<std::string, std::string>> reports(
      const std::string& deploy) const;

 private:
  store::Store& store_;
  Waiters& waiters_;
  WatchHub& hub_;
  mutable std::mutex mutex_;
  std::map<std::string, model::ImagePulls> asked_;  // by node
  // deploy -> node -> image -> error ("" when pulled)
  std::map<std::string, std::map<std::string, std::map<std::string, std::string>>> reports_;
};

}  // namespace mill::server
