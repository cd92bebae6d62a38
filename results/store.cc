// The results store (see store.h): SQLite schema, per-cell transactions, HDF5 array files, merge.
#include "results/store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace ql {
namespace fs = std::filesystem;

namespace {

// The schema. Documented column by column in results/README.md; keep the two in step.
constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, created_at TEXT NOT NULL,
  code_version TEXT NOT NULL, host TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
  id TEXT PRIMARY KEY, path TEXT NOT NULL, arch TEXT NOT NULL, n_params INTEGER NOT NULL,
  config_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY, path TEXT NOT NULL, n_bytes INTEGER NOT NULL, n_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS baselines (
  id TEXT PRIMARY KEY, model_id TEXT NOT NULL REFERENCES models(id),
  dataset_id TEXT NOT NULL REFERENCES datasets(id), protocol TEXT NOT NULL, precision TEXT NOT NULL,
  ppl REAL NOT NULL, ppl_err REAL NOT NULL, nll_mean REAL NOT NULL, n_tokens INTEGER NOT NULL,
  seconds REAL NOT NULL, h5_file TEXT);
CREATE TABLE IF NOT EXISTS cells (
  id TEXT PRIMARY KEY, experiment_id TEXT REFERENCES experiments(id), baseline_id TEXT,
  model_id TEXT, dataset_id TEXT, protocol TEXT NOT NULL,
  weight_scheme TEXT NOT NULL, act_scheme TEXT NOT NULL, kv_scheme TEXT NOT NULL,
  algorithm TEXT NOT NULL, algo_params TEXT NOT NULL, ignore_set TEXT NOT NULL, ignore TEXT NOT NULL,
  config TEXT NOT NULL, seed INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'diverged')), reason TEXT NOT NULL,
  started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
  seconds_quantize REAL NOT NULL, seconds_eval REAL NOT NULL, seconds_total REAL NOT NULL,
  host TEXT NOT NULL, code_version TEXT NOT NULL, shard TEXT NOT NULL, h5_file TEXT,
  attn_scheme TEXT NOT NULL DEFAULT '', numerics_version INTEGER,
  cpu_seconds_quantize REAL, cpu_seconds_eval REAL, cpu_seconds_total REAL, body_from TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS cells_by_experiment ON cells(experiment_id);
CREATE TABLE IF NOT EXISTS tensor_errors (
  cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, tensor TEXT NOT NULL,
  scheme TEXT NOT NULL, mse REAL, sqnr_db REAL, max_abs REAL, bits_per_weight REAL, bytes INTEGER,
  PRIMARY KEY (cell_id, tensor));
CREATE TABLE IF NOT EXISTS layer_errors (
  cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, layer INTEGER NOT NULL,
  rel_mse REAL, sqnr_db REAL, PRIMARY KEY (cell_id, layer));
CREATE TABLE IF NOT EXISTS planned_cells (
  experiment_id TEXT NOT NULL, cell_index INTEGER NOT NULL, cell_id TEXT NOT NULL, label TEXT NOT NULL,
  PRIMARY KEY (experiment_id, cell_index));
CREATE TABLE IF NOT EXISTS task_metrics (
  cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, task TEXT NOT NULL, convention TEXT NOT NULL,
  metric TEXT NOT NULL, value REAL, PRIMARY KEY (cell_id, task, convention, metric));
CREATE TABLE IF NOT EXISTS arrays (
  owner_id TEXT NOT NULL, name TEXT NOT NULL, h5_file TEXT NOT NULL, h5_path TEXT NOT NULL,
  length INTEGER NOT NULL, PRIMARY KEY (owner_id, name));
)SQL";

// The metrics table: cell_id, then one column per metric descriptor, in table order.
std::string MetricsTableSql() {
  std::string sql = "CREATE TABLE IF NOT EXISTS metrics (\n  cell_id TEXT PRIMARY KEY REFERENCES cells(id) ON DELETE CASCADE";
  for (const MetricDef& d : MetricTable())
    sql += fmt::format(",\n  {} {}", d.name, d.type == MetricType::kInteger ? "INTEGER" : "REAL");
  return sql + ");\n";
}

