#pragma once

// The one interface to durable state (DESIGN.md "State"). Everything that must
// survive a restart goes through a Store: deployed config, nodes, allocations, tasks,
// secret ciphertexts, volumes, deploy records.
//
// The model follows etcd v3 so that an etcd backend maps onto it one to one:
// - every successful write bumps one store-wide revision (int64, starts at 1 after
//   the first write; an empty store is at revision 0);
// - each key remembers the revision that created it and the one that last changed it;
// - a transaction compares keys' mod revisions and, if all hold, applies its writes
//   atomically at one new revision; this is the compare-and-swap every writer uses;
// - every change is kept in a history so a watcher can resume from a revision.
//
// Thread-safety: every method may be called from any thread at once. A write that
// returned success is durable (the SQLite backend has fsynced it), unless its Txn asked
// only to outlive this process (Durability::kProcessCrash).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/result.h"

namespace mill::store {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;  // number of writes to this key since it was (re)created
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For kPut: the key's new state. For kDelete: key, empty value, and
  // mod_revision = the revision of the delete.
  KeyValue kv;
};

// A condition on a key's mod revision. mod_revision == 0 means "the key does not exist".
struct Compare {
  std::string key;
  int64_t mod_revision = 0;
};

struct Operation {
  enum class Type { kPut, kDelete, kDeletePrefix };
  Type type = Type::kPut;
  std::string key;  // the key, or the prefix for kDeletePrefix
  std::string value;
};

struct Txn {
  std::vector<Compare> compares;
  std::vector<Operation> ops;  // applied in order, only if every compare holds
  // kProcessCrash: txn() returns before the write is safe from a power loss (it is
  // from this process dying). The SQLite backend then fsyncs it in the background,
  // off the caller's path; sync() waits for that. For what a reboot makes moot (the
  // state of processes that die with it), or what the caller syncs before it answers.
  Durability durability = Durability::kPowerLoss;
};

struct TxnResult {
  bool succeeded = false;  // false: a compare failed and nothing was written
  int64_t revision = 0;    // the store's revision after the txn (unchanged if it failed)
};

struct ListResult {
  int64_t revision = 0;       // the revision the listing reflects
  std::vector<KeyValue> kvs;  // sorted by key
};

struct WatchResult {
  int64_t revision = 0;       // store revision when the watch returned
  std::vector<Event> events;  // in revision order; empty on timeout
};

// The error a watch gets when it asks for history older than what is kept.
Unexpected compacted_error(int64_t after_revision, int64_t compacted_revision);

class Store {
 public:
  virtual ~Store() = default;

  // Current store-wide revision.
  virtual Result<int64_t> revision() = 0;

  virtual Result<std::optional<KeyValue>> get(std::string_view key) = 0;

  // Every key starting with prefix ("" lists everything), sorted by key.
  virtual Result<ListResult> list(std::string_view prefix) = 0;

  // Atomically: if every compare holds, apply every op at one new revision.
  // A txn whose compares hold but whose ops change nothing (e.g. deleting a missing
  // key) still succeeds and does not bump the revision.
  virtual Result<TxnResult> txn(const Txn& txn) = 0;

  // Events for keys under prefix with revision > after_revision. Returns at once if
  // there are any; otherwise waits up to timeout for one, then returns none.
  // Error kCompacted if after_revision is older than the kept history.
  virtual Result<WatchResult> watch(std::string_view prefix, int64_t after_revision,
                                    std::chrono::milliseconds timeout) = 0;

  // Returns once every write up to `revision` is durable, kProcessCrash ones too. For
  // a caller about to acknowledge such a write: the SQLite backend fsyncs them in the
  // background right after their commit, so by then this rarely waits.
  virtual Result<void> sync(int64_t revision) = 0;

  // Convenience wrappers over txn().
  Result<int64_t> put(std::string_view key, std::string_view value);
  // Writes only if the key's mod revision is still expected_mod_revision
  // (0 = the key must not exist). kConflict if it changed.
  Result<int64_t> put_if(std::string_view key, std::string_view value,
                         int64_t expected_mod_revision);
  // kNotFound if the key does not exist.
  Result<int64_t> remove(std::string_view key);
  Result<int64_t> remove_if(std::string_view key, int64_t expected_mod_revision);
};

}  // namespace mill::store
