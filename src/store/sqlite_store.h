#pragma once

// SqliteStore: the embedded Store backend (DESIGN.md "State"): one SQLite file under
// the data dir, WAL journal, synchronous=FULL, so a txn() that returned success has
// been fsynced. A kProcessCrash txn commits under synchronous=NORMAL instead (no
// fsync) and a flusher thread fdatasyncs the WAL right after (one fsync covers every
// commit before it); sync() waits for that. A single server process owns the file;
// watch() is woken by commits made through this object only, not by other processes
// writing the same file.
//
// Tables: kv (current state), events (history for watch, trimmed to the last
// history_limit events), meta (revision, compacted_revision). PRAGMA user_version holds
// the schema version so later versions can migrate.
//
// Thread-safety: every method may be called from any thread at once. One mutex guards
// the connection; watch() waits on a condition variable without holding it.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/store.h"

namespace mill::store {

namespace sqlite {
class Database;
}

struct SqliteStoreOptions {
  // Events kept for watch(). Compaction runs inside txn() once the history has grown
  // a sixteenth past this, and trims it back to at most this many, whole revisions at
  // a time. A watch from before the kept history fails with kCompacted.
  std::size_t history_limit = 100000;
  // How long a statement waits for a lock held by another connection (e.g. a backup).
  std::chrono::milliseconds busy_timeout{5000};
};

class SqliteStore final : public Store {
 public:
  // Opens the store at path, creating the file and schema if needed.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path);
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path,
                                                   const SqliteStoreOptions& options);
  ~SqliteStore() override;

  Result<int64_t> revision() override;
  Result<std::optional<KeyValue>> get(std::string_view key) override;
  Result<ListResult> list(std::string_view prefix) override;
  Result<TxnResult> txn(const Txn& txn) override;
  Result<WatchResult> watch(std::string_view prefix, int64_t after_revision,
                            std::chrono::milliseconds timeout) override;
  Result<void> sync(int64_t revision) override;

  // Runs PRAGMA integrity_check: "ok" when the file is sound, else SQLite's findings.
  Result<std::string> integrity_check();
  // The value of a read-only PRAGMA, e.g. pragma("journal_mode") == "wal".
  // name must be a bare identifier ([a-z_]+); anything else is kInvalidArgument.
  Result<std::string> pragma(std::string_view name);
  // Highest revision whose events were dropped (0 = full history kept).
  int64_t compacted_revision();

 private:
  struct Pending;  // one txn's uncommitted counters

  SqliteStore(std::unique_ptr<sqlite::Database> db, const SqliteStoreOptions& options);
  Result<void> init_schema();
  Result<void> load_state();
  Result<bool> compares_hold(const Txn& txn);
  Result<void> apply_ops(const Txn& txn, Pending& pending);
  Result<void> put_key(const Operation& op, Pending& pending);
  Result<void> delete_key(const std::string& key, Pending& pending);
  Result<void> delete_prefix(const std::string& prefix, Pending& pending);
  Result<void> append_event(Event::Type type, const KeyValue& kv, Pending& pending);
  Result<void> write_meta(const Pending& pending);
  Result<void> maybe_compact(Pending& pending);
  Result<std::vector<Event>> events_after(std::string_view prefix, int64_t after_revision);
  void flush_loop();

  const SqliteStoreOptions options_;
  std::mutex mu_;                      // guards everything below
  std::condition_variable committed_;  // notified after every committed revision bump
  std::unique_ptr<sqlite::Database> db_;
  int64_t revision_ = 0;            // mirrors meta.revision after the last commit
  int64_t compacted_revision_ = 0;  // mirrors meta.compacted_revision
  int64_t event_count_ = 0;         // rows in events
  bool synchronous_full_ = true;    // PRAGMA synchronous in effect: FULL, else NORMAL
  // Durability of kProcessCrash commits: the WAL file (SQLite appends commits to it
  // with write(), and keeps the one file while the connection is open), the highest
  // revision known to be on disk, and the flusher that fsyncs what is not.
  int wal_fd_ = -1;  // -1: none opened; every txn is then committed under FULL
  int64_t durable_revision_ = 0;
  int flush_errno_ = 0;  // set for good by a failed fdatasync
  bool closing_ = false;
  std::condition_variable flush_wanted_;
  std::condition_variable flushed_;
  std::thread flusher_;
};

}  // namespace mill::store
