// The comparison table (see compare.h). Every column is one line of kColumns: its key, headers,
// importance when the terminal is narrow, and how it is read from the cells+metrics row by name.
#include "results/compare.h"

#include "results/row_view.h"

#include <cmath>
#include <algorithm>
#include <functional>
#include <map>

#include <fmt/format.h>

namespace ql {
namespace {

std::string Fixed(double v, const char* spec) {
  return std::isfinite(v) ? fmt::format(fmt::runtime(spec), v) : std::string();
}

struct ColumnDef {
  TableColumn col;
  bool by_default;  // in the default set (optional ones only when some row has a value)
  bool optional;    // left out of the default set when every row is empty
  std::function<std::string(const RowView&)> cell;
};

const std::vector<ColumnDef>& Columns() {
  static const std::vector<ColumnDef> kColumns = {
      {{"experiment", "Experiment", "", false, 3, 10}, true, true, [](const RowView& r) { return r.Text("experiment_name"); }},
      {{"weights", "Weights", "", false, 0, 20}, true, false, [](const RowView& r) { return r.Text("weight_scheme"); }},
      {{"acts", "Activations", "", false, 0, 16}, true, true, [](const RowView& r) { return r.Text("act_scheme"); }},
      {{"kv", "KV cache", "", false, 0, 16}, true, true, [](const RowView& r) { return r.Text("kv_scheme"); }},
      {{"attn", "Attention", "", false, 0, 20}, true, true, [](const RowView& r) { return r.Text("attn_scheme"); }},
      {{"algo", "Algorithm", "", false, 4, 8}, true, false, [](const RowView& r) { return r.Text("algorithm"); }},
      {{"ignore", "Ignored", "", false, 5, 10}, true, false, [](const RowView& r) { return r.Text("ignore_set"); }},
      {{"bpw", "Bits/weight", "", true, 2, 0}, true, false,
       [](const RowView& r) { return Fixed(r.Num("bits_per_weight"), "{:.3f}"); }},
      {{"ppl", "PPL", "", true, 7, 0}, true, false, [](const RowView& r) { return Fixed(r.Num("ppl"), "{:.4f}"); }},
      {{"dppl", "ΔPPL", "$\\Delta$PPL", true, 1, 0}, true, false,
       [](const RowView& r) { return Fixed(r.Num("dppl"), "{:+.4f}"); }},
      {{"dppl_ci", "ΔPPL 95% CI", "$\\Delta$PPL 95\\% CI", true, 8, 0}, true, false,
       [](const RowView& r) {
         const double lo = r.Num("dppl_lo"), hi = r.Num("dppl_hi");
         return std::isfinite(lo) && std::isfinite(hi) ? fmt::format("[{:+.4f}, {:+.4f}]", lo, hi) : std::string();
       }},
      {{"kld", "KLD", "KLD", true, 3, 0}, true, false, [](const RowView& r) { return Fixed(r.Num("kld_mean"), "{:.5f}"); }},
      {{"kld_p99", "KLD p99", "KLD p99", true, 9, 0}, true, false,
       [](const RowView& r) { return Fixed(r.Num("kld_p99"), "{:.5f}"); }},
      {{"top1", "Top-1", "Top-1", true, 6, 0}, true, false,
       [](const RowView& r) { return Fixed(100 * r.Num("top1"), "{:.2f}%"); }},
      {{"cpu_seconds", "CPU s", "CPU s", true, 9, 0}, true, true,  // NULL before schema 5: column left out
       [](const RowView& r) { return Fixed(r.Num("cpu_seconds_total"), "{:.1f}"); }},
      {{"status", "Status", "", false, 5, 0}, true, false, [](const RowView& r) { return r.Text("status"); }},
      {{"reason", "Reason", "", false, 10, 12}, true, true, [](const RowView& r) { return r.Text("reason"); }},
      {{"kld_median", "KLD median", "", true, 9, 0}, false, false,
       [](const RowView& r) { return Fixed(r.Num("kld_median"), "{:.5f}"); }},
      {{"kld_max", "KLD max", "", true, 9, 0}, false, false, [](const RowView& r) { return Fixed(r.Num("kld_max"), "{:.4f}"); }},
      {{"dp_mean", "Δp mean", "$\\Delta p$ mean", true, 9, 0}, false, false,
       [](const RowView& r) { return Fixed(r.Num("dp_mean"), "{:+.5f}"); }},
      {{"model_mb", "Model MB", "Model MB", true, 9, 0}, false, false,
       [](const RowView& r) { return Fixed(r.Num("model_bytes") / 1e6, "{:.2f}"); }},
      {{"tokens", "Tokens", "", true, 9, 0}, false, false, [](const RowView& r) { return r.Text("n_tokens"); }},
      {{"seconds", "Seconds", "", true, 9, 0}, false, false,
       [](const RowView& r) { return Fixed(r.Num("seconds_total"), "{:.1f}"); }},
      {{"code", "Code version", "", false, 9, 12}, false, false, [](const RowView& r) { return r.Text("code_version"); }},
  };
  return kColumns;
}

std::string OrderBy(const std::string& sort) {
  const std::string k = sort == "kld" ? "m.kld_mean" : sort == "bits" ? "m.bits_per_weight" : "m.dppl";
  return "(c.status = 'ok') DESC, " + k + " IS NULL, " + k + ", c.weight_scheme, c.id";
}

std::string Quote(const std::string& s) {
  std::string o = "'";
  for (char ch : s) o += ch == '\'' ? std::string("''") : std::string(1, ch);
  return o + "'";
}

// "piqa.acc_norm Δ" for lmeval metrics and for the llamacpp-only acc_per_token, else the convention is
// named too ("lambada.llamacpp.acc Δ").
std::string TaskColumnKey(const std::string& task, const std::string& convention, const std::string& metric) {
  const bool plain = convention == "lmeval" || metric == "acc_per_token";
  return task + "." + (plain ? "" : convention + ".") + metric + " Δ";
}

// One column of the table with its text per row.
struct FilledColumn {
  TableColumn col;
  std::vector<std::string> cells;  // [rows]
};

// One column per (task, convention, accuracy metric) that some listed cell has in task_metrics: the
// accuracy change in points and its exact McNemar p ("-1.7 (p=0.45)"). Nothing when the store has no
// task rows (or, being older, no task_metrics table).
StatusOr<std::vector<FilledColumn>> TaskColumns(ResultStore& store, const SqlResult& cells) {
  std::vector<FilledColumn> out;
  const auto idx = ColumnIndex(cells);
  const auto id_col = idx.find("id");
  if (id_col == idx.end() || cells.rows.empty()) return out;
  auto q = store.Query(
      "SELECT cell_id, task, convention, substr(metric, 1, length(metric) - 6) AS m, value, "
      "(SELECT p.value FROM task_metrics p WHERE p.cell_id = d.cell_id AND p.task = d.task AND "
      "p.convention = d.convention AND p.metric = substr(d.metric, 1, length(d.metric) - 6) || '_mcnemar_p') "
      "FROM task_metrics d WHERE substr(metric, -6) = '_delta' ORDER BY task, convention, m");
  if (!q.ok()) return out;  // no task_metrics table: a store from before tasks
  std::vector<std::string> keys;
  std::map<std::string, std::map<std::string, std::string>> cell_text;  // key -> cell id -> text
  for (const auto& row : q->rows) {
    const std::string key = TaskColumnKey(SqlValueToString(row[1]), SqlValueToString(row[2]), SqlValueToString(row[3]));
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    const double d = std::holds_alternative<double>(row[4]) ? std::get<double>(row[4]) : NAN;
    const double p = std::holds_alternative<double>(row[5]) ? std::get<double>(row[5]) : NAN;
    cell_text[key][SqlValueToString(row[0])] = std::isfinite(d) ? fmt::format("{:+.1f} (p={:.2g})", 100 * d, p) : "";
  }
  for (const std::string& key : keys) {
    bool any = false;
    FilledColumn fc{{key, key, "", true, 6, 0}, {}};
    for (const auto& row : cells.rows) {
      const auto& m = cell_text[key];
      const auto it = m.find(SqlValueToString(row[id_col->second]));
      fc.cells.push_back(it == m.end() ? "" : it->second);
      any = any || !fc.cells.back().empty();
    }
    if (any) out.push_back(std::move(fc));
  }
  return out;
}

// The task column `--columns` names by "piqa.acc_norm" (the header without " Δ"); the lmeval
// convention may also be spelled out ("piqa.lmeval.acc_norm"). nullptr when none matches.
const FilledColumn* FindTaskColumn(const std::vector<FilledColumn>& task_cols, const std::string& name) {
  for (const FilledColumn& c : task_cols) {
    const std::string plain = c.col.key.substr(0, c.col.key.size() - std::string(" Δ").size());
    const size_t dot = plain.find('.');
    const std::string with_lmeval = plain.substr(0, dot) + ".lmeval" + plain.substr(dot);
    if (name == plain || name == c.col.key || name == with_lmeval) return &c;
  }
  return nullptr;
}

std::string UnknownColumn(const std::string& key, const std::vector<FilledColumn>& task_cols) {
  std::string all;
  for (const auto& k : CompareColumnKeys()) all += (all.empty() ? "" : ", ") + k;
  for (const FilledColumn& c : task_cols) all += ", " + c.col.key.substr(0, c.col.key.size() - std::string(" Δ").size());
  return fmt::format("compare: unknown column '{}' (one of: {})", key, all);
}

}  // namespace

const std::vector<std::string>& CompareColumnKeys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const auto& c : Columns()) k.push_back(c.col.key);
    return k;
  }();
  return keys;
}