StatusOr<std::vector<std::string>> Columns(SqliteDb& db, const std::string& table, const std::string& schema = "main") {
  QL_ASSIGN_OR_RETURN(SqlResult info, db.Query(fmt::format("PRAGMA {}.table_info({})", schema, table)));
  std::vector<std::string> cols;
  for (const auto& row : info.rows) cols.push_back(SqlValueToString(row[1]));
  return cols;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Brings a version-1 to -4 store (or one written before a metric was added) to the current columns.
// Only additions: existing rows get NULL ('' for attn_scheme).
Status AddMissingColumns(SqliteDb& db) {
  QL_ASSIGN_OR_RETURN(std::vector<std::string> cells, Columns(db, "cells"));
  if (!Contains(cells, "attn_scheme"))
    QL_RETURN_IF_ERROR(db.Exec("ALTER TABLE cells ADD COLUMN attn_scheme TEXT NOT NULL DEFAULT ''"));
  if (!Contains(cells, "numerics_version"))
    QL_RETURN_IF_ERROR(db.Exec("ALTER TABLE cells ADD COLUMN numerics_version INTEGER"));
  for (const char* c : {"cpu_seconds_quantize", "cpu_seconds_eval", "cpu_seconds_total"})
    if (!Contains(cells, c)) QL_RETURN_IF_ERROR(db.Exec(fmt::format("ALTER TABLE cells ADD COLUMN {} REAL", c)));
  if (!Contains(cells, "body_from"))
    QL_RETURN_IF_ERROR(db.Exec("ALTER TABLE cells ADD COLUMN body_from TEXT NOT NULL DEFAULT ''"));
  QL_ASSIGN_OR_RETURN(std::vector<std::string> metrics, Columns(db, "metrics"));
  for (const MetricDef& d : MetricTable())
    if (!Contains(metrics, std::string(d.name)))
      QL_RETURN_IF_ERROR(db.Exec(fmt::format("ALTER TABLE metrics ADD COLUMN {} {}", d.name,
                                             d.type == MetricType::kInteger ? "INTEGER" : "REAL")));
  return Status::Ok();
}

Status IndexArrays(SqliteDb& db, const std::string& owner, const std::string& h5_rel, const ArrayMap& a) {
  QL_RETURN_IF_ERROR(db.Exec(fmt::format("DELETE FROM arrays WHERE owner_id = '{}'", owner)));
  QL_ASSIGN_OR_RETURN(SqlStatement st, db.Prepare("INSERT INTO arrays VALUES (?,?,?,?,?)"));
  for (const auto& [name, v] : a) {
    QL_RETURN_IF_ERROR(st.Bind(1, owner).Bind(2, name).Bind(3, h5_rel).Bind(4, "/" + name)
                           .Bind(5, int64_t(v.size())).Exec());
  }
  return Status::Ok();
}

// A NaN value (e.g. a bootstrap bound of a one-item task) is stored as NULL.
Status InsertTaskMetrics(SqliteDb& db, const std::string& cell_id, const std::vector<TaskMetricRow>& rows) {
  if (rows.empty()) return Status::Ok();
  QL_ASSIGN_OR_RETURN(SqlStatement st, db.Prepare("INSERT OR REPLACE INTO task_metrics VALUES (?,?,?,?,?)"));
  for (const TaskMetricRow& t : rows) {
    const std::optional<double> v = std::isfinite(t.value) ? std::optional<double>(t.value) : std::nullopt;
    QL_RETURN_IF_ERROR(st.Bind(1, cell_id).Bind(2, t.task).Bind(3, t.convention).Bind(4, t.metric).Bind(5, v).Exec());
  }
  return Status::Ok();
}

std::string H5Rel(const std::string& id) { return "arrays/" + id + ".h5"; }

bool SafeId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return id != "." && id != "..";
}

}  // namespace

std::string ResultsDbPath(const std::string& dir) { return (fs::path(dir) / "results.sqlite").string(); }
std::string ResultStore::ArraysPath(const std::string& id) const { return (fs::path(dir_) / H5Rel(id)).string(); }

