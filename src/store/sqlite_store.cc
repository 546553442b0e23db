#include "store/sqlite_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "store/sqlite_db.h"
#include "store/watch_wait.h"

namespace mill::store {
namespace {

constexpr int64_t kSchemaVersion = 1;

// Keys are TEXT compared with memcmp; values are BLOBs so any bytes round-trip.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE kv (
  key TEXT PRIMARY KEY NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
  revision INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  type INTEGER NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE meta (
  name TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted_revision', 0);
PRAGMA user_version = 1;
)sql";

constexpr int64_t kEventPut = 0;
constexpr int64_t kEventDelete = 1;

// The smallest string greater than every string starting with prefix, or nullopt if
// there is none ("" or all 0xff bytes): then the range has no upper bound.
std::optional<std::string> prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::nullopt;
}

// The keys starting with a prefix, as the range start <= key < end (end absent:
// unbounded). Queried as a range rather than with LIKE, whose wildcards keys may hold.
struct PrefixRange {
  explicit PrefixRange(std::string_view prefix) : start(prefix), end(prefix_end(prefix)) {}
  std::string start;
  std::optional<std::string> end;
};

}  // namespace

struct SqliteStore::Pending {
  int64_t revision = 0;  // the revision this txn writes at
  int64_t seq = 0;       // events written so far in this txn
  int64_t event_count = 0;
  int64_t compacted_revision = 0;
};

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  return open(path, SqliteStoreOptions{});
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path,
                                                       const SqliteStoreOptions& options) {
  // The state holds secrets' ciphertexts and everything else about the cluster: make
  // the file private before SQLite first opens it. SQLite gives the -wal and -shm
  // files it creates later the same mode as the database file.
  if (path != ":memory:") {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return make_error(ErrorCode::kIo, "cannot create '" + path + "': " + std::strerror(errno));
    }
    ::close(fd);
  }
  auto db = MILL_TRY(sqlite::Database::open(path));
  db->set_busy_timeout(static_cast<int>(options.busy_timeout.count()));
  // journal_mode answers with the mode in effect; it stays "delete" if WAL is refused.
  auto mode = MILL_TRY(db->query_text("PRAGMA journal_mode=WAL"));
  if (mode != "wal") {
    return make_error(ErrorCode::kIo, "'" + path + "' refused WAL journal mode: " + mode);
  }
  // FULL: fsync the WAL on every commit, so an acknowledged write survives power loss.
  MILL_TRY(db->exec("PRAGMA synchronous=FULL"));
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(db), options));
  MILL_TRY(store->init_schema());
  MILL_TRY(store->load_state());
  // The WAL exists once the connection has used it (init_schema did), named after the
  // database file with symlinks resolved, as SQLite does. Without it every txn is
  // simply committed under FULL.
  std::error_code ec;
  const auto real = std::filesystem::canonical(path, ec);
  if (!ec) store->wal_fd_ = ::open((real.string() + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
  store->durable_revision_ = store->revision_;
  if (store->wal_fd_ >= 0) store->flusher_ = std::thread([s = store.get()] { s->flush_loop(); });
  return store;
}

SqliteStore::SqliteStore(std::unique_ptr<sqlite::Database> db, const SqliteStoreOptions& options)
    : options_(options), db_(std::move(db)) {}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  flush_wanted_.notify_all();
  flushed_.notify_all();
  if (flusher_.joinable()) flusher_.join();  // after one last flush
  if (wal_fd_ >= 0) ::close(wal_fd_);
}

// fdatasync of the WAL makes every commit written to it so far durable: the same
// fsync synchronous=FULL does at each commit, here once for a batch, off the
// committer's path. A checkpoint that moved frames into the database file in the
// meantime synced that file itself.
void SqliteStore::flush_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    flush_wanted_.wait(lock, [&] { return closing_ || durable_revision_ < revision_; });
    if (durable_revision_ >= revision_) return;  // closing, with nothing left to flush
    const int64_t target = revision_;
    lock.unlock();
    const int err = ::fdatasync(wal_fd_) == 0 ? 0 : errno;
    lock.lock();
    if (err != 0) {
      // After a failed fsync the kernel may have dropped the unwritten pages and marked
      // them clean, so no later fsync can vouch for them: durability is gone for good,
      // and every sync() from now on says so.
      flush_errno_ = err;
      flushed_.notify_all();
      log::error(std::string("store: cannot fsync the WAL: ") + std::strerror(err));
      return;
    }
    durable_revision_ = std::max(durable_revision_, target);
    flushed_.notify_all();
  }
}

