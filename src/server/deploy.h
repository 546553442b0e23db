#pragma once

// Deploys (spec: Deploy; DESIGN.md "Deploy"): the leader takes a whole config,
// validates it, diffs it against what runs, and rolls each changed service: start a
// new allocation, wait until it is healthy, stop one old one, repeat. Progress is a
// list of events (the SSE stream of POST /v1/deploy), kept in a deploy record in the
// store so a client that went away can read how it ended (GET /v1/deploys/:id).
//
// What counts as a change: anything in the service's spec (image, command, env as
// written, cpu, memory, port, health, init) compared with what its live allocations
// run, or a different replica count (then only the difference is started or
// stopped). A secret whose value changed does not roll a service by itself:
// `mill restart SERVICE` does (it starts new containers, which read the new value).
//
// Services roll one at a time, in name order. The first one that fails ends the deploy
// with `failed`: its new allocations stop, its old ones were never stopped before a
// replacement was healthy, so they keep serving; services after it are not touched.
// Services that had already finished keep their new version. The deployed config
// (GET-able, and the base of task templates and registries) becomes the new one only
// when the whole deploy succeeds.
//
// One deploy (or restart) at a time; it runs on its own thread, so a client that
// disconnects does not stop it. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/config.h"
#include "server/secrets.h"
#include "server/tasks.h"
#include "store/store.h"

namespace mill::server {

struct DeployEvent {
  std::string event;  // "progress", then "done" or "failed"; empty: a keep-alive
  std::string data;   // a JSON object, as the spec shows it
};

struct DeployRecord {
  std::string id;      // "d-xxxxxx"
  std::string kind;    // "deploy" or "restart"
  std::string status;  // "running", "done" or "failed"
  SystemTime started_at{};
  std::optional<SystemTime> finished_at;
  std::string service;  // failed: the service that failed
  std::string reason;   // failed: why
  std::vector<DeployEvent> events;
};

struct DeployOptions {
  // How long a new allocation may take to become healthy when its service has no
  // health check (with one, its deadline counts).
  std::chrono::milliseconds default_deadline{std::chrono::seconds(60)};
  std::chrono::milliseconds stop_wait{std::chrono::minutes(2)};
  // How long the `pulling` phase may take.
  std::chrono::milliseconds pull_wait{std::chrono::minutes(10)};
  // Silence longer than this on a deploy's stream gets a keep-alive.
  std::chrono::milliseconds keep_alive{std::chrono::seconds(15)};
  size_t keep_records = 50;
};

// A config that failed validation: every problem, as "file:line:col: message".
struct DeployRejection {
  std::string message;
  std::vector<std::string> errors;
};

class DeployManager {
 public:
  DeployManager(store::Store& store, TaskManager& tasks, Secrets& secrets, const Clock& clock,
                DeployOptions options = {});
  ~DeployManager();

  // Loads the deployed config and the records; a record left "running" by a previous
  // server process is marked failed (its allocations are whatever they were then).
  Result<void> start();
  void stop();

  // Starts a deploy of `text` (TOML). kInvalidArgument with `rejection` filled for a
  // bad config (nothing changes); kConflict while another deploy runs.
  Result<std::string> deploy(const std::string& text, const std::string& file_name,
                             DeployRejection* rejection);
  // Replaces every allocation of `service` with a new one of the deployed spec, one at
  // a time, health-gated, like a deploy. kNotFound for an unknown service.
  Result<std::string> restart(const std::string& service);

  // Calls `sink` with every event of deploy `id` (recorded ones at once, later ones
  // as they happen, on the deploy's thread, and an empty one after 15 s without
  // any) until the terminal event or until `sink` returns false. False when there is
  // no such deploy.
  using Sink = std::function<bool(const DeployEvent&)>;
  bool subscribe(const std::string& id, Sink sink);

  std::optional<DeployRecord> record(const std::string& id) const;
  std::vector<DeployRecord> records() const;  // newest first, without events
  // The last config deployed successfully (empty before the first).
  model::Config deployed() const;
  std::string deployed_text() const;

 private:
  struct Run;
  Result<std::string> begin(std::unique_ptr<Run> run);
  void execute(Run& run);
  Result<void> roll(Run& run, const model::ServiceSpec& service, bool force);
  // The `pulling` phase: every node that can take work pulls `images`, in parallel,
  // before anything is placed; the first image a node cannot pull fails the deploy.
  Result<void> pull_images(Run& run, const std::vector<std::string>& images,
                           std::string& failed_image);
  // Whether `service` gets new allocations (a changed spec, a restart, more replicas).
  bool starts_allocations(const Run& run, const model::ServiceSpec& service, bool force) const;
  void stop_allocations(const std::vector<std::string>& ids);
  // Sends `stopped` for each of `stopping` that has ended, and drops it from the list.
  void report_stopped(Run& run, const std::string& service, std::vector<std::string>& stopping);
  // Waits (up to stop_wait) until all of `stopping` have ended, reporting each.
  void finish_stops(Run& run, const std::string& service, std::vector<std::string>& stopping);
  // Calls `check` now and after every status report until it returns true (then
  // true), or the server stops or `until` passes (then false).
  template <class Check>
  bool await(std::chrono::steady_clock::time_point until, Check check);
  bool stopping() const;
  // Sends subscribers of the running deploy an empty event (no news, still going).
  void keep_alive();
  // A new allocation on its way to healthy.
  struct Pending {
    std::string id;
    std::chrono::steady_clock::time_point placed_at;
    bool starting = false;  // its `starting` event has been sent
  };
  // Waits until one of `pending` moves on, sends its `starting` / `healthy` events and
  // takes the healthy ones out; returns how many became healthy. The error (one failed,
  // or was not healthy within `deadline` of its placement) is the reason a person reads.
  Result<int> wait_progress(Run& run, const std::string& service, std::vector<Pending>& pending,
                            std::chrono::milliseconds deadline,
                            std::vector<std::string>* healthy_ids);
  // Rolls a failed rollout back: `count` allocations of `old_spec` started one at a
  // time, health-gated, each replacing one of `new_ids`; the rest of `new_ids` stop.
  Result<void> restore(Run& run, const std::string& service, const model::AllocSpec& old_spec,
                       const std::vector<std::string>& new_ids, int count,
                       std::chrono::milliseconds deadline);
  void emit(Run& run, std::string event, std::string data);
  void persist(const DeployRecord& record);

  store::Store& store_;
  TaskManager& tasks_;
  Secrets& secrets_;
  const Clock& clock_;
  DeployOptions options_;

  // Wakes waits on allocation states. Shared with the listener TaskManager keeps.
  struct Signal {
    std::mutex mu;
    std::condition_variable cv;
    uint64_t seq = 0;  // bumped on every status report
    bool stopping = false;
  };
  std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();

  mutable std::mutex mutex_;
  model::Config deployed_;
  std::string deployed_text_;
  std::map<std::string, DeployRecord> records_;  // by id
  std::map<std::string, std::vector<Sink>> sinks_;
  std::string running_;  // id of the deploy in progress, if any
  std::thread worker_;
  // When the running deploy last sent its subscribers anything (its thread only).
  std::chrono::steady_clock::time_point last_sent_{};
};

// The allocation spec a service's allocations run; `volumes` are the config's.
model::AllocSpec alloc_spec(const model::ServiceSpec& service,
                            const std::map<std::string, model::VolumeSpec>& volumes);

}  // namespace mill::server
