#include "agent/agent.h"

#include "common/files.h"
#include "common/log.h"
#include "common/version.h"

namespace mill::agent {

Agent::Agent(AgentOptions options, NodeClient& client, const Clock& clock)
    : options_(std::move(options)), client_(client), clock_(clock), sampler_(options_.data_dir) {
  if (options_.name.empty()) options_.name = host_name();
  if (options_.address.empty()) options_.address = primary_address();
}

Agent::~Agent() { stop(); }

std::string Agent::node_id() const {
  std::lock_guard lock(mutex_);
  return node_id_;
}

model::RegisterResponse Agent::registration() const {
  std::lock_guard lock(mutex_);
  return registration_;
}

Result<std::string> Agent::register_now() {
  model::RegisterRequest req;
  if (auto kept = read_file(options_.node_id_path)) req.id = trim(*kept);
  req.name = options_.name;
  req.address = options_.address;
  req.resources = MILL_TRY(sampler_.sample());
  req.version = std::string(version());
  auto res = MILL_TRY(client_.register_node(req));
  if (res.id != req.id) {
    MILL_TRY(write_file_atomic(options_.node_id_path, res.id + "\n", 0600));
  }
  std::lock_guard lock(mutex_);
  node_id_ = res.id;
  interval_ = res.heartbeat_interval;
  registration_ = res;
  return res.id;
}

void Agent::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void Agent::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Agent::loop() {
  bool failing = false;
  for (;;) {
    std::string id;
    {
      std::unique_lock lock(mutex_);
      clock_.wait_until(wake_, lock, clock_.now() + interval_, [this] { return stopping_; });
      if (stopping_) return;
      id = node_id_;
    }
    Result<void> sent = Result<void>();
    auto resources = sampler_.sample();
    if (!resources) {
      sent = Unexpected(resources.error());
    } else if (id.empty()) {
      auto reg = register_now();
      if (!reg) sent = Unexpected(reg.error());
    } else {
      sent = client_.heartbeat(id, *resources);
      if (!sent && sent.error().code == ErrorCode::kNotFound) {
        auto reg = register_now();
        sent = reg ? Result<void>() : Result<void>(Unexpected(reg.error()));
      }
    }
    // Log a failure once when it starts and once when it ends, not every interval.
    if (!sent && !failing) log::warn("agent: heartbeat failed: " + sent.error().message);
    if (sent && failing) log::info("agent: heartbeats flowing again");
    failing = !sent;
  }
}

}  // namespace mill::agent