StatusOr<std::unique_ptr<ResultStore>> ResultStore::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "arrays", ec);
  if (ec) return Status::Errorf("{}: cannot create results directory: {}", dir, ec.message());
  QL_ASSIGN_OR_RETURN(auto lock, ResultsLock::Acquire(dir));
  QL_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(ResultsDbPath(dir)));
  std::unique_ptr<ResultStore> s(new ResultStore(dir, std::move(db)));
  s->lock_ = std::move(lock);
  QL_RETURN_IF_ERROR(s->CreateSchema());
  return s;
}

StatusOr<std::unique_ptr<ResultStore>> ResultStore::OpenReadOnly(const std::string& dir) {
  const std::string p = ResultsDbPath(dir);
  if (!fs::exists(p)) return Status::Errorf("{}: no results database here (run a sweep first, or pass --results DIR)", p);
  QL_ASSIGN_OR_RETURN(auto db, SqliteDb::OpenReadOnly(p));
  return std::unique_ptr<ResultStore>(new ResultStore(dir, std::move(db)));
}

Status ResultStore::CreateSchema() {
  QL_RETURN_IF_ERROR(db_->Exec(std::string(kSchema) + MetricsTableSql()));
  QL_ASSIGN_OR_RETURN(SqlResult v, db_->Query("SELECT value FROM meta WHERE key = 'schema_version'"));
  if (v.rows.empty()) {
    return db_->Exec(fmt::format("INSERT INTO meta VALUES ('schema_version', '{}')", kResultsSchemaVersion));
  }
  const std::string have = SqlValueToString(v.rows[0][0]);
  if (have != "1" && have != "2" && have != "3" && have != "4" && have != std::to_string(kResultsSchemaVersion))
    return Status::Errorf("{}: results schema version {} but this quantlab writes {} (use a new results directory)",
                          db_->path(), have, kResultsSchemaVersion);
  QL_RETURN_IF_ERROR(db_->Begin());
  Status s = AddMissingColumns(*db_);
  if (s.ok()) s = db_->Exec(fmt::format("UPDATE meta SET value = '{}' WHERE key = 'schema_version'", kResultsSchemaVersion));
  if (!s.ok()) {
    db_->Rollback();
    return Status::Errorf("{}: upgrading the results schema from version {} to {}: {}", db_->path(), have,
                          kResultsSchemaVersion, s.message());
  }
  return db_->Commit();
}

Status ResultStore::PutExperiment(const ExperimentRow& e) {
  QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare("INSERT OR REPLACE INTO experiments VALUES (?,?,?,?,?,?)"));
  return st.Bind(1, e.id).Bind(2, e.name).Bind(3, e.config).Bind(4, e.created_at).Bind(5, e.code_version)
      .Bind(6, e.host).Exec();
}

Status ResultStore::PutModel(const ModelRow& m) {
  QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare("INSERT OR IGNORE INTO models VALUES (?,?,?,?,?)"));
  return st.Bind(1, m.id).Bind(2, m.path).Bind(3, m.arch).Bind(4, m.n_params).Bind(5, m.config_json).Exec();
}

Status ResultStore::PutDataset(const DatasetRow& d) {
  QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare("INSERT OR IGNORE INTO datasets VALUES (?,?,?,?)"));
  return st.Bind(1, d.id).Bind(2, d.path).Bind(3, d.n_bytes).Bind(4, d.n_tokens).Exec();
}

Status ResultStore::PutBaseline(const BaselineRow& b, const ArrayMap& arrays) {
  if (!SafeId(b.id)) return Status::Errorf("baseline id '{}' is not a safe file name", b.id);
  const std::string rel = arrays.empty() ? "" : H5Rel(b.id);
  if (!arrays.empty()) QL_RETURN_IF_ERROR(WriteH5Arrays(ArraysPath(b.id), arrays, {{"baseline_id", b.id}}));
  QL_RETURN_IF_ERROR(db_->Begin());
  auto body = [&]() -> Status {
    QL_ASSIGN_OR_RETURN(SqlStatement st,
                        db_->Prepare("INSERT OR REPLACE INTO baselines VALUES (?,?,?,?,?,?,?,?,?,?,?)"));
    QL_RETURN_IF_ERROR(st.Bind(1, b.id).Bind(2, b.model_id).Bind(3, b.dataset_id).Bind(4, b.protocol)
                           .Bind(5, b.precision).Bind(6, b.ppl).Bind(7, b.ppl_err).Bind(8, b.nll_mean)
                           .Bind(9, b.n_tokens).Bind(10, b.seconds).Bind(11, rel).Exec());
    return IndexArrays(*db_, b.id, rel, arrays);
  };
  Status s = body();
  if (!s.ok()) {
    db_->Rollback();
    return s;
  }
  return db_->Commit();
}