StatusOr<TextTable> CompareTable(ResultStore& store, const CompareOptions& opt) {
  if (opt.sort != "dppl" && opt.sort != "kld" && opt.sort != "bits")
    return Status::Errorf("compare: unknown sort '{}' (use dppl, kld or bits)", opt.sort);
  const std::string where = opt.experiment_id.empty() ? "" : " WHERE c.experiment_id = " + Quote(opt.experiment_id);
  QL_ASSIGN_OR_RETURN(SqlResult r, store.Query(
      "SELECT c.*, m.*, e.name AS experiment_name FROM cells c LEFT JOIN metrics m ON m.cell_id = c.id "
      "LEFT JOIN experiments e ON e.id = c.experiment_id" + where + " ORDER BY " + OrderBy(opt.sort)));
  const auto idx = ColumnIndex(r);
  std::vector<RowView> rows;
  for (size_t i = 0; i < r.rows.size(); ++i) rows.emplace_back(r, i, idx);
  QL_ASSIGN_OR_RETURN(SqlResult ne, store.Query("SELECT count(DISTINCT experiment_id) FROM cells c" + where));
  const bool many_experiments = !ne.rows.empty() && SqlValueToString(ne.rows[0][0]) != "1" &&
                                SqlValueToString(ne.rows[0][0]) != "0";

  QL_ASSIGN_OR_RETURN(std::vector<FilledColumn> task_cols, TaskColumns(store, r));
  auto fill = [&](const ColumnDef& c) {
    FilledColumn fc{c.col, {}};
    for (const auto& row : rows) fc.cells.push_back(c.cell(row));
    return fc;
  };
  std::vector<FilledColumn> cols;
  for (const auto& key : opt.columns) {
    const ColumnDef* d = nullptr;
    for (const auto& c : Columns()) if (c.col.key == key) d = &c;
    const FilledColumn* task = d ? nullptr : FindTaskColumn(task_cols, key);
    if (!d && !task) return Status::Error(UnknownColumn(key, task_cols));
    cols.push_back(d ? fill(*d) : *task);
  }
  if (opt.columns.empty()) {
    for (const auto& c : Columns()) {
      if (!c.by_default || (c.col.key == "experiment" && !many_experiments)) continue;
      FilledColumn fc = fill(c);
      const bool any = !c.optional || std::any_of(fc.cells.begin(), fc.cells.end(), [](auto& x) { return !x.empty(); });
      if (any) cols.push_back(std::move(fc));
    }
    for (FilledColumn& c : task_cols) cols.push_back(std::move(c));
  }
  TextTable t;
  t.rows.resize(rows.size());
  for (FilledColumn& c : cols) {
    t.columns.push_back(c.col);
    for (size_t i = 0; i < rows.size(); ++i) t.rows[i].push_back(std::move(c.cells[i]));
  }
  bool all_ok = true;  // then status says nothing
  for (const auto& row : rows) all_ok = all_ok && row.Text("status") == "ok";
  for (size_t i = 0; i < t.columns.size(); ++i) {  // on a narrow terminal what tells rows apart stays longest
    auto& c = t.columns[i];
    bool constant = t.rows.size() > 1;
    for (const auto& row : t.rows) constant = constant && row[i] == t.rows[0][i];
    if (c.key == "status" && all_ok) c.priority = 11;
    else if (!c.numeric && constant) c.priority = 12;  // the same in every row: first to go (the note names it)
    else if (c.key == "algo" || c.key == "ignore") c.priority = 0;
  }
  return t;
}

}  // namespace ql
