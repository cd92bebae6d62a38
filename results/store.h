// The results store of a sweep: one SQLite database (schema in results/README.md) plus one HDF5 file
// of arrays per run, in one results directory:
//   DIR/results.sqlite            experiments, models, datasets, baselines, cells, metrics, errors
//   DIR/arrays/<run id>.h5        per-token NLL/KLD, per-layer error vectors, weight-error histograms
// A cell is committed in one transaction after its HDF5 file is in place, so a killed process loses
// at most the cell it was running. Not the place for metric computation (harness/eval) or for the
// sweep logic (harness/sweep).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/eval/metric_table.h"
#include "kernels/status.h"
#include "results/h5_arrays.h"
#include "results/lock.h"
#include "results/sqlite_db.h"

namespace ql {

// 2: cells.attn_scheme. 3: cells.numerics_version, planned_cells, metric columns from the metric table
// (harness/eval/metric_table.h). 4: task_metrics (task accuracy rows, harness/sweep/cell_tasks.h).
// Open upgrades a version-1, -2 or -3 store in place (columns and tables added, NULL or '' for existing
// rows); a metric added to the table later is added as a column the same way, without a version change.
inline constexpr int kResultsSchemaVersion = 5;

struct ExperimentRow {
  std::string id;           // stable name/hash of the experiment file's canonical content
  std::string name;
  std::string config;       // the experiment file as given (YAML text)
  std::string created_at;   // ISO-8601 UTC
  std::string code_version;
  std::string host;
};

struct ModelRow {
  std::string id;           // content hash of the checkpoint file(s)
  std::string path;
  std::string arch;
  int64_t n_params = 0;
  std::string config_json;
};

struct DatasetRow {
  std::string id;           // content hash of the text
  std::string path;
  int64_t n_bytes = 0;
  int64_t n_tokens = 0;
};

struct BaselineRow {
  std::string id;           // hash(model, dataset, protocol, precision, code version)
  std::string model_id, dataset_id;
  std::string protocol;     // canonical protocol string, e.g. "llamacpp:ctx512"
  std::string precision;    // "bf16" or "fp32"
  double ppl = 0, ppl_err = 0, nll_mean = 0;
  int64_t n_tokens = 0;
  double seconds = 0;
};

// One point of a sweep grid and how it ended.
struct CellRow {
  std::string id;            // identity hash of canonical config + model bytes + text + numerics version
  std::string experiment_id;
  std::string baseline_id;
  std::string model_id, dataset_id;
  std::string protocol;
  std::string weight_scheme;  // canonical scheme strings (kernels/scheme.h); "" = not quantized
  std::string act_scheme;
  std::string kv_scheme;
  std::string algorithm;      // registry name, e.g. "rtn", "gptq"
  std::string algo_params;    // JSON object
  std::string ignore_set;     // name of the ignore set
  std::string ignore;         // JSON array of the entries
  std::string config;         // canonical JSON of the whole cell
  int64_t seed = 0;
  std::string status;         // "ok", "failed", "diverged"
  std::string reason;         // why it failed/diverged; "" when ok
  std::string started_at, finished_at;
  double seconds_quantize = 0, seconds_eval = 0, seconds_total = 0;  // wall
  // CPU seconds of the process (user + system, every thread: harness/util/cpu_time.h) over the same
  // spans; unset (NULL) when not measured, as for cells of a store before schema version 5.
  std::optional<double> cpu_seconds_quantize, cpu_seconds_eval, cpu_seconds_total;
  std::string host, code_version;
  std::string shard;          // "i/N" or ""
  std::string attn_scheme;    // attention inputs: "" or "q=<scheme|none> p=<scheme|none>"
  int numerics_version = 0;   // harness/eval/numerics.h kNumericsVersion of the code that computed it
  // Body reuse (harness/eval/body_reuse.h): the id of the cell whose streams entering the final norm
  // this cell's evaluation started from (it ran only the final norm, the LM head and the scoring);
  // "" = it ran every block itself.
  std::string body_from;
};

// Quality and cost of one cell against its baseline: one value per metric descriptor
// (harness/eval/metric_table.h), NULL when not measured.
using MetricsRow = MetricValues;

struct TensorErrorRow {
  std::string tensor;         // e.g. "model.layers.3.mlp.down_proj.weight"
  std::string scheme;         // "" = left in baseline precision (ignored)
  double mse = 0, sqnr_db = 0, max_abs = 0;
  double bits_per_weight = 0;
  int64_t bytes = 0;
};

struct LayerErrorRow {
  int layer = 0;
  double rel_mse = 0;         // ||h_q - h_base||^2 / ||h_base||^2 over the evaluation tokens
  double sqnr_db = 0;
};

// One task-accuracy number of a cell against the baseline on the same items: (task, convention,
// metric, value), e.g. ("piqa", "lmeval", "acc_norm_delta", -0.011). The metric names are
// harness/sweep/cell_tasks.h's TaskRowStats.
struct TaskMetricRow {
  std::string task, convention, metric;
  double value = 0;
};

struct CellResult {
  CellRow cell;
  std::optional<MetricsRow> metrics;   // absent when the cell failed
  std::vector<TensorErrorRow> tensor_errors;
  std::vector<LayerErrorRow> layer_errors;
  std::vector<TaskMetricRow> task_metrics;  // empty without `tasks:`
  ArrayMap arrays;                     // written to arrays/<cell id>.h5
};

class ResultStore {
 public:
  // Opens or creates DIR (and DIR/arrays), creates the schema if new, checks its version (upgrading
  // an older one in place where that is a plain column addition). Takes DIR's writer lock
  // (results/lock.h): fails, naming the holder, while another process writes DIR.
  static StatusOr<std::unique_ptr<ResultStore>> Open(const std::string& dir);
  // Read-only access to an existing store (query/compare/report): no lock, SQLite mode=ro, and
  // immutable=1 when the directory cannot be written (read-only media).
  static StatusOr<std::unique_ptr<ResultStore>> OpenReadOnly(const std::string& dir);

