#pragma once

// Deploys (spec: Deploy; DESIGN.md "Deploy"): the leader takes a whole config,
// validates it, diffs it against what runs, and rolls each changed service: start a
// new allocation, wait until it is healthy, stop one old one, repeat. Progress is a
// list of events (the SSE stream of POST /v1/deploy), kept in a deploy record in the
// store so a client that went away can read how it ended (GET /v1/deploys/:id) or
// follow it again (?follow=true).
//
// Each service's rollout is the pure state machine of rollout.h; this controller only
// drives it: it observes the allocations, applies what the rollout asks (place, stop),
// sends its events and keeps its state in the deploy record. A server that starts with
// a deploy still running in its store (it crashed, was killed, or stopped) carries it
// on from there: see resume().
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
// Services that had already finished keep their new version, and are recorded as
// deployed at it as each finishes (deployed_services.h), in the same store transaction
// that moves the deploy's record past them: what deployed() says of a service is what
// runs for it, after a failed deploy and after a restart too. The last config deployed
// in full (its task templates and registries) becomes the new one only when the whole
// deploy succeeds.
//
// One deploy (or restart) at a time; it runs on its own thread, so a client that
// disconnects does not stop it. Time is read, and waited for, through the Clock.
// Thread-safe.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/config.h"
#include "server/deploy_record.h"
#include "server/deployed_services.h"
#include "server/secrets.h"
#include "server/tasks.h"
#include "store/store.h"

namespace mill::server {

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

  // Loads the deployed config and the records.
  Result<void> start();
  // Carries on the deploy a previous server process left running, from its record:
  // call it once this server's nodes can report (its own agent has registered).
  void resume();
  // Ends the running deploy's thread; its record stays "running" for the next start.
  void stop();

  // Starts a deploy of `text` (TOML). kInvalidArgument with `rejection` filled for a
  // bad config (nothing changes); kConflict while another deploy runs.
  Result<std::string> deploy(const std::string& text, const std::string& file_name,
                             DeployRejection* rejection);
  // Replaces every allocation of `service` with a new one of the deployed spec, one at
  // a time, health-gated, like a deploy. kNotFound for an unknown service.
  Result<std::string> restart(const std::string& service);

  // Calls `sink` with every event of deploy `id` (recorded ones at once, later ones
  // as they happen, on the deploy's thread, and an empty one after `keep_alive`
  // without any) until the terminal event or until `sink` returns false. False when
  // there is no such deploy.
  using Sink = std::function<bool(const DeployEvent&)>;
  bool subscribe(const std::string& id, Sink sink);

  // Between deploys, keeps each deployed service at its replica count: for every live
  // allocation short (one lost with its node, or ended for good), places one of the
  // deployed spec, where the scheduler finds room. Does nothing while a deploy runs
  // (its rollout owns the service's allocations then). Returns the ids placed; a
  // service that finds no room is logged and tried again at the next call. A service
  // whose replacements keep ending (an image gone from its registry, say) is topped up
  // with a backoff: 1 s after the last time, doubling up to 5 min, reset once it has
  // all its replicas healthy.
  std::vector<std::string> keep_replicas();
  // Moves every deployed service off the draining nodes, surge-first: replacements are
  // placed elsewhere until `replicas` run off those nodes, and a service's allocations
  // on them are stopped (the agent drains them out of the proxies, then SIGTERM) only
  // once `replicas` are healthy elsewhere. Nothing while a deploy runs. Call it again
  // until nothing is left; returns how many service allocations are left on them.
  int move_off(const std::set<std::string>& draining);

  std::optional<DeployRecord> record(const std::string& id) const;
  std::vector<DeployRecord> records() const;  // newest first, without events
  // What is deployed: every service as its last successful rollout left it (a deploy
  // that failed partway leaves those before the failure at their new spec), with the
  // volumes they mount; task templates and registries of the last config deployed in
  // full (see compose_deployed). Empty before the first deploy.
  model::Config deployed() const;
  // The text of the last config deployed in full ("" before the first).
  std::string deployed_text() const;

 private:
  struct Run {
    DeployRecord record;                  // with its progress: all a resuming server needs
    std::optional<model::Config> config;  // a deploy: the new config
    std::map<std::string, model::VolumeSpec> volumes;  // of the config being rolled
  };
  Result<std::string> begin(std::unique_ptr<Run> run);
  void launch(std::shared_ptr<Run> run);
  // deploy_run.cc: the stages, from wherever the record says the deploy is.
  void execute(Run& run);
  // The spec of `name` in the config being rolled (a restart: the deployed one).
  std::optional<model::ServiceSpec> service_spec(const Run& run, const std::string& name) const;
  // A rollout of `service` over its live allocations; `first` gets the oldest of them.
  Rollout begin_rollout(const Run& run, const model::ServiceSpec& service,
                        std::optional<model::Allocation>* first) const;
  Result<void> pull(Run& run);
  Result<void> roll(Run& run, const std::string& service);
  void remove_services(Run& run);
  // deploy.cc: what is deployed, kept in step with the store. Moves the run past
  // `service` (its record, with progress already advanced) and records the service as
  // deployed at the run's config, in one transaction.
  Result<void> commit_rolled(Run& run, const std::string& service);
  // `service` is no longer deployed (a deploy removed it).
  Result<void> forget_service(const std::string& service);
  // The run's config is deployed in full: it, and every service at it.
  Result<void> commit_deployed(Run& run);
  // Kills `ids` and waits (up to stop_wait) until they have ended.
  void stop_allocations(const std::vector<std::string>& ids);
  void finish(Run& run, const std::string& event, const std::string& data);

  // Blocks until an allocation's state changes after `seen` (a seq()), the clock
  // reaches `until`, or the server stops (then false). Sends keep-alives meanwhile.
  bool wait_news(uint64_t seen, SystemTime until);
  uint64_t seq() const;
  bool stopping() const;
  void keep_alive();
  // Appends events to the record, stores it (with its progress) and sends them.
  void publish(Run& run, std::vector<DeployEvent> events);
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
  model::Config deployed_;  // the last config deployed in full
  std::string deployed_text_;
  DeployedServices rolled_;                              // each service's source
  std::map<std::string, model::Config> rolled_configs_;  // rolled_.sources, parsed
  model::Config view_locked() const {
    return compose_deployed(deployed_, rolled_, rolled_configs_);
  }
  std::map<std::string, DeployRecord> records_;  // by id
  std::map<std::string, std::vector<Sink>> sinks_;
  std::string running_;  // id of the deploy in progress, if any
  std::thread worker_;
  // When the running deploy last sent its subscribers anything (its thread only).
  SystemTime last_sent_{};
  // keep_replicas' backoff per service (under mutex_).
  struct TopUp {
    SystemTime not_before{};
    std::chrono::milliseconds delay{1000};
  };
  std::map<std::string, TopUp> top_ups_;
};

// The allocation spec a service's allocations run; `volumes` are the config's.
model::AllocSpec alloc_spec(const model::ServiceSpec& service,
                            const std::map<std::string, model::VolumeSpec>& volumes);

}  // namespace mill::server