Result<void> SqliteStore::sync(int64_t revision) {
  std::unique_lock lock(mu_);
  revision = std::min(revision, revision_);
  flushed_.wait(lock,
                [&] { return durable_revision_ >= revision || flush_errno_ != 0 || closing_; });
  if (durable_revision_ >= revision) return {};
  if (flush_errno_ != 0) {
    return make_error(ErrorCode::kIo,
                      std::string("cannot fsync the store: ") + std::strerror(flush_errno_));
  }
  return make_error(ErrorCode::kUnavailable, "the store is closing");
}

Result<void> SqliteStore::init_schema() {
  MILL_TRY(db_->exec("BEGIN IMMEDIATE"));
  auto version_text = db_->query_text("PRAGMA user_version");
  if (!version_text) {
    (void)db_->exec("ROLLBACK");
    return Unexpected(std::move(version_text).error());
  }
  int64_t version = -1;
  std::from_chars(version_text->data(), version_text->data() + version_text->size(), version);
  if (version < 0 || version > kSchemaVersion) {
    (void)db_->exec("ROLLBACK");
    return make_error(ErrorCode::kIo, "store schema version " + *version_text +
                                          " is not one this build understands");
  }
  // Migrations from older versions go here, one step at a time.
  if (version == 0) {
    if (auto created = db_->exec(kSchemaV1); !created) {
      (void)db_->exec("ROLLBACK");
      return created;
    }
  }
  return db_->exec("COMMIT");
}

Result<void> SqliteStore::load_state() {
  std::lock_guard lock(mu_);
  auto meta = MILL_TRY(db_->prepare("SELECT name, value FROM meta"));
  while (MILL_TRY(meta.step())) {
    const std::string name = meta.column_text(0);
    if (name == "revision") revision_ = meta.column_int(1);
    if (name == "compacted_revision") compacted_revision_ = meta.column_int(1);
  }
  auto count = MILL_TRY(db_->prepare("SELECT COUNT(*) FROM events"));
  if (MILL_TRY(count.step())) event_count_ = count.column_int(0);
  return {};
}

Result<int64_t> SqliteStore::revision() {
  std::lock_guard lock(mu_);
  return revision_;
}

int64_t SqliteStore::compacted_revision() {
  std::lock_guard lock(mu_);
  return compacted_revision_;
}

namespace {

KeyValue read_kv(const sqlite::Statement& row) {
  KeyValue kv;
  kv.key = row.column_text(0);
  kv.value = row.column_blob(1);
  kv.create_revision = row.column_int(2);
  kv.mod_revision = row.column_int(3);
  kv.version = row.column_int(4);
  return kv;
}

}  // namespace

Result<std::optional<KeyValue>> SqliteStore::get(std::string_view key) {
  std::lock_guard lock(mu_);
  auto stmt = MILL_TRY(db_->prepare(
      "SELECT key, value, create_revision, mod_revision, version FROM kv WHERE key = ?1"));
  stmt.bind_text(1, key);
  if (!MILL_TRY(stmt.step())) return std::optional<KeyValue>();
  return std::optional<KeyValue>(read_kv(stmt));
}

Result<ListResult> SqliteStore::list(std::string_view prefix) {
  // The mutex excludes writers, so the rows and revision_ describe the same state.
  std::lock_guard lock(mu_);
  PrefixRange range(prefix);
  auto stmt = MILL_TRY(
      db_->prepare(range.end ? "SELECT key, value, create_revision, mod_revision, version FROM kv "
                               "WHERE key >= ?1 AND key < ?2 ORDER BY key"
                             : "SELECT key, value, create_revision, mod_revision, version FROM kv "
                               "WHERE key >= ?1 ORDER BY key"));
  stmt.bind_text(1, range.start);
  if (range.end) stmt.bind_text(2, *range.end);
  ListResult out;
  out.revision = revision_;
  while (MILL_TRY(stmt.step())) out.kvs.push_back(read_kv(stmt));
  return out;
}