  Status PutExperiment(const ExperimentRow& e);  // insert or replace
  Status PutModel(const ModelRow& m);            // insert or ignore
  Status PutDataset(const DatasetRow& d);        // insert or ignore
  Status PutBaseline(const BaselineRow& b, const ArrayMap& arrays);
  std::optional<BaselineRow> FindBaseline(const std::string& id);

  // True when a cell with this id is recorded with status "ok", "failed" or "diverged".
  StatusOr<bool> HasCell(const std::string& cell_id);
  // The status of a recorded cell ("ok", "failed", "diverged"), or "" when absent.
  StatusOr<std::string> CellStatus(const std::string& cell_id);
  // Every cell of an experiment's grid (all shards), so `status` and `merge` know what is missing.
  struct PlannedCell {
    int index = 0;
    std::string id, label;
  };
  Status PutPlannedCells(const std::string& experiment_id, const std::vector<PlannedCell>& cells);
  // Per experiment with planned cells (all when experiment_id is ""): how many are done, which
  // failed or diverged, which are missing.
  struct ExperimentProgress {
    std::string experiment_id;
    int planned = 0, ok = 0;
    std::vector<PlannedCell> failed, diverged, missing;
  };
  StatusOr<std::vector<ExperimentProgress>> Progress(const std::string& experiment_id);
  // Writes arrays/<id>.h5 (atomically) then, in one transaction, the cell, its metrics, tensor and
  // layer errors and the array index. Re-committing the same id replaces the earlier record.
  Status CommitCell(const CellResult& r);

  StatusOr<SqlResult> Query(const std::string& sql) { return db_->Query(sql); }
  SqliteDb& db() { return *db_; }
  const std::string& dir() const { return dir_; }
  std::string ArraysPath(const std::string& run_id) const;

  // Copies every row and array file of the stores in `sources` into `dest` (created if needed),
  // column by column by name (older stores merge in). Rows are keyed by content ids, so merging the
  // same shard twice adds nothing. Refused: two different results under one cell id, and two
  // baselines of the same (model, text, protocol, precision) with different numbers. `warnings`
  // (optional) receives one line per experiment whose planned grid is incomplete after the merge,
  // naming the missing cells.
  static Status Merge(const std::string& dest, const std::vector<std::string>& sources,
                      std::vector<std::string>* warnings = nullptr);

 private:
  ResultStore(std::string dir, std::unique_ptr<SqliteDb> db) : dir_(std::move(dir)), db_(std::move(db)) {}
  Status CreateSchema();
  std::shared_ptr<ResultsLock> lock_;  // DIR/.lock, held by writers (Open); released after db_ closes
  std::string dir_;
  std::unique_ptr<SqliteDb> db_;
};

// Results directory layout helpers.
std::string ResultsDbPath(const std::string& dir);  // DIR/results.sqlite

// Formats a query result as an aligned text table, CSV (RFC 4180 quoting) or a JSON array of objects.
std::string FormatTable(const SqlResult& r);
std::string FormatCsv(const SqlResult& r);
std::string FormatJson(const SqlResult& r);

}  // namespace ql
