// The sweep runner (see runner.h).
#include "ql_version.h"
#include "harness/sweep/runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "harness/eval/baseline.h"
#include "harness/sweep/cell_eval.h"
#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/compact_reference.h"
#include "harness/eval/evaluator.h"
#include "datasets/protocol.h"
#include "harness/io/load.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/attn_quant.h"
#include "harness/quant/calibration.h"
#include "harness/quant/kv_quant.h"
#include "harness/quant/quant_util.h"
#include "harness/quant/targets.h"
#include "harness/tokenizer/tokenizer.h"
#include "harness/util/progress.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"
#include "results/store.h"

namespace ql {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Experiment, model, text and baseline rows, and the whole grid's cell ids (every shard records
// them all, so `status` and `merge` can name what is missing).
StatusOr<std::string> RecordRun(ResultStore& store, const Session& s, const std::vector<Cell>& grid,
                                const std::vector<Cell>& cells) {
  const Experiment& e = *s.experiment;
  const std::string experiment_id = ExperimentId(e);
  const CellRow any = DescribeCell(s, cells.empty() ? grid.front() : cells.front());
  QL_RETURN_IF_ERROR(store.PutExperiment({experiment_id, e.name, e.text, NowIso(), any.code_version, any.host}));
  const Model& m = s.reference;
  QL_RETURN_IF_ERROR(store.PutModel({s.hashes.model, s.model_path, m.config.arch, m.config.ParameterCount(), "{}"}));
  QL_RETURN_IF_ERROR(store.PutDataset({s.hashes.data, e.data, int64_t(s.text.size()), int64_t(s.tokens.size())}));
  std::vector<ResultStore::PlannedCell> planned;
  for (const Cell& c : grid) planned.push_back({c.index, DescribeCell(s, c).id, c.Label()});
  QL_RETURN_IF_ERROR(store.PutPlannedCells(experiment_id, planned));
  return experiment_id;
}

StatusOr<std::string> RecordBaseline(ResultStore& store, const Session& s, std::ostream& log) {
  const Baseline& base = *s.base;
  const std::string baseline_id = fmt::format("base-{:016x}", Fnv1a64(base.key.data(), base.key.size()));
  const PerplexityStats ps = Perplexity(base.nll);
  BaselineRow row{baseline_id, s.hashes.model, s.hashes.data, s.protocol.Canonical(),
                  std::string(PrecisionName(s.precision)), ps.ppl, ps.ppl_err, ps.mean_nll, ps.n, base.seconds};
  ArrayMap arrays;
  arrays["nll"].assign(base.nll.begin(), base.nll.end());
  QL_RETURN_IF_ERROR(store.PutBaseline(row, arrays));
  log << fmt::format("baseline {} {}: PPL {:.4f} ± {:.4f} over {} tokens ({} windows)\n", PrecisionName(s.precision),
                     s.protocol.Canonical(), ps.ppl, ps.ppl_err, ps.n, s.windows.size());
  log.flush();
  return baseline_id;
}

// The plans with each PlannedBodyGroup's cells back to back, the groups in the order of their first cell
// and the cells in grid order within one: a pair that can share a body runs one after the other.
std::vector<CellPlan> GroupByBody(std::vector<CellPlan> plans) {
  std::map<std::string, size_t> first;  // group → its first plan's position
  std::vector<size_t> group(plans.size());
  for (size_t i = 0; i < plans.size(); ++i) group[i] = first.emplace(PlannedBodyGroup(plans[i]), i).first->second;
  std::vector<size_t> order(plans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return group[a] < group[b]; });
  std::vector<CellPlan> out;
  for (size_t i : order) out.push_back(std::move(plans[i]));
  return out;
}