std::optional<BaselineRow> ResultStore::FindBaseline(const std::string& id) {
  auto st = db_->Prepare("SELECT model_id, dataset_id, protocol, precision, ppl, ppl_err, nll_mean, n_tokens, "
                         "seconds FROM baselines WHERE id = ?");
  if (!st.ok()) return std::nullopt;
  auto r = st->Bind(1, id).Run();
  if (!r.ok() || r->rows.empty()) return std::nullopt;
  const auto& row = r->rows[0];
  BaselineRow b;
  b.id = id;
  b.model_id = SqlValueToString(row[0]);
  b.dataset_id = SqlValueToString(row[1]);
  b.protocol = SqlValueToString(row[2]);
  b.precision = SqlValueToString(row[3]);
  b.ppl = std::get<double>(row[4]);
  b.ppl_err = std::get<double>(row[5]);
  b.nll_mean = std::get<double>(row[6]);
  b.n_tokens = std::get<int64_t>(row[7]);
  b.seconds = std::get<double>(row[8]);
  return b;
}

StatusOr<bool> ResultStore::HasCell(const std::string& cell_id) {
  QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare("SELECT 1 FROM cells WHERE id = ?"));
  QL_ASSIGN_OR_RETURN(SqlResult r, st.Bind(1, cell_id).Run());
  return !r.rows.empty();
}

StatusOr<std::string> ResultStore::CellStatus(const std::string& cell_id) {
  QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare("SELECT status FROM cells WHERE id = ?"));
  QL_ASSIGN_OR_RETURN(SqlResult r, st.Bind(1, cell_id).Run());
  return r.rows.empty() ? std::string() : SqlValueToString(r.rows[0][0]);
}

Status ResultStore::PutPlannedCells(const std::string& experiment_id, const std::vector<PlannedCell>& cells) {
  QL_RETURN_IF_ERROR(db_->Begin());
  auto body = [&]() -> Status {
    QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare("INSERT OR REPLACE INTO planned_cells VALUES (?,?,?,?)"));
    for (const PlannedCell& c : cells)
      QL_RETURN_IF_ERROR(st.Bind(1, experiment_id).Bind(2, c.index).Bind(3, c.id).Bind(4, c.label).Exec());
    return Status::Ok();
  };
  Status s = body();
  if (!s.ok()) {
    db_->Rollback();
    return s;
  }
  return db_->Commit();
}

