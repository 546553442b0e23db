#include "store/sqlite_db.h"

#include <sqlite3.h>

namespace mill::store::sqlite {

Unexpected sqlite_error(sqlite3* db, int status, std::string_view what) {
  const int primary = status & 0xff;
  std::string message(what);
  message += ": ";
  if (primary == SQLITE_FULL) {
    // Nothing was written (the transaction is rolled back), and once there is room
    // the same request works: unavailable, and the operator is told what to do.
    message +=
        "the disk holding the state store is full; free space on the data dir's "
        "filesystem and retry";
    return make_error(ErrorCode::kUnavailable, std::move(message));
  }
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(status);
  // BUSY/LOCKED mean another connection holds the file: retrying may help.
  const ErrorCode code = (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
                             ? ErrorCode::kUnavailable
                             : ErrorCode::kIo;
  return make_error(code, std::move(message));
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), bind_status_(other.bind_status_) {
  other.stmt_ = nullptr;
}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Statement& Statement::bind_int(int index, int64_t value) {
  int status = sqlite3_bind_int64(stmt_, index, value);
  if (status != SQLITE_OK && bind_status_ == 0) bind_status_ = status;
  return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
  // Keys may hold any bytes; SQLite compares TEXT with memcmp (BINARY collation), so
  // the order matches std::string's.
  int status =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (status != SQLITE_OK && bind_status_ == 0) bind_status_ = status;
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view value) {
  // sqlite3_bind_blob with a null pointer binds NULL; bind a zero-length blob instead.
  int status = value.empty() ? sqlite3_bind_zeroblob(stmt_, index, 0)
                             : sqlite3_bind_blob64(stmt_, index, value.data(), value.size(),
                                                   SQLITE_TRANSIENT);
  if (status != SQLITE_OK && bind_status_ == 0) bind_status_ = status;
  return *this;
}

Result<bool> Statement::step() {
  if (bind_status_ != 0) return sqlite_error(db_, bind_status_, "bind");
  int status = sqlite3_step(stmt_);
  if (status == SQLITE_ROW) return true;
  if (status == SQLITE_DONE) return false;
  return sqlite_error(db_, status, "step");
}

Result<void> Statement::run() {
  while (MILL_TRY(step())) {
  }
  return {};
}

int64_t Statement::column_int(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string Statement::column_text(int index) const {
  const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
  int size = sqlite3_column_bytes(stmt_, index);  // after column_text, per the SQLite docs
  return data == nullptr ? std::string() : std::string(data, static_cast<std::size_t>(size));
}

std::string Statement::column_blob(int index) const {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, index));
  int size = sqlite3_column_bytes(stmt_, index);
  return data == nullptr ? std::string() : std::string(data, static_cast<std::size_t>(size));
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path) {
  sqlite3* db = nullptr;
  int status =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (status != SQLITE_OK) {
    auto error = sqlite_error(db, status, "open '" + path + "'");
    sqlite3_close(db);  // a handle is returned even on failure, and must be closed
    return error;
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Database>(new Database(db));
}

Database::~Database() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Result<void> Database::exec(const std::string& sql) {
  int status = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  if (status != SQLITE_OK) return sqlite_error(db_, status, sql);
  return {};
}

Result<std::string> Database::query_text(const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  int status = sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr);
  if (status != SQLITE_OK) return sqlite_error(db_, status, sql);
  std::string out;
  while ((status = sqlite3_step(raw)) == SQLITE_ROW) {
    if (!out.empty()) out += '\n';
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
    if (text != nullptr) out.append(text, static_cast<std::size_t>(sqlite3_column_bytes(raw, 0)));
  }
  sqlite3_finalize(raw);
  if (status != SQLITE_DONE) return sqlite_error(db_, status, sql);
  return out;
}

Result<Statement> Database::prepare(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* raw = nullptr;
    int status = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (status != SQLITE_OK) return sqlite_error(db_, status, "prepare " + sql);
    it = statements_.emplace(sql, raw).first;
  }
  return Statement(db_, it->second);
}

void Database::set_busy_timeout(int milliseconds) { sqlite3_busy_timeout(db_, milliseconds); }

int64_t Database::changes() const { return sqlite3_changes64(db_); }

}  // namespace mill::store::sqlite