// Per plan (in run order): whether the plan before or after it is in its PlannedBodyGroup, i.e. whether
// it may run on a kept body or keep one for the next cell. Others skip the body key's hash and keep no
// streams.
std::vector<bool> MayShareBody(const std::vector<CellPlan>& plans) {
  std::vector<std::string> group;
  for (const CellPlan& p : plans) group.push_back(PlannedBodyGroup(p));
  std::vector<bool> share(plans.size(), false);
  for (size_t i = 0; i + 1 < plans.size(); ++i)
    if (group[i] == group[i + 1]) share[i] = share[i + 1] = true;
  return share;
}

std::string CellLine(const CellResult& r) {
  if (r.cell.status != "ok") return r.cell.status + ": " + r.cell.reason;
  const MetricValues& m = *r.metrics;
  return fmt::format("PPL {:.4f} (Δ {:+.4f}) KLD {:.5f} top1 {:.2f}% {:.2f} b/w", m.Or("ppl", NAN), m.Or("dppl", NAN),
                     m.Or("kld_mean", NAN), 100 * m.Or("top1", NAN), m.Or("bits_per_weight", 0));
}

}  // namespace

StatusOr<SweepSummary> RunSweep(const Experiment& e, const SweepOptions& opt, std::ostream& log) {
  const auto t_start = Clock::now();
  SweepSummary sum;
  sum.results_dir = opt.results.empty() ? e.results : opt.results;
  int shard_i = 0, shard_n = 1;
  if (!opt.shard.empty()) { QL_ASSIGN_OR_RETURN(std::tie(shard_i, shard_n), ParseShard(opt.shard)); }
  const std::vector<Cell> grid = ExpandGrid(e);
  const std::vector<Cell> cells = ShardCells(grid, shard_i, shard_n);

  SessionOptions so;
  so.model = opt.model;
  so.baseline_cache_dir = sum.results_dir + "/baseline-cache";
  so.log = &log;
  if (opt.progress_bar) so.progress = ProgressStyle::ForStderr(&log);
  QL_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, OpenSession(e, cells, so));
  if (CanCompactReference(*s, cells)) CompactReference(s.get());  // one FP32 copy of the weights: the work model
  QL_ASSIGN_OR_RETURN(SweepSummary done, RunCells(*s, grid, cells, opt, sum.results_dir, log));
  log << fmt::format("sweep {}: {} cells, {} ok, {} failed, {} diverged, {} skipped (already recorded{}) in {:.1f}s\n",
                     e.name, done.total, done.ok, done.failed, done.diverged, done.skipped,
                     done.skipped_failed ? fmt::format("; {} of them failed: --retry-failed runs them again",
                                                       done.skipped_failed)
                                         : std::string(),
                     Seconds(t_start, Clock::now()));
  return done;
}

