#pragma once

// Thin RAII layer over the SQLite C API, internal to the store module (SqliteStore is
// its only user). It turns SQLite status codes into Result errors and caches prepared
// statements by their SQL text.
//
// Thread-safety: none. A Database and the Statements it hands out must be used by one
// thread at a time; SqliteStore guarantees that with its mutex.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace mill::store::sqlite {

// A cached prepared statement on loan. Destruction resets it and clears its bindings
// so the next prepare() of the same SQL starts clean. Do not hold two Statements for
// the same SQL at once: they share one sqlite3_stmt.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameter indexes start at 1. A failed bind is reported by the next step().
  Statement& bind_int(int index, int64_t value);
  Statement& bind_text(int index, std::string_view value);
  // Always binds a blob, never NULL, even for an empty value.
  Statement& bind_blob(int index, std::string_view value);

  // Advances one row: true when a row is ready, false when the statement is done.
  Result<bool> step();
  // Steps to completion; for statements that return no rows.
  Result<void> run();

  // Column indexes start at 0; valid only after step() returned true.
  int64_t column_int(int index) const;
  std::string column_text(int index) const;
  std::string column_blob(int index) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_status_ = 0;  // first failed bind's SQLite code, 0 if none
};

class Database {
 public:
  // Opens (creating if needed) the file at path, read-write.
  static Result<std::unique_ptr<Database>> open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows we need.
  Result<void> exec(const std::string& sql);
  // The first column of every row of sql, joined by '\n' (for PRAGMA queries).
  Result<std::string> query_text(const std::string& sql);
  // A cached prepared statement for sql.
  Result<Statement> prepare(const std::string& sql);
  void set_busy_timeout(int milliseconds);
  // Rows changed by the most recent INSERT, UPDATE or DELETE.
  int64_t changes() const;

 private:
  explicit Database(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

// Maps a SQLite result code and the connection's message to our Error.
Unexpected sqlite_error(sqlite3* db, int status, std::string_view what);

}  // namespace mill::store::sqlite