Status ResultStore::CommitCell(const CellResult& r) {
  const CellRow& c = r.cell;
  if (!SafeId(c.id)) return Status::Errorf("cell id '{}' is not a safe file name", c.id);
  const std::string rel = r.arrays.empty() ? "" : H5Rel(c.id);
  // Arrays first: a row never points to a file that is not complete.
  if (!r.arrays.empty())
    QL_RETURN_IF_ERROR(WriteH5Arrays(ArraysPath(c.id), r.arrays, {{"cell_id", c.id}, {"config", c.config}}));
  QL_RETURN_IF_ERROR(db_->Begin());
  auto body = [&]() -> Status {
    QL_RETURN_IF_ERROR(db_->Exec(fmt::format("DELETE FROM cells WHERE id = '{}'", c.id)));
    QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare(
        "INSERT INTO cells (id, experiment_id, baseline_id, model_id, dataset_id, protocol, weight_scheme, "
        "act_scheme, kv_scheme, algorithm, algo_params, ignore_set, ignore, config, seed, status, reason, started_at, "
        "finished_at, seconds_quantize, seconds_eval, seconds_total, host, code_version, shard, h5_file, attn_scheme, "
        "numerics_version, cpu_seconds_quantize, cpu_seconds_eval, cpu_seconds_total, body_from) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    std::optional<std::string> experiment;
    if (!c.experiment_id.empty()) experiment = c.experiment_id;
    st.BindAll(c.id, std::string(), c.baseline_id, c.model_id, c.dataset_id, c.protocol, c.weight_scheme,
               c.act_scheme, c.kv_scheme, c.algorithm, c.algo_params.empty() ? std::string("{}") : c.algo_params,
               c.ignore_set, c.ignore.empty() ? std::string("[]") : c.ignore, c.config, c.seed, c.status,
               c.reason, c.started_at, c.finished_at, c.seconds_quantize, c.seconds_eval, c.seconds_total,
               c.host, c.code_version, c.shard, rel, c.attn_scheme, c.numerics_version, c.cpu_seconds_quantize,
               c.cpu_seconds_eval, c.cpu_seconds_total, c.body_from);
    if (!experiment) st.BindNull(2); else st.Bind(2, *experiment);
    if (rel.empty()) st.BindNull(26);  // no arrays: NULL, as results/README.md says
    QL_RETURN_IF_ERROR(st.Exec());
    if (r.metrics) {
      const auto& table = MetricTable();
      QL_CHECK(r.metrics->values.size() == table.size(), "{} metric values for {} descriptors",
               r.metrics->values.size(), table.size());
      std::string cols = "cell_id", marks = "?";
      for (const MetricDef& d : table) cols += fmt::format(", {}", d.name), marks += ",?";
      QL_ASSIGN_OR_RETURN(SqlStatement ms, db_->Prepare("INSERT INTO metrics (" + cols + ") VALUES (" + marks + ")"));
      ms.Bind(1, c.id);
      for (size_t i = 0; i < table.size(); ++i) {
        const std::optional<double>& v = r.metrics->values[i];
        if (v && table[i].type == MetricType::kInteger) ms.Bind(int(i) + 2, int64_t(*v));
        else ms.Bind(int(i) + 2, v);
      }
      QL_RETURN_IF_ERROR(ms.Exec());
    }
    if (!r.tensor_errors.empty()) {
      QL_ASSIGN_OR_RETURN(SqlStatement ts, db_->Prepare("INSERT INTO tensor_errors VALUES (?,?,?,?,?,?,?,?)"));
      for (const auto& t : r.tensor_errors)
        QL_RETURN_IF_ERROR(ts.Bind(1, c.id).Bind(2, t.tensor).Bind(3, t.scheme).Bind(4, t.mse).Bind(5, t.sqnr_db)
                               .Bind(6, t.max_abs).Bind(7, t.bits_per_weight).Bind(8, t.bytes).Exec());
    }
    if (!r.layer_errors.empty()) {
      QL_ASSIGN_OR_RETURN(SqlStatement ls, db_->Prepare("INSERT INTO layer_errors VALUES (?,?,?,?)"));
      for (const auto& l : r.layer_errors)
        QL_RETURN_IF_ERROR(ls.Bind(1, c.id).Bind(2, l.layer).Bind(3, l.rel_mse).Bind(4, l.sqnr_db).Exec());
    }
    QL_RETURN_IF_ERROR(InsertTaskMetrics(*db_, c.id, r.task_metrics));
    return IndexArrays(*db_, c.id, rel, r.arrays);
  };
  Status s = body();
  if (!s.ok()) {
    db_->Rollback();
    return s;
  }
  return db_->Commit();
}

namespace {

// Rows of src.table not yet in main.table, by the columns both have (an older source lacks some).
Status CopyRows(SqliteDb& db, const std::string& table) {
  QL_ASSIGN_OR_RETURN(std::vector<std::string> dst_cols, Columns(db, table));
  QL_ASSIGN_OR_RETURN(std::vector<std::string> src_cols, Columns(db, table, "src"));
  std::string cols;
  for (const std::string& c : src_cols)
    if (Contains(dst_cols, c)) cols += (cols.empty() ? "\"" : ", \"") + c + "\"";
  if (cols.empty()) return Status::Ok();  // the source has no such table
  return db.Exec(fmt::format("INSERT OR IGNORE INTO main.{0} ({1}) SELECT {1} FROM src.{0}", table, cols));
}

// Refusals before anything is copied: one identity with two results, or two baselines of the same
// (model, text, protocol, precision) that disagree (e.g. runs whose numerics differ).
Status CheckMergeConflicts(SqliteDb& db, const std::string& src, const std::string& dest) {
  QL_ASSIGN_OR_RETURN(SqlResult conflicts, db.Query(
      "SELECT c.id FROM src.cells c JOIN main.cells m ON m.id = c.id "
      "LEFT JOIN src.metrics sm ON sm.cell_id = c.id LEFT JOIN main.metrics mm ON mm.cell_id = c.id "
      "WHERE c.status IS NOT m.status OR sm.ppl IS NOT mm.ppl OR sm.kld_mean IS NOT mm.kld_mean LIMIT 1"));
  if (!conflicts.rows.empty())
    return Status::Errorf("{}: cell {} is recorded with different results in {} and {}", src,
                          SqlValueToString(conflicts.rows[0][0]), src, dest);
  QL_ASSIGN_OR_RETURN(SqlResult bases, db.Query(
      "SELECT s.id, m.id, s.protocol, s.precision, s.ppl, m.ppl FROM src.baselines s JOIN main.baselines m "
      "ON s.model_id = m.model_id AND s.dataset_id = m.dataset_id AND s.protocol = m.protocol "
      "AND s.precision = m.precision WHERE s.ppl != m.ppl OR s.n_tokens != m.n_tokens LIMIT 1"));
  if (!bases.rows.empty()) {
    const auto& b = bases.rows[0];
    return Status::Errorf("{}: baseline {} ({} {}) has PPL {} but {} has {} for the same model, text, protocol and "
                          "precision in {}; the runs computed different numbers (thread count, code or machine): "
                          "re-run one of them instead of merging",
                          src, SqlValueToString(b[0]), SqlValueToString(b[2]), SqlValueToString(b[3]),
                          SqlValueToString(b[4]), SqlValueToString(b[1]), SqlValueToString(b[5]), dest);
  }
  return Status::Ok();
}

Status MergeOne(SqliteDb& db, const std::string& src, const std::string& dest) {
  QL_RETURN_IF_ERROR(CheckMergeConflicts(db, src, dest));
  QL_RETURN_IF_ERROR(db.Begin());
  Status s;
  for (const char* t : {"experiments", "models", "datasets", "baselines", "cells", "metrics", "tensor_errors",
                        "layer_errors", "task_metrics", "arrays", "planned_cells"}) {
    s = CopyRows(db, t);
    if (!s.ok()) break;
  }
  if (!s.ok()) {
    db.Rollback();
    return s;
  }
  return db.Commit();
}

}  // namespace

Status ResultStore::Merge(const std::string& dest, const std::vector<std::string>& sources,
                          std::vector<std::string>* warnings) {
  QL_ASSIGN_OR_RETURN(auto out, Open(dest));
  for (const std::string& src : sources) {
    const std::string p = ResultsDbPath(src);
    if (!fs::exists(p)) return Status::Errorf("{}: no results database to merge", p);
    if (fs::equivalent(fs::path(dest), fs::path(src)))
      return Status::Errorf("{}: cannot merge a results directory into itself", src);
    QL_RETURN_IF_ERROR(out->db_->Exec(fmt::format("ATTACH DATABASE '{}' AS src", p)));
    Status s = MergeOne(*out->db_, src, dest);
    (void)out->db_->Exec("DETACH DATABASE src");
    QL_RETURN_IF_ERROR(s);
    // Array files: copy those not already present.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(src) / "arrays", ec)) {
      if (e.path().extension() != ".h5") continue;
      fs::path to = fs::path(dest) / "arrays" / e.path().filename();
      if (!fs::exists(to)) fs::copy_file(e.path(), to, ec);
      if (ec) return Status::Errorf("{}: cannot copy to {}: {}", e.path().string(), to.string(), ec.message());
    }
  }
  if (!warnings) return Status::Ok();
  QL_ASSIGN_OR_RETURN(std::vector<ExperimentProgress> progress, out->Progress(""));
  for (const ExperimentProgress& e : progress) {
    if (e.missing.empty()) continue;
    std::string list;
    for (size_t i = 0; i < e.missing.size() && i < 20; ++i) list += (i ? ", " : "") + e.missing[i].label;
    if (e.missing.size() > 20) list += fmt::format(", … ({} more)", e.missing.size() - 20);
    warnings->push_back(fmt::format("experiment {}: {} of {} cells missing after the merge: {}", e.experiment_id,
                                    e.missing.size(), e.planned, list));
  }
  return Status::Ok();
}