StatusOr<SweepSummary> RunCells(const Session& session, const std::vector<Cell>& grid, const std::vector<Cell>& cells,
                                const SweepOptions& opt, const std::string& results_dir, std::ostream& log) {
  const Session* s = &session;
  SweepSummary sum;
  sum.results_dir = results_dir;
  std::vector<CellPlan> plans;
  for (const Cell& c : cells) {
    QL_ASSIGN_OR_RETURN(CellPlan p, PlanCell(*s, c));
    plans.push_back(std::move(p));
  }
  plans = GroupByBody(std::move(plans));
  QL_ASSIGN_OR_RETURN(auto store, ResultStore::Open(sum.results_dir));
  QL_ASSIGN_OR_RETURN(sum.experiment_id, RecordRun(*store, *s, grid, cells));
  QL_ASSIGN_OR_RETURN(const std::string baseline_id, RecordBaseline(*store, *s, log));

  Model work = WorkModel(*s);
  // Within a cell: the algorithm's and the evaluation's progress, prefixed with the cell.
  ProgressStyle inner = opt.progress_bar ? ProgressStyle::ForStderr(&log) : ProgressStyle{};
  const bool tty = inner.tty;
  sum.total = int(cells.size());
  int done = 0;
  KeptBody body;  // the last evaluated cell's streams entering the final norm (harness/eval/body_reuse.h)
  CellsEta eta_of;  // per cell: CellWork (a late-block cell with prefix reuse costs less) × windows it runs
  for (const CellPlan& p : plans) eta_of.Plan(CellWork(*s, p), p.cell->adaptive.has_value());
  const std::vector<bool> may_share = MayShareBody(plans);
  for (const CellPlan& p : plans) {
    const bool share = may_share[size_t(done)];
    ++done;
    const std::string id = DescribeCell(*s, *p.cell).id;
    QL_ASSIGN_OR_RETURN(const std::string have, store->CellStatus(id));
    if (!have.empty() && !(opt.retry_failed && have == "failed")) {
      ++sum.skipped;
      eta_of.Skip(size_t(done - 1));
      if (have == "failed") ++sum.skipped_failed;
      log << fmt::format("[{}/{}] {} — already recorded, skipped ({})", done, cells.size(), p.cell->Label(), have)
          << std::endl;
      continue;
    }
    inner.prefix = fmt::format("[{}/{}] {} — ", done, cells.size(), p.cell->Label());
    const int64_t windows_before = s->window_tally ? s->window_tally->evaluated.load() : 0;
    CellResult r = RunCell(*s, work, p, inner, share ? &body : nullptr);
    const int64_t windows_run = s->window_tally ? s->window_tally->evaluated.load() - windows_before : 0;
    r.cell.experiment_id = sum.experiment_id;
    r.cell.baseline_id = baseline_id;
    r.cell.shard = opt.shard;
    QL_RETURN_IF_ERROR(store->CommitCell(r));
    if (r.cell.status == "failed") eta_of.Skip(size_t(done - 1));  // no evaluation to learn from
    else eta_of.Ran(size_t(done - 1), r.cell.seconds_total - r.cell.seconds_eval, r.cell.seconds_eval,
                    s->windows.empty() ? 1.0 : double(windows_run) / double(s->windows.size()));
    (r.cell.status == "ok" ? sum.ok : r.cell.status == "failed" ? sum.failed : sum.diverged)++;
    const std::string eta = FormatDuration(eta_of.SecondsLeft());
    StepLine(tty, log,
             fmt::format("[{}/{}] {} — {} ({:.1f}s, {:.1f} CPU-s{}, ETA {})", done, cells.size(), p.cell->Label(),
                         CellLine(r), r.cell.seconds_total, r.cell.cpu_seconds_total.value_or(0),
                         r.cell.body_from.empty() ? "" : ", head only: the body of " + r.cell.body_from.substr(0, 12),
                         eta),
             done, int(cells.size()), eta);
  }
  return sum;
}

bool AnyCellSets(ResultStore& store, const std::string& experiment_id, const std::string& column) {
  auto r = store.Query("SELECT 1 FROM cells WHERE " + column + " != ''" +
                       (experiment_id.empty() ? std::string() : " AND experiment_id = '" + experiment_id + "'") +
                       " LIMIT 1");
  return r.ok() && !r->rows.empty();  // a version-1 store has no attn_scheme column: none
}

std::string NumericsNote(ResultStore& store, const std::string& experiment_id) {
  auto r = store.Query("SELECT coalesce(numerics_version, 'none (before versioning)'), count(*) FROM cells" +
                       (experiment_id.empty() ? std::string() : " WHERE experiment_id = '" + experiment_id + "'") +
                       " GROUP BY 1 ORDER BY 1");
  if (!r.ok() || r->rows.size() < 2) return "";
  std::string parts;
  for (const auto& row : r->rows)
    parts += fmt::format("{}version {}: {} cells", parts.empty() ? "" : ", ", SqlValueToString(row[0]),
                         SqlValueToString(row[1]));
  return "note: this store mixes numerics versions (" + parts + "); re-run the older cells to compare them exactly\n";
}

}  // namespace ql