Result<TxnResult> SqliteStore::txn(const Txn& txn) {
  std::lock_guard lock(mu_);
  // Set per commit, so a durable write never runs with a lighter setting: in WAL mode
  // NORMAL skips the fsync of each commit (the commit survives the process, not a
  // power loss; the flusher syncs it next); FULL's fsync also covers every NORMAL
  // commit before it.
  const bool full = txn.durability == Durability::kPowerLoss || wal_fd_ < 0;
  if (full != synchronous_full_) {
    MILL_TRY(db_->exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
    synchronous_full_ = full;
  }
  MILL_TRY(db_->exec("BEGIN IMMEDIATE"));
  Pending pending{revision_ + 1, 0, event_count_, compacted_revision_};
  // Everything up to COMMIT runs here; any failure or a no-op rolls back.
  auto applied = [&]() -> Result<bool> {
    if (!MILL_TRY(compares_hold(txn))) return false;
    MILL_TRY(apply_ops(txn, pending));
    if (pending.seq == 0) return true;  // nothing changed: no new revision
    MILL_TRY(maybe_compact(pending));
    MILL_TRY(write_meta(pending));
    return true;
  }();
  if (!applied || !*applied || pending.seq == 0) {
    (void)db_->exec("ROLLBACK");
    if (!applied) return Unexpected(std::move(applied).error());
    return TxnResult{*applied, revision_};
  }
  if (auto commit = db_->exec("COMMIT"); !commit) {
    // A failed COMMIT may leave the transaction open; never leave it half-applied.
    (void)db_->exec("ROLLBACK");
    return Unexpected(std::move(commit).error());
  }
  // Durable now (or, under NORMAL, once the flusher has run): publish the new state
  // and only then wake watchers.
  revision_ = pending.revision;
  event_count_ = pending.event_count;
  compacted_revision_ = pending.compacted_revision;
  if (full) {
    // This commit's fsync covered every commit before it, unless one already failed.
    if (flush_errno_ == 0) durable_revision_ = revision_;
    flushed_.notify_all();  // a sync() of an earlier light commit may be waiting
  } else {
    flush_wanted_.notify_one();
  }
  committed_.notify_all();
  return TxnResult{true, revision_};
}

Result<bool> SqliteStore::compares_hold(const Txn& txn) {
  for (const Compare& compare : txn.compares) {
    auto stmt = MILL_TRY(db_->prepare("SELECT mod_revision FROM kv WHERE key = ?1"));
    stmt.bind_text(1, compare.key);
    const int64_t actual = MILL_TRY(stmt.step()) ? stmt.column_int(0) : 0;
    if (actual != compare.mod_revision) return false;
  }
  return true;
}

Result<void> SqliteStore::apply_ops(const Txn& txn, Pending& pending) {
  for (const Operation& op : txn.ops) {
    switch (op.type) {
      case Operation::Type::kPut:
        MILL_TRY(put_key(op, pending));
        break;
      case Operation::Type::kDelete:
        MILL_TRY(delete_key(op.key, pending));
        break;
      case Operation::Type::kDeletePrefix:
        MILL_TRY(delete_prefix(op.key, pending));
        break;
    }
  }
  return {};
}

Result<void> SqliteStore::put_key(const Operation& op, Pending& pending) {
  KeyValue kv{op.key, op.value, pending.revision, pending.revision, 1};
  {
    auto existing =
        MILL_TRY(db_->prepare("SELECT create_revision, version FROM kv WHERE key = ?1"));
    existing.bind_text(1, op.key);
    if (MILL_TRY(existing.step())) {
      kv.create_revision = existing.column_int(0);
      kv.version = existing.column_int(1) + 1;
    }
  }
  auto upsert = MILL_TRY(
      db_->prepare("INSERT OR REPLACE INTO kv (key, value, create_revision, mod_revision, version) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)"));
  upsert.bind_text(1, kv.key)
      .bind_blob(2, kv.value)
      .bind_int(3, kv.create_revision)
      .bind_int(4, kv.mod_revision)
      .bind_int(5, kv.version);
  MILL_TRY(upsert.run());
  return append_event(Event::Type::kPut, kv, pending);
}

Result<void> SqliteStore::delete_key(const std::string& key, Pending& pending) {
  {
    auto stmt = MILL_TRY(db_->prepare("DELETE FROM kv WHERE key = ?1"));
    stmt.bind_text(1, key);
    MILL_TRY(stmt.run());
  }
  if (db_->changes() == 0) return {};  // deleting a missing key changes nothing
  KeyValue kv;
  kv.key = key;
  kv.mod_revision = pending.revision;
  return append_event(Event::Type::kDelete, kv, pending);
}

Result<void> SqliteStore::delete_prefix(const std::string& prefix, Pending& pending) {
  PrefixRange range(prefix);
  std::vector<std::string> keys;
  {
    auto stmt = MILL_TRY(
        db_->prepare(range.end ? "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key"
                               : "SELECT key FROM kv WHERE key >= ?1 ORDER BY key"));
    stmt.bind_text(1, range.start);
    if (range.end) stmt.bind_text(2, *range.end);
    while (MILL_TRY(stmt.step())) keys.push_back(stmt.column_text(0));
  }
  for (const std::string& key : keys) MILL_TRY(delete_key(key, pending));
  return {};
}

Result<void> SqliteStore::append_event(Event::Type type, const KeyValue& kv, Pending& pending) {
  auto stmt = MILL_TRY(
      db_->prepare("INSERT INTO events (revision, seq, type, key, value, create_revision, version) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  stmt.bind_int(1, pending.revision)
      .bind_int(2, pending.seq)
      .bind_int(3, type == Event::Type::kPut ? kEventPut : kEventDelete)
      .bind_text(4, kv.key)
      .bind_blob(5, kv.value)
      .bind_int(6, kv.create_revision)
      .bind_int(7, kv.version);
  MILL_TRY(stmt.run());
  ++pending.seq;
  ++pending.event_count;
  return {};
}

Result<void> SqliteStore::write_meta(const Pending& pending) {
  auto stmt = MILL_TRY(db_->prepare("UPDATE meta SET value = ?2 WHERE name = ?1"));
  stmt.bind_text(1, "revision").bind_int(2, pending.revision);
  MILL_TRY(stmt.run());
  return {};
}

// Runs when the history has grown a sixteenth past the limit (so the cost of finding
// the cut is paid rarely) and trims it to at most history_limit events. The cut falls
// between revisions: every revision above compacted_revision keeps all its events.
Result<void> SqliteStore::maybe_compact(Pending& pending) {
  const auto limit = static_cast<int64_t>(options_.history_limit);
  if (pending.event_count <= limit + limit / 16) return {};
  int64_t cut = 0;
  {
    auto stmt = MILL_TRY(db_->prepare(
        "SELECT revision FROM events ORDER BY revision DESC, seq DESC LIMIT 1 OFFSET ?1"));
    stmt.bind_int(1, limit);
    if (!MILL_TRY(stmt.step())) return {};
    cut = stmt.column_int(0);
  }
  {
    auto stmt = MILL_TRY(db_->prepare("DELETE FROM events WHERE revision <= ?1"));
    stmt.bind_int(1, cut);
    MILL_TRY(stmt.run());
  }
  pending.event_count -= db_->changes();
  pending.compacted_revision = cut;
  auto stmt = MILL_TRY(db_->prepare("UPDATE meta SET value = ?2 WHERE name = ?1"));
  stmt.bind_text(1, "compacted_revision").bind_int(2, cut);
  MILL_TRY(stmt.run());
  return {};
}

Result<std::vector<Event>> SqliteStore::events_after(std::string_view prefix,
                                                     int64_t after_revision) {
  PrefixRange range(prefix);
  auto stmt = MILL_TRY(db_->prepare(
      range.end ? "SELECT type, key, value, create_revision, revision, version FROM events "
                  "WHERE revision > ?1 AND key >= ?2 AND key < ?3 ORDER BY revision, seq"
                : "SELECT type, key, value, create_revision, revision, version FROM events "
                  "WHERE revision > ?1 AND key >= ?2 ORDER BY revision, seq"));
  stmt.bind_int(1, after_revision).bind_text(2, range.start);
  if (range.end) stmt.bind_text(3, *range.end);
  std::vector<Event> events;
  while (MILL_TRY(stmt.step())) {
    Event event;
    event.type = stmt.column_int(0) == kEventPut ? Event::Type::kPut : Event::Type::kDelete;
    event.kv.key = stmt.column_text(1);
    event.kv.value = stmt.column_blob(2);
    event.kv.create_revision = stmt.column_int(3);
    event.kv.mod_revision = stmt.column_int(4);
    event.kv.version = stmt.column_int(5);
    events.push_back(std::move(event));
  }
  return events;
}

Result<WatchResult> SqliteStore::watch(std::string_view prefix, int64_t after_revision,
                                       std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return wait_for_events(lock, committed_, revision_, compacted_revision_, after_revision, timeout,
                         [&] { return events_after(prefix, after_revision); });
}

Result<std::string> SqliteStore::integrity_check() {
  std::lock_guard lock(mu_);
  return db_->query_text("PRAGMA integrity_check");
}

Result<std::string> SqliteStore::pragma(std::string_view name) {
  const bool bare = !name.empty() &&
                    name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos;
  if (!bare) {
    return make_error(ErrorCode::kInvalidArgument, "bad pragma name '" + std::string(name) + "'");
  }
  std::lock_guard lock(mu_);
  return db_->query_text("PRAGMA " + std::string(name));
}

}  // namespace mill::store