StatusOr<std::vector<ResultStore::ExperimentProgress>> ResultStore::Progress(const std::string& experiment_id) {
  const std::string where = experiment_id.empty() ? "" : " WHERE p.experiment_id = ?";
  QL_ASSIGN_OR_RETURN(SqlStatement st, db_->Prepare(
      "SELECT p.experiment_id, p.cell_index, p.cell_id, p.label, c.status FROM planned_cells p "
      "LEFT JOIN cells c ON c.id = p.cell_id" + where + " ORDER BY p.experiment_id, p.cell_index"));
  if (!experiment_id.empty()) st.Bind(1, experiment_id);
  QL_ASSIGN_OR_RETURN(SqlResult r, st.Run());
  std::vector<ExperimentProgress> out;
  for (const auto& row : r.rows) {
    const std::string exp = SqlValueToString(row[0]);
    if (out.empty() || out.back().experiment_id != exp) out.push_back({exp});
    ExperimentProgress& e = out.back();
    ++e.planned;
    const std::string status = SqlValueToString(row[4]);
    PlannedCell c{int(std::get<int64_t>(row[1])), SqlValueToString(row[2]), SqlValueToString(row[3])};
    if (status == "ok") ++e.ok;
    else if (status == "failed") e.failed.push_back(c);
    else if (status == "diverged") e.diverged.push_back(c);
    else e.missing.push_back(c);
  }
  return out;
}

