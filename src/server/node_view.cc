#include "server/node_view.h"

#include <algorithm>

namespace mill::server {

NodeProtocolView::NodeProtocolView(const AllocTable& table, const DeployPulls& pulls,
                                   const VolumeBindings& volumes, WatchHub& hub)
    : table_(table), pulls_(pulls), volumes_(volumes), hub_(hub) {}

NodeAllocations NodeProtocolView::allocations_for(const std::string& node) const {
  NodeAllocations out;
  out.index = hub_.last_change();  // before reading: see WatchHub
  out.pulls = pulls_.asked_of(node);
  out.remove_volumes = volumes_.removals_for(node);
  table_.for_each([&](const TaskView& v) {
    if (v.alloc->node == node) out.allocations.push_back(v);
    const auto& spec = v.alloc->spec;
    if (v.alloc->kind != model::kKindService || !spec.route || !spec.port ||
        v.alloc->desired != model::DesiredState::kRun || model::is_terminal(v.status())) {
      return;
    }
    auto it = std::find_if(out.routes.begin(), out.routes.end(), [&](const auto& r) {
      return r.service == v.alloc->group && r.route == *spec.route;
    });
    if (it == out.routes.end()) {
      it =
          out.routes.insert(out.routes.end(), model::ServiceRoute{v.alloc->group, *spec.route, {}});
    }
    if (v.status() == model::AllocStatus::kHealthy && !v.alloc->ip.empty()) {
      it->upstreams.push_back(v.alloc->ip + ":" + std::to_string(*spec.port));
    }
  });
  return out;
}

void NodeProtocolView::wait(int64_t after, WatchHub::Deadline deadline,
                            WatchHub::Callback callback) {
  hub_.wait(after, deadline, std::move(callback));
}

}  // namespace mill::server
