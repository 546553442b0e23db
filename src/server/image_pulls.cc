#include "server/image_pulls.h"

namespace mill::server {

namespace {

constexpr std::string_view kPullsPrefix = "/pulls/";

}  // namespace

DeployPulls::DeployPulls(store::Store& store, Waiters& waiters, WatchHub& hub)
    : store_(store), waiters_(waiters), hub_(hub) {}

Result<void> DeployPulls::load() {
  // Pull requests belong to a deploy of a previous server process: drop them.
  for (const auto& kv : MILL_TRY(store_.list(kPullsPrefix)).kvs) MILL_TRY(store_.remove(kv.key));
  return {};
}

Result<void> DeployPulls::request(const std::string& deploy, const std::vector<std::string>& nodes,
                                  const std::vector<std::string>& images) {
  int64_t revision = 0;
  for (const auto& n : nodes)
    revision = MILL_TRY(store_.put(std::string(kPullsPrefix) + n, deploy));
  {
    std::lock_guard lock(mutex_);
    reports_.clear();  // one deploy at a time: older answers are of no use
    for (const auto& n : nodes) asked_[n] = model::ImagePulls{deploy, images};
  }
  if (!nodes.empty()) hub_.changed(revision);
  return {};
}

void DeployPulls::clear(const std::vector<std::string>& nodes) {
  int64_t revision = 0;
  for (const auto& n : nodes) {
    if (auto removed = store_.remove(std::string(kPullsPrefix) + n)) revision = *removed;
  }
  {
    std::lock_guard lock(mutex_);
    for (const auto& n : nodes) asked_.erase(n);
  }
  if (!nodes.empty()) hub_.changed(revision);
}

std::optional<model::ImagePulls> DeployPulls::asked_of(const std::string& node) const {
  std::lock_guard lock(mutex_);
  auto it = asked_.find(node);
  if (it == asked_.end()) return std::nullopt;
  return it->second;
}

void DeployPulls::answered(const std::string& node, const std::string& deploy,
                           const std::vector<model::PullReport>& reports) {
  {
    std::lock_guard lock(mutex_);
    auto it = asked_.find(node);
    if (it == asked_.end() || it->second.deploy != deploy) return;  // not asked (any more)
    for (const auto& r : reports) reports_[deploy][node][r.image] = r.error;
  }
  waiters_.notify("pulls/" + deploy);
}

std::map<std::string, std::map<std::string, std::string>> DeployPulls::reports(
    const std::string& deploy) const {
  std::lock_guard lock(mutex_);
  auto it = reports_.find(deploy);
  if (it == reports_.end()) return {};
  return it->second;
}

}  // namespace mill::server
