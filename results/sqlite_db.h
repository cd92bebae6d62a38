// A thin RAII wrapper over the SQLite C API: open (WAL), exec, prepared statements with typed binds,
// transactions. Written here rather than pulled in because Debian ships no maintained C++ wrapper
// package that we would trust more than these ~150 lines over sqlite3.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <sqlite3.h>

#include "kernels/status.h"

namespace ql {

// One SQL value as read back: NULL, integer, real or text (blobs are returned as text).
using SqlValue = std::variant<std::monostate, int64_t, double, std::string>;
std::string SqlValueToString(const SqlValue& v);

struct SqlResult {
  std::vector<std::string> columns;
  std::vector<std::vector<SqlValue>> rows;
};

class SqliteDb;

class SqlStatement {
 public:
  SqlStatement(SqlStatement&&) noexcept;
  SqlStatement& operator=(SqlStatement&&) noexcept;
  ~SqlStatement();
  // Binds are 1-based like SQLite's.
  SqlStatement& Bind(int i, int64_t v);
  SqlStatement& Bind(int i, int v) { return Bind(i, int64_t(v)); }
  SqlStatement& Bind(int i, double v);
  SqlStatement& Bind(int i, const std::string& v);
  SqlStatement& Bind(int i, const char* v) { return Bind(i, std::string(v)); }
  SqlStatement& Bind(int i, std::optional<double> v);
  SqlStatement& Bind(int i, std::optional<int64_t> v) { return v ? Bind(i, *v) : BindNull(i); }
  SqlStatement& BindNull(int i);
  // Binds the arguments to parameters 1..N in order.
  template <typename... Ts>
  SqlStatement& BindAll(const Ts&... v) {
    int i = 0;
    (Bind(++i, v), ...);
    return *this;
  }
  // Runs to completion; collects rows if any.
  StatusOr<SqlResult> Run();
  Status Exec();  // Run(), discarding rows

 private:
  friend class SqliteDb;
  SqlStatement(sqlite3* db, sqlite3_stmt* st) : db_(db), st_(st) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* st_ = nullptr;
};

class SqliteDb {
 public:
  // Opens (creating if needed) with WAL journaling, a busy timeout and foreign keys on.
  static StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path, bool read_only = false);
  // Opens an existing database for reading only (URI mode=ro). Where the file's directory cannot be
  // written (read-only media: no -shm/-wal can be made), falls back to immutable=1, which SQLite allows
  // only because no process can be writing there either.
  static StatusOr<std::unique_ptr<SqliteDb>> OpenReadOnly(const std::string& path);
  ~SqliteDb();
  Status Exec(const std::string& sql);                 // one or more statements, no rows
  StatusOr<SqlResult> Query(const std::string& sql);   // one statement, collects rows
  StatusOr<SqlStatement> Prepare(const std::string& sql);
  Status Begin() { return Exec("BEGIN IMMEDIATE"); }
  Status Commit() { return Exec("COMMIT"); }
  void Rollback() { (void)Exec("ROLLBACK"); }
  const std::string& path() const { return path_; }
  sqlite3* raw() { return db_; }

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

}  // namespace ql
