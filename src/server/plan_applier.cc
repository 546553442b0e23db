#include "server/plan_applier.h"

#include <algorithm>
#include <map>

#include "crypto/crypto.h"
#include "model/names.h"

namespace mill::server {

namespace {

// Bumped by every placement; each commits only if it is unchanged since its snapshot.
constexpr std::string_view kPlacementEpochKey = "/sched/epoch";

Result<std::string> new_id(const std::string& prefix) {
  static constexpr char kBase36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto bytes = MILL_TRY(crypto::random_bytes(4));
  std::string id = prefix + "-";
  for (unsigned char b : bytes) id += kBase36[b % 36];
  if (!model::is_valid_name(id)) {
    return make_error(ErrorCode::kInvalidArgument, "cannot make a valid id from '" + prefix + "'");
  }
  return id;
}

}  // namespace

std::string address_key(const std::string& node, const std::string& ip) {
  return "/ipam/" + node + "/" + ip;
}

PlanApplier::PlanApplier(store::Store& store, NodeRegistry& nodes, AllocTable& table,
                         VolumeBindings& volumes, const Clock& clock,
                         model::Ipv4Net cluster_network)
    : store_(store),
      nodes_(nodes),
      table_(table),
      volumes_(volumes),
      clock_(clock),
      cluster_network_(cluster_network) {}

std::optional<std::string> PlanApplier::free_address(const model::Node& node) const {
  auto subnet = model::node_subnet(cluster_network_, node.subnet);
  if (!subnet) return std::nullopt;
  std::vector<bool> used(256, false);
  table_.for_each([&](const TaskView& v) {
    if (v.alloc->node != node.id || ended(v)) return;
    if (auto ip = model::parse_ipv4(v.alloc->ip); ip && subnet->contains(*ip))
      used[*ip & 255] = true;
  });
  // .0 is the network, .1 the bridge, .255 broadcast.
  for (uint32_t host = 2; host < 255; ++host) {
    if (!used[host]) return model::format_ipv4(subnet->addr + host);
  }
  return std::nullopt;
}

std::vector<scheduler::NodeView> PlanApplier::snapshot(
    std::string_view kind, const std::string& group, const std::vector<model::Node>& nodes) const {
  std::vector<scheduler::NodeView> out;
  std::map<std::string, size_t> index;  // node id -> its place in out
  // Reservations from the same sums the node listings show (allocatable = capacity -
  // reserved): what placement counts is what `mill nodes` says is allocatable.
  auto loads = table_.load_per_node();
  for (const auto& n : nodes) {
    index[n.id] = out.size();
    scheduler::NodeView v;
    v.id = n.id;
    v.ready = n.status != model::NodeStatus::kDown;
    v.draining = n.draining;
    v.cpu_total = n.resources.cpu_total;
    v.memory_total = n.resources.memory_total;
    v.disk_total = n.resources.disk_total;
    if (auto it = loads.find(n.id); it != loads.end()) {
      v.cpu_reserved = it->second.cpu;
      v.memory_reserved = it->second.memory;
      v.disk_reserved = it->second.disk;
    }
    out.push_back(std::move(v));
  }
  if (group.empty()) return out;
  table_.for_each([&](const TaskView& t) {
    if (ended(t) || t.alloc->kind != kind || t.alloc->group != group) return;
    if (auto at = index.find(t.alloc->node); at != index.end()) ++out[at->second].group_allocations;
  });
  return out;
}

Result<std::vector<model::Node>> PlanApplier::plan(std::string_view kind, const std::string& group,
                                                   const model::AllocSpec& spec, int count,
                                                   std::vector<std::string>* unbound) {
  auto node_list = MILL_TRY(nodes_.list());
  std::string pin = MILL_TRY(volumes_.pin(spec, unbound));
  scheduler::GroupRequest request{group, count, spec.cpu, spec.memory, spec.disk, pin};
  auto planned = scheduler::plan(snapshot(kind, group, node_list), request, 0);
  if (auto* r = std::get_if<scheduler::Rejection>(&planned)) {
    return make_error(r->reason == scheduler::Rejection::Reason::kNoNodes ? ErrorCode::kUnavailable
                                                                          : ErrorCode::kConflict,
                      r->message);
  }
  // The chosen nodes' records, from the listing the plan was made on.
  std::vector<model::Node> chosen;
  for (const auto& id : std::get<scheduler::Plan>(planned).nodes) {
    auto it = std::find_if(node_list.begin(), node_list.end(),
                           [&](const model::Node& n) { return n.id == id; });
    if (it != node_list.end()) chosen.push_back(*it);
  }
  return chosen;
}

Result<void> PlanApplier::check_fit(std::string_view kind, const std::string& group,
                                    const model::AllocSpec& spec, int count) {
  std::lock_guard placing(placement_);
  MILL_TRY(plan(kind, group, spec, count, nullptr));
  return {};
}

Result<TaskView> PlanApplier::place(const std::string& kind, const std::string& group,
                                    const std::string& id_prefix, const model::AllocSpec& spec) {
  std::lock_guard placing(placement_);
  for (int attempt = 0; attempt < 8; ++attempt) {
    // The plan is applied with compare-and-swap on the placement epoch read before the
    // snapshot: if anything else placed meanwhile (another leader after a failover, a
    // stale snapshot), the commit fails and the placement is planned again.
    auto epoch = MILL_TRY(store_.get(kPlacementEpochKey));
    int64_t epoch_rev = epoch ? epoch->mod_revision : 0;
    std::vector<std::string> unbound;
    auto planned = MILL_TRY(plan(kind, group, spec, 1, &unbound));
    const std::string node = planned.at(0).id;

    auto ip = free_address(planned.at(0));
    if (!ip) return make_error(ErrorCode::kConflict, "no free address left on " + node);
    model::Allocation a;
    a.id = MILL_TRY(new_id(id_prefix));
    if (table_.contains(a.id)) continue;
    a.kind = kind;
    a.group = group;
    a.node = node;
    a.ip = *ip;
    a.spec = spec;
    a.created_at = clock_.now();
    store::Txn txn;
    txn.compares = {{std::string(kPlacementEpochKey), epoch_rev},
                    {model::alloc_key(a.id), 0},
                    {address_key(node, *ip), 0}};
    txn.ops = {{store::Operation::Type::kPut, std::string(kPlacementEpochKey), a.id},
               {store::Operation::Type::kPut, model::alloc_key(a.id), model::encode(a)},
               {store::Operation::Type::kPut, address_key(node, *ip), a.id}};
    std::vector<VolumeBinding> bindings;
    for (const auto& v : spec.volumes) {
      if (std::find(unbound.begin(), unbound.end(), v.name) == unbound.end()) continue;
      VolumeBinding b{v.name, node, group, v.size, clock_.now()};
      VolumeBindings::add_to(txn, b);
      bindings.push_back(std::move(b));
    }
    // A task is acknowledged only once it runs, tens of milliseconds from here: its
    // record is fsynced meanwhile, in the background (the spawn calls make_durable()
    // before it answers), and the agent can start on it now.
    if (kind == model::kKindTask && bindings.empty()) txn.durability = Durability::kProcessCrash;
    auto result = MILL_TRY(store_.txn(txn));
    if (!result.succeeded) continue;  // placed on a stale view, or id/address taken: again
    // Bound before the table shows the allocation (and wakes its node).
    volumes_.bound(std::move(bindings));
    return table_.apply_placed(std::move(a), result.revision);
  }
  return make_error(ErrorCode::kConflict, "could not record the allocation; try again");
}

}  // namespace mill::server
