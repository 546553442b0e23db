#include "server/alloc_writer.h"

#include "server/plan_applier.h"

namespace mill::server {

AllocWriter::AllocWriter(store::Store& store, AllocTable& table, VolumeBindings& volumes,
                         UsageMetrics& usage, const Clock& clock)
    : store_(store), table_(table), volumes_(volumes), usage_(usage), clock_(clock) {}

Result<TaskView> AllocWriter::kill(const std::string& id) {
  auto guard = table_.guard(id);
  auto v = MILL_TRY(table_.get(id));
  if (ended(v) || v.alloc->desired == model::DesiredState::kStop) return v;
  model::Allocation a = *v.alloc;
  a.desired = model::DesiredState::kStop;
  store::Txn txn;
  txn.compares = {{model::alloc_key(id), table_.revision(id).value_or(0)}};
  txn.ops = {{store::Operation::Type::kPut, model::alloc_key(id), model::encode(a)}};
  auto result = MILL_TRY(store_.txn(txn));
  if (!result.succeeded) {
    return make_error(ErrorCode::kConflict, "task " + id + " changed meanwhile; try again");
  }
  return table_.apply_alloc(std::move(a), result.revision);
}

Result<bool> AllocWriter::lose(const std::string& id, const std::string& reason) {
  auto guard = table_.guard(id);
  auto v = MILL_TRY(table_.get(id));
  if (ended(v)) return false;
  model::Allocation a = *v.alloc;
  a.desired = model::DesiredState::kStop;
  model::AllocState lost = v.state.value_or(model::AllocState{});
  lost.id = id;
  lost.status = model::AllocStatus::kLost;
  lost.message = reason;
  lost.finished_at = clock_.now();
  store::Txn txn;
  txn.compares = {{model::alloc_key(id), table_.revision(id).value_or(0)}};
  txn.ops = {{store::Operation::Type::kPut, model::alloc_key(id), model::encode(a)},
             {store::Operation::Type::kPut, model::alloc_state_key(id), model::encode(lost)}};
  if (!a.ip.empty()) {
    txn.ops.push_back({store::Operation::Type::kDelete, address_key(a.node, a.ip), ""});
  }
  auto result = MILL_TRY(store_.txn(txn));
  if (!result.succeeded) {
    return make_error(ErrorCode::kConflict, "allocation " + id + " changed meanwhile; try again");
  }
  auto applied = table_.apply_alloc(std::move(a), result.revision);
  table_.apply_state(lost, result.revision);
  usage_.record(*applied.alloc, applied.alloc->node, v.state, lost);
  return true;
}

Result<void> AllocWriter::report(const std::string& node,
                                 const std::vector<model::AllocState>& states) {
  for (const auto& reported : states) MILL_TRY(record(node, reported));
  return {};
}

Result<void> AllocWriter::record(const std::string& node, const model::AllocState& reported) {
  auto guard = table_.guard(reported.id);
  auto found = table_.get(reported.id);
  if (!found || found->alloc->node != node) return {};
  const TaskView& v = *found;
  if (v.state == reported) {
    // Nothing changed, its usage included: for the cpu rate, no cpu used since the last
    // report (an idle allocation's agent resends its usage now and then).
    usage_.record(*v.alloc, node, v.state, reported);
    return {};
  }
  // An end state is final: a late report cannot bring a task back.
  if (v.state && model::is_terminal(v.state->status) && v.state->status != reported.status) {
    return {};
  }
  // Usage changes with every report; it is shown and exported, not kept: only a
  // change of anything else is worth a durable write.
  model::AllocState without_usage = reported;
  if (v.state) {
    without_usage.cpu_seconds = v.state->cpu_seconds;
    without_usage.memory_bytes = v.state->memory_bytes;
  }
  int64_t revision = 0;
  if (!v.state || without_usage != *v.state) {
    const bool now_ended =
        model::is_terminal(reported.status) && (!v.state || !model::is_terminal(v.state->status));
    store::Txn txn;
    // Committed without waiting for its fsync (the store's flusher does it at once), so
    // the spawn that waits for "running" does not wait for one. Should a power cut take
    // it back, the agent sees the old state in its next desired state and sends this
    // one again (AllocRunner::reconcile).
    txn.durability = Durability::kProcessCrash;
    txn.ops.push_back({store::Operation::Type::kPut, model::alloc_state_key(reported.id),
                       model::encode(reported)});
    if (now_ended && !v.alloc->ip.empty()) {
      // The container and its network are gone: its address may be reused.
      txn.ops.push_back({store::Operation::Type::kDelete, address_key(node, v.alloc->ip), ""});
    }
    revision = MILL_TRY(store_.txn(txn)).revision;
  }
  // The store has it (if it is worth keeping): now readers may see it.
  table_.apply_state(reported, revision);
  volumes_.set_used(reported.volume_used);
  usage_.record(*v.alloc, node, v.state, reported);
  return {};
}

Result<int> AllocWriter::sweep(std::chrono::milliseconds retention) {
  int forgotten = 0;
  const SystemTime now = clock_.now();
  for (const auto& id : table_.expired(now, retention)) {
    auto guard = table_.guard(id);
    // Looked at again under the guard: a report may have come in between.
    auto v = table_.get(id);
    if (!v || !ended_by(*v, now - retention)) continue;
    store::Txn txn;
    txn.ops = {{store::Operation::Type::kDelete, model::alloc_key(id), ""},
               {store::Operation::Type::kDelete, model::alloc_state_key(id), ""}};
    auto result = MILL_TRY(store_.txn(txn));
    table_.apply_forgotten(id, result.revision);
    ++forgotten;
    std::size_t bytes = 0;
    for (const auto& [name, value] : v->alloc->spec.env) bytes += name.size() + value.size();
    for (const auto& arg : v->alloc->spec.command) bytes += arg.size();
    forgotten_bytes_ += bytes;
  }
  return forgotten;
}

}  // namespace mill::server