std::string FormatTable(const SqlResult& r) {
  std::vector<size_t> w(r.columns.size());
  for (size_t c = 0; c < r.columns.size(); ++c) w[c] = r.columns[c].size();
  for (const auto& row : r.rows)
    for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], SqlValueToString(row[c]).size());
  std::string out;
  auto line = [&](auto get) {
    for (size_t c = 0; c < w.size(); ++c) {
      std::string s = get(c);
      out += s + std::string(w[c] - s.size() + (c + 1 < w.size() ? 2 : 0), ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  };
  line([&](size_t c) { return r.columns[c]; });
  line([&](size_t c) { return std::string(w[c], '-'); });
  for (const auto& row : r.rows) line([&](size_t c) { return SqlValueToString(row[c]); });
  return out;
}

std::string FormatCsv(const SqlResult& r) {
  auto q = [](const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string o = "\"";
    for (char ch : s) o += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return o + "\"";
  };
  std::string out;
  for (size_t c = 0; c < r.columns.size(); ++c) out += (c ? "," : "") + q(r.columns[c]);
  out += "\n";
  for (const auto& row : r.rows) {
    for (size_t c = 0; c < row.size(); ++c) out += (c ? "," : "") + q(SqlValueToString(row[c]));
    out += "\n";
  }
  return out;
}

std::string FormatJson(const SqlResult& r) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json o = nlohmann::json::object();
    for (size_t c = 0; c < row.size(); ++c) {
      const SqlValue& v = row[c];
      if (std::holds_alternative<std::monostate>(v)) o[r.columns[c]] = nullptr;
      else if (auto* i = std::get_if<int64_t>(&v)) o[r.columns[c]] = *i;
      else if (auto* d = std::get_if<double>(&v)) o[r.columns[c]] = *d;
      else o[r.columns[c]] = std::get<std::string>(v);
    }
    a.push_back(std::move(o));
  }
  return a.dump(1) + "\n";
}

}  // namespace ql
