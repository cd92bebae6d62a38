// SQLite wrapper implementation (see sqlite_db.h).
#include "results/sqlite_db.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <filesystem>

namespace ql {

std::string SqlValueToString(const SqlValue& v) {
  if (std::holds_alternative<std::monostate>(v)) return "";
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return fmt::format("{:.10g}", *d);
  return std::get<std::string>(v);
}

SqlStatement::SqlStatement(SqlStatement&& o) noexcept : db_(o.db_), st_(o.st_) { o.st_ = nullptr; }
SqlStatement& SqlStatement::operator=(SqlStatement&& o) noexcept {
  if (this != &o) {
    if (st_) sqlite3_finalize(st_);
    db_ = o.db_;
    st_ = o.st_;
    o.st_ = nullptr;
  }
  return *this;
}
SqlStatement::~SqlStatement() {
  if (st_) sqlite3_finalize(st_);
}

SqlStatement& SqlStatement::Bind(int i, int64_t v) {
  sqlite3_bind_int64(st_, i, v);
  return *this;
}
SqlStatement& SqlStatement::Bind(int i, double v) {
  // NaN is stored as NULL: SQLite has no NaN and would silently store NULL anyway.
  if (std::isnan(v)) return BindNull(i);
  sqlite3_bind_double(st_, i, v);
  return *this;
}
SqlStatement& SqlStatement::Bind(int i, const std::string& v) {
  sqlite3_bind_text(st_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  return *this;
}
SqlStatement& SqlStatement::Bind(int i, std::optional<double> v) {
  return v ? Bind(i, *v) : BindNull(i);
}
SqlStatement& SqlStatement::BindNull(int i) {
  sqlite3_bind_null(st_, i);
  return *this;
}

StatusOr<SqlResult> SqlStatement::Run() {
  SqlResult r;
  const int nc = sqlite3_column_count(st_);
  for (int c = 0; c < nc; ++c) r.columns.push_back(sqlite3_column_name(st_, c));
  for (;;) {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      std::string msg = sqlite3_errmsg(db_);
      sqlite3_reset(st_);
      return Status::Errorf("sqlite: {} (in: {})", msg, sqlite3_sql(st_));
    }
    std::vector<SqlValue> row(nc);
    for (int c = 0; c < nc; ++c) {
      switch (sqlite3_column_type(st_, c)) {
        case SQLITE_INTEGER: row[c] = int64_t(sqlite3_column_int64(st_, c)); break;
        case SQLITE_FLOAT: row[c] = sqlite3_column_double(st_, c); break;
        case SQLITE_NULL: break;
        default: {
          const unsigned char* t = sqlite3_column_text(st_, c);
          row[c] = std::string(t ? reinterpret_cast<const char*>(t) : "", sqlite3_column_bytes(st_, c));
        }
      }
    }
    r.rows.push_back(std::move(row));
  }
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
  return r;
}

Status SqlStatement::Exec() {
  auto r = Run();
  return r.ok() ? Status::Ok() : r.status();
}

StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, bool read_only) {
  sqlite3* db = nullptr;
  const int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    if (db) sqlite3_close(db);
    return Status::Errorf("{}: cannot open SQLite database: {}{}", path, msg,
                          read_only ? " (does the file exist? pass --db PATH)" : "");
  }
  sqlite3_busy_timeout(db, 30000);
  std::unique_ptr<SqliteDb> d(new SqliteDb(db, path));
  if (!read_only) {
    // WAL: readers never block the sweep's writer; synchronous=NORMAL is durable across process
    // kills (only an OS crash can lose the last transactions), which is the failure we design for.
    QL_RETURN_IF_ERROR(d->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"));
  }
  QL_RETURN_IF_ERROR(d->Exec("PRAGMA foreign_keys=ON;"));
  return d;
}

namespace {

// "file:" URI of a path (RFC 3986 percent-encoding of everything but unreserved characters and '/').
std::string FileUri(const std::string& path, const char* query) {
  std::string u = "file:";
  for (unsigned char c : std::filesystem::absolute(path).string()) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      u += char(c);
    } else {
      u += fmt::format("%{:02X}", c);
    }
  }
  return u + "?" + query;
}

}  // namespace

StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::OpenReadOnly(const std::string& path) {
  auto open_uri = [&](const char* query) -> StatusOr<std::unique_ptr<SqliteDb>> {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(FileUri(path, query).c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
      if (db) sqlite3_close(db);
      return Status::Errorf("{}: cannot open SQLite database read-only: {}", path, msg);
    }
    sqlite3_busy_timeout(db, 30000);
    std::unique_ptr<SqliteDb> d(new SqliteDb(db, path));
    QL_RETURN_IF_ERROR(d->Exec("SELECT count(*) FROM sqlite_master;"));  // opening is lazy: read once now
    return d;
  };
  auto d = open_uri("mode=ro");
  if (d.ok()) return d;
  const std::filesystem::path dir = std::filesystem::absolute(path).parent_path();
  if (access(dir.c_str(), W_OK) == 0) return d.status();  // writable: a real error, not read-only media
  auto imm = open_uri("mode=ro&immutable=1");
  if (imm.ok()) return imm;
  return d.status();
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return Status::Errorf("{}: sqlite: {}", path_, msg);
  }
  return Status::Ok();
}

StatusOr<SqlStatement> SqliteDb::Prepare(const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), int(sql.size()), &st, &tail);
  if (rc != SQLITE_OK) return Status::Errorf("{}: sqlite: {} (in: {})", path_, sqlite3_errmsg(db_), sql);
  if (st == nullptr) return Status::Errorf("{}: empty SQL statement", path_);
  if (tail && std::string_view(tail).find_first_not_of(" \t\r\n;") != std::string_view::npos) {
    sqlite3_finalize(st);
    return Status::Errorf("{}: only one SQL statement at a time (extra text: '{}')", path_, tail);
  }
  return SqlStatement(db_, st);
}

StatusOr<SqlResult> SqliteDb::Query(const std::string& sql) {
  QL_ASSIGN_OR_RETURN(SqlStatement st, Prepare(sql));
  return st.Run();
}

}  // namespace ql
