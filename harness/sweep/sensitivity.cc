// Sensitivity units and cells, the store read-back, the rank correlations and the knapsack
// (see sensitivity.h).
#include "harness/sweep/sensitivity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "harness/eval/metrics.h"
#include "harness/quant/quant_util.h"
#include "harness/quant/targets.h"
#include "harness/sweep/cell_eval.h"
#include "harness/sweep/compact_reference.h"
#include "harness/sweep/search_refine.h"
#include "harness/sweep/search_target.h"
#include "harness/sweep/search_windows.h"
#include "harness/sweep/window_records.h"
#include "harness/util/cpu_time.h"

namespace ql {
namespace {

double Num(const SqlValue& v) {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v)) return double(*i);
  return std::nan("");
}

// "model.layers.3.mlp.down_proj" -> "down_proj".
std::string ModuleType(const std::string& m) { return m.substr(m.rfind('.') + 1); }

std::string UnitKey(const std::string& m, const std::string& how) {
  if (how == "module" || how == "layer_type" || m == "lm_head") return m;
  if (how == "layer") return fmt::format("layer {}", ModuleLayer(m));
  return ModuleType(m);  // type
}

std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * double(i + j);
    i = j + 1;
  }
  return r;
}

}  // namespace

StatusOr<std::vector<Unit>> SensitivityUnits(const Session& s, const std::string& how) {
  const Model& m = s.reference;
  QL_ASSIGN_OR_RETURN(std::vector<std::string> modules, ResolveTargets(m, s.experiment->targets, "targets"));
  const int64_t elem_bytes = s.precision == BaselinePrecision::kBf16 ? 2 : 4;
  std::vector<Unit> units;
  std::map<std::string, size_t> at;
  for (const std::string& mod : modules) {
    if (mod == "model.embed_tokens") continue;  // a lookup table, not a linear
    const std::string key = UnitKey(mod, how);
    auto [it, fresh] = at.emplace(key, units.size());
    if (fresh) units.push_back({key, {}, 0, 0});
    Unit& u = units[it->second];
    u.modules.push_back(mod);
    const int64_t n = m.W(WeightKey(m, mod)).numel();
    u.numel += n;
    u.baseline_bytes += n * elem_bytes;
  }
  if (units.empty()) return Status::Error("sensitivity: the experiment's targets name no linear module");
  return units;
}

std::vector<Cell> SensitivityCells(const Experiment& e, const std::vector<Unit>& units,
                                   const std::vector<std::string>& schemes,
                                   const std::optional<AdaptiveSpec>& adaptive) {
  std::vector<Cell> cells;
  for (const Unit& u : units)
    for (const std::string& sc : schemes) {
      Cell c;
      c.index = int(cells.size());
      c.scheme.label = sc + " @ " + u.name;
      c.algorithm = e.algorithms.front();
      c.ignore = {"none", {}, true};
      c.overrides.push_back({u.modules, sc, "sensitivity unit '" + u.name + "'"});
      c.adaptive = adaptive;
      cells.push_back(std::move(c));
    }
  return cells;
}

StatusOr<std::optional<CellFacts>> ReadCellFacts(ResultStore& store, const std::string& id) {
  QL_ASSIGN_OR_RETURN(SqlResult m,
                      store.Query("SELECT m.kld_mean, m.kld_se, m.dppl, m.dppl_lo, m.dppl_hi, m.top1, m.bits_per_weight, "
                                  "m.model_bytes, m.eval_windows, m.ppl_base, m.ppl_ratio, m.ppl_ratio_lo, m.ppl_ratio_hi, "
                                  "m.ln_ppl_ratio_se FROM cells c JOIN metrics m ON m.cell_id = c.id WHERE c.id = '" +
                                  id + "' AND c.status = 'ok'"));
  if (m.rows.empty()) return std::optional<CellFacts>();
  CellFacts f;
  f.id = id;
  const auto& r = m.rows[0];
  f.kld = Num(r[0]), f.kld_se = Num(r[1]), f.dppl = Num(r[2]), f.dppl_lo = Num(r[3]), f.dppl_hi = Num(r[4]);
  f.top1 = Num(r[5]), f.bits_per_weight = Num(r[6]), f.model_bytes = int64_t(Num(r[7]));
  f.eval_windows = std::isnan(Num(r[8])) ? 0 : int(Num(r[8]));
  f.ppl_base = Num(r[9]), f.ln_ratio = std::log(Num(r[10])), f.ln_ratio_lo = std::log(Num(r[11]));
  f.ln_ratio_hi = std::log(Num(r[12])), f.ln_ratio_se = Num(r[13]);
  // Pooled SQNR: noise = mse·n, signal = noise·10^(sqnr/10), n = bytes·8 / bits_per_weight.
  QL_ASSIGN_OR_RETURN(SqlResult t, store.Query("SELECT mse, sqnr_db, bytes, bits_per_weight FROM tensor_errors "
                                               "WHERE cell_id = '" + id + "'"));
  double noise = 0, signal = 0;
  for (const auto& row : t.rows) {
    const double n = Num(row[2]) * 8 / Num(row[3]);
    noise += Num(row[0]) * n;
    signal += Num(row[0]) * n * std::pow(10.0, Num(row[1]) / 10);
    f.quant_bytes += int64_t(Num(row[2]));
  }
  f.weight_sqnr_db = noise > 0 ? 10 * std::log10(signal / noise) : INFINITY;
  QL_ASSIGN_OR_RETURN(SqlResult l, store.Query("SELECT rel_mse FROM layer_errors WHERE cell_id = '" + id +
                                               "' ORDER BY layer DESC LIMIT 1"));
  f.out_rel_mse = l.rows.empty() ? std::nan("") : Num(l.rows[0][0]);
  return std::optional<CellFacts>(f);
}

double Spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return std::nan("");
  const std::vector<double> ra = Ranks(a), rb = Ranks(b);
  const double n = double(a.size()), ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n,
               mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : std::nan("");
}

StatusOr<SensitivityTable> ReadSensitivity(ResultStore& store, const Session& s, std::vector<Unit> units,
                                           const std::vector<std::string>& schemes,
                                           const std::optional<AdaptiveSpec>& adaptive) {
  SensitivityTable t;
  t.units = std::move(units);
  t.schemes = schemes;
  t.adaptive = adaptive.has_value();
  t.rel_se = adaptive ? adaptive->rel_se : 0;
  t.dnll_rel_se = adaptive ? adaptive->dnll_rel_se : 0;
  t.dnll_se = adaptive ? adaptive->dnll_se : 0;
  t.total_windows = int(s.windows.size());
  const std::vector<Cell> cells = SensitivityCells(*s.experiment, t.units, schemes, adaptive);
  for (size_t i = 0; i < cells.size(); ++i) {
    SensitivityRow row{&t.units[i / schemes.size()], schemes[i % schemes.size()], std::nullopt};
    QL_ASSIGN_OR_RETURN(row.facts, ReadCellFacts(store, DescribeCell(s, cells[i]).id));
    t.rows.push_back(std::move(row));
  }
  // Proxies rank "more harmful" high: low SQNR, high output error; the measure: high KLD.
  for (const std::string& sc : schemes) {
    std::vector<double> kld, sqnr, out;
    for (const auto& r : t.rows)
      if (r.scheme == sc && r.facts) {
        kld.push_back(r.facts->kld);
        sqnr.push_back(-r.facts->weight_sqnr_db);
        out.push_back(r.facts->out_rel_mse);
      }
    t.rho_sqnr.push_back(Spearman(sqnr, kld));
    t.rho_out.push_back(Spearman(out, kld));
  }
  return t;
}

bool ScanComplete(const SensitivityTable& t) {
  return std::all_of(t.rows.begin(), t.rows.end(), [](const SensitivityRow& r) { return r.facts.has_value(); });
}

std::string FormatSensitivity(const SensitivityTable& t) {
  std::string s = fmt::format("{:<34} {:<14} {:>10} {:>22} {:>30} {:>7} {:>9} {:>10} {:>7}\n", "unit", "scheme", "bytes",
                              "ΔKLD mean ± se", "ΔPPL [95% CI]", "top1", "wSQNR dB", "out relMSE", "windows");
  for (const auto& r : t.rows) {
    if (!r.facts) {
      s += fmt::format("{:<34} {:<14} (not in the store: run `quantlab sensitivity` first, or it failed)\n",
                       r.unit->name, r.scheme);
      continue;
    }
    const CellFacts& f = *r.facts;
    s += fmt::format("{:<34} {:<14} {:>10} {:>12.6f} ± {:<8.6f} {:>+9.4f} [{:+.4f}, {:+.4f}] {:>6.2f}% {:>9.2f} {:>10.3e} {:>7}\n",
                     r.unit->name, r.scheme, f.quant_bytes, f.kld, f.kld_se, f.dppl, f.dppl_lo, f.dppl_hi,
                     100 * f.top1, f.weight_sqnr_db, f.out_rel_mse, fmt::format("{}/{}", f.eval_windows, t.total_windows));
  }
  if (t.adaptive)
    s += "adaptive evaluation: each unit's numbers are over the windows it ran (seeded order, stopped at the "
         "sensitivity.adaptive rule); verification cells of `search` run every window\n";
  for (size_t i = 0; i < t.schemes.size(); ++i)
    s += fmt::format("Spearman rho vs measured KLD ranking, {}: weight SQNR {:+.3f}, block-output error {:+.3f}\n",
                     t.schemes[i], t.rho_sqnr[i], t.rho_out[i]);
  return s;
}

nlohmann::json SensitivityJson(const SensitivityTable& t) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : t.rows) {
    nlohmann::json j = {{"unit", r.unit->name}, {"modules", r.unit->modules}, {"scheme", r.scheme},
                        {"baseline_bytes", r.unit->baseline_bytes}};
    if (r.facts) {
      const CellFacts& f = *r.facts;
      j.update({{"cell_id", f.id}, {"bytes", f.quant_bytes}, {"kld_mean", f.kld}, {"kld_se", f.kld_se},
                {"dppl", f.dppl}, {"dppl_lo", f.dppl_lo}, {"dppl_hi", f.dppl_hi}, {"top1", f.top1},
                {"weight_sqnr_db", f.weight_sqnr_db}, {"out_rel_mse", f.out_rel_mse}, {"eval_windows", f.eval_windows}});
    }
    rows.push_back(j);
  }
  nlohmann::json rho = nlohmann::json::object();
  for (size_t i = 0; i < t.schemes.size(); ++i)
    rho[t.schemes[i]] = {{"weight_sqnr", t.rho_sqnr[i]}, {"out_rel_mse", t.rho_out[i]}};
  return {{"rows", rows}, {"spearman", rho}, {"adaptive", t.adaptive}, {"total_windows", t.total_windows}};
}

StatusOr<Choice> SolveKnapsack(const std::vector<std::vector<Option>>& options, int64_t max_bytes, double max_kld,
                               int64_t bucket) {
  QL_CHECK(bucket > 0, "bucket must be positive");
  const double kInf = std::numeric_limits<double>::infinity();
  int64_t top = 0;  // most buckets any choice can take
  for (const auto& opts : options) {
    int64_t most = 0;
    for (const Option& o : opts) most = std::max(most, (o.bytes + bucket - 1) / bucket);
    top += most;
  }
  // best[b]: least Σ cost of the units so far taking exactly b buckets (one row, rolled);
  // from[u][b]: the option of unit u-1 on that path (options per unit < 128).
  std::vector<double> best(size_t(top) + 1, kInf), next;
  std::vector<std::vector<int8_t>> from(options.size() + 1, std::vector<int8_t>(size_t(top) + 1, -1));
  best[0] = 0;
  for (size_t u = 0; u < options.size(); ++u) {
    QL_CHECK(options[u].size() < 128, "at most 127 options per unit");
    next.assign(size_t(top) + 1, kInf);
    for (int64_t b = 0; b <= top; ++b) {
      if (best[size_t(b)] == kInf) continue;
      for (size_t k = 0; k < options[u].size(); ++k) {
        const int64_t nb = b + (options[u][k].bytes + bucket - 1) / bucket;
        const double nc = best[size_t(b)] + options[u][k].cost;
        if (nb <= top && nc < next[size_t(nb)]) {
          next[size_t(nb)] = nc;
          from[u + 1][size_t(nb)] = int8_t(k);
        }
      }
    }
    best.swap(next);
  }
  int64_t end = -1;
  const auto& last = best;
  for (int64_t b = 0; b <= top; ++b) {
    if (last[size_t(b)] == kInf) continue;
    if (max_kld >= 0) {
      if (last[size_t(b)] <= max_kld) { end = b; break; }  // fewest bytes meeting the target
    } else if (b * bucket <= max_bytes && (end < 0 || last[size_t(b)] < last[size_t(end)])) {
      end = b;
    }
  }
  if (end < 0)
    return max_kld >= 0 ? Status::Errorf("no configuration reaches a predicted KLD <= {} (even all at baseline?)", max_kld)
                        : Status::Errorf("no configuration fits in {} bytes (every unit's smallest scheme is larger)",
                                         max_bytes);
  Choice c;
  c.pick.assign(options.size(), 0);
  for (size_t u = options.size(); u > 0; --u) {
    const int k = from[u][size_t(end)];
    c.pick[u - 1] = k;
    c.bytes += options[u - 1][size_t(k)].bytes;
    c.cost += options[u - 1][size_t(k)].cost;
    end -= (options[u - 1][size_t(k)].bytes + bucket - 1) / bucket;
  }
  return c;
}

Cell ConfigCell(const Experiment& e, const std::vector<Unit>& units, const std::vector<std::vector<Option>>& options,
                const Choice& c, int index) {
  std::map<std::string, int64_t> numel;  // scheme -> weights it covers
  for (size_t u = 0; u < units.size(); ++u) numel[options[u][size_t(c.pick[u])].scheme] += units[u].numel;
  std::string main;
  int64_t most = -1;
  for (const auto& [sc, n] : numel)
    if (n > most) most = n, main = sc;
  Cell cell;
  cell.index = index;
  cell.scheme.weights = main;
  cell.scheme.label = (main.empty() ? std::string("none") : main) + " + overrides";
  cell.algorithm = e.algorithms.front();
  cell.ignore = {"none", {}, true};
  for (const auto& [sc, n] : numel) {
    if (sc == main) continue;
    OverrideSpec o{{}, sc, "search"};
    for (size_t u = 0; u < units.size(); ++u)
      if (options[u][size_t(c.pick[u])].scheme == sc) o.targets.insert(o.targets.end(), units[u].modules.begin(), units[u].modules.end());
    cell.overrides.push_back(std::move(o));
  }
  return cell;
}

}  // namespace ql

namespace ql {
namespace {

// The scan's experiment: the file's, under its own name (so its planned cells do not mix with the
// sweep's), with the block's settings.
Experiment ScanExperiment(const Experiment& e, const std::string& suffix) {
  Experiment x = e;
  x.name = e.name + suffix;
  x.overrides.clear();
  return x;
}

double UnitsBpw(int64_t bytes, const std::vector<Unit>& units) {
  int64_t n = 0;
  for (const Unit& u : units) n += u.numel;
  return double(bytes) * 8 / double(n);
}

// Adaptive units keep their windows' records in DIR/window-records, so a refinement's full-window
// cell of the same unit runs only the windows they skipped (window_records.h).
Status UseWindowRecords(Scan* scan) {
  const std::string dir = WindowRecordsDir(scan->results_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Errorf("sensitivity: cannot create {} ({}); check the results directory", dir, ec.message());
  scan->session->window_records_dir = dir;
  return Status::Ok();
}

// A cell's cost as the search counts it (SearchCost): its mean KLD, or ln(ppl / ppl_base), both
// clamped at 0. For KLD a negative is rounding; a negative ln PPL ratio of one unit is mostly the text's
// noise (rounding a trained model's weights does not lower its expected loss to first order), and
// taken as measured the knapsack would spend it: on stories260K the units' negatives let a
// configuration predicted at ΔPPL +0.05 measure +0.78.
double CostOf(const CellFacts& f, SearchCost c) { return std::max(0.0, c == SearchCost::kKld ? f.kld : f.ln_ratio); }

// The half-width z · (its standard error) of an inexact cost; for KLD at least the adaptive rule's
// relative bound rel_se · cost (the stopping rule's bound on its standard error); for Δ ln PPL, with the
// scan's ΔNLL rule, at least its bound max(dnll_rel_se · |Δ|, dnll_se).
double CostSpread(const CellFacts& f, SearchCost c, double z, const SensitivityTable& t) {
  if (c == SearchCost::kKld) return z * std::max(t.rel_se * CostOf(f, c), f.kld_se);
  return z * std::max({f.ln_ratio_se, t.dnll_rel_se * std::fabs(f.ln_ratio), t.dnll_se});
}

// [windows] the cost's per-window sums of a stored cell that ran `ran` (empty when its arrays are absent).
std::vector<double> StoredWindowCost(const Scan& scan, ResultStore& store, const std::string& id, const std::vector<int>& ran,
                                     SearchCost c) {
  const std::vector<int64_t> tokens = WindowTokens(scan.session->windows);
  return c == SearchCost::kKld ? CellWindowKld(store, id, tokens, ran)
                               : CellWindowDeltaNll(store, id, tokens, ran, scan.session->base->nll);
}

// Candidate options per unit: the baseline, then each scheme measured alone; an adaptive unit that
// stopped early has an inexact cost, within ± CostSpread. One that ran every window is exact: records
// are kept in window order, so its numbers are bitwise the full cell's (tests/sweep/prefix_test.cc).
StatusOr<std::vector<std::vector<Option>>> Options(const SensitivityTable& t, const std::vector<std::string>& schemes,
                                                   double z, SearchCost cost) {
  std::vector<std::vector<Option>> opts(t.units.size());
  for (size_t u = 0; u < t.units.size(); ++u) opts[u].push_back({"", t.units[u].baseline_bytes, 0.0});
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const SensitivityRow& r = t.rows[i];
    if (std::find(schemes.begin(), schemes.end(), r.scheme) == schemes.end()) continue;
    if (!r.facts)
      return Status::Errorf("search: unit '{}' at {} is not in the store (run `quantlab sensitivity` on the same file first)",
                            r.unit->name, r.scheme);
    const bool exact = !t.adaptive || r.facts->eval_windows >= t.total_windows;
    const double spread = exact ? 0 : CostSpread(*r.facts, cost, z, t);
    opts[i / t.schemes.size()].push_back(
        {r.scheme, r.facts->quant_bytes, CostOf(*r.facts, cost), spread, exact, {}, exact ? 0 : r.facts->eval_windows});
  }
  return opts;
}

// Runs one configuration cell (unless recorded) and reads it back.
StatusOr<CellFacts> Verify(Scan& scan, const Cell& cell, std::ostream& log) {
  SweepOptions so;
  so.progress_bar = false;
  // Recorded under "<name>-search" (its own planned cells); the name is not part of a cell's identity.
  Experiment x = scan.experiment;
  x.name = x.name.substr(0, x.name.size() - std::string("-sensitivity").size()) + "-search";
  scan.session->experiment = &x;
  auto ran = RunCells(*scan.session, {cell}, {cell}, so, scan.results_dir, log);
  scan.session->experiment = &scan.experiment;
  QL_ASSIGN_OR_RETURN(SweepSummary sum, std::move(ran));
  QL_ASSIGN_OR_RETURN(auto store, ResultStore::OpenReadOnly(scan.results_dir));
  QL_ASSIGN_OR_RETURN(auto f, ReadCellFacts(*store, DescribeCell(*scan.session, cell).id));
  if (!f) return Status::Errorf("search: the verification cell failed ({} failed, {} diverged)", sum.failed, sum.diverged);
  return *f;
}

// The scan's (unit, scheme) cell on every window: the identity `sensitivity --full` gives it.
const Cell& FullCell(const std::vector<Cell>& full, const SensitivityTable& t, int u, const std::string& scheme) {
  const size_t si = size_t(std::find(t.schemes.begin(), t.schemes.end(), scheme) - t.schemes.begin());
  return full[size_t(u) * t.schemes.size() + si];
}

// The unit's cell on the first `windows` windows of the seeded order (AdaptiveSpec::windows): what the
// refinement evaluates to extend an option; it resumes from, and extends, the unit's window records.
Cell ExtensionCell(const std::vector<Cell>& full, const SensitivityTable& t, int u, const std::string& scheme,
                   int windows) {
  Cell c = FullCell(full, t, u, scheme);
  AdaptiveSpec a;
  a.windows = windows;
  c.adaptive = a;
  return c;
}

// The next step of an inexact option of n windows: min(every window, max(n + 1, ⌈growth · n⌉)).
int NextWindows(const Option& op, int n_windows, double growth) {
  const int n = std::max(1, op.windows);
  return std::min(n_windows, std::max(n + 1, int(std::ceil(growth * n))));
}

// The option's numbers from the records of the windows `ran` (in index order, concatenated: what
// EvaluateWindows returns, or a records file read back): its cost and spread as CellFacts would give
// them for a cell of those windows (the same Compare of the same doubles: bitwise a stored cell's), and
// its per-window cost sums. Exact when `ran` is every window.
void SetFromRecords(const Scan& scan, const TokenRecords& rec, const std::vector<int>& ran, SearchCost cost, double z,
                    Option* op) {
  const std::vector<int64_t> tokens = WindowTokens(scan.session->windows);
  const ComparisonStats cmp = Compare(rec);
  CellFacts f;
  f.kld = cmp.kld.mean, f.kld_se = cmp.kld.se, f.ln_ratio = std::log(cmp.delta.ratio), f.ln_ratio_se = cmp.delta.se_diff;
  op->exact = ran.size() == tokens.size();
  op->cost = CostOf(f, cost);
  op->spread = op->exact ? 0 : CostSpread(f, cost, z, scan.table);
  op->windows = op->exact ? 0 : int(ran.size());
  op->window_cost.assign(tokens.size(), std::nan(""));
  size_t at = 0;
  for (int w : ran) {
    double sum = 0;
    for (int64_t i = 0; i < tokens[size_t(w)]; ++i, ++at)
      sum += cost == SearchCost::kKld ? rec.kld[at] : rec.nll_quant[at] - rec.nll_base[at];
    op->window_cost[size_t(w)] = sum;
  }
  QL_CHECK(int64_t(at) == rec.size(), "{} records for {} scored tokens of the windows run", rec.size(), at);
}

// Moves every inexact option whose window records hold more windows than its cost is over (an earlier
// search's extensions) to those records; a file that is not the first windows of the seeded order is
// left alone (it is a cache: its windows just run again).
Status UseWindowRecordsOf(const Scan& scan, const std::vector<Cell>& full, double z, SearchCost cost,
                          std::vector<std::vector<Option>>* opts) {
  const Session& s = *scan.session;
  const int n = int(s.windows.size());
  for (size_t u = 0; u < opts->size(); ++u)
    for (Option& op : (*opts)[u]) {
      if (op.exact || op.scheme.empty()) continue;
      const std::string path = WindowRecordsPath(s, FullCell(full, scan.table, int(u), op.scheme));
      if (StoredWindowCount(path) <= op.windows) continue;
      const KnownWindows known = ReadWindowRecords(path, s.windows);
      std::vector<int> ran;
      TokenRecords rec;
      for (int w = 0; w < n; ++w)
        if (const auto& k = known[size_t(w)]) {
          ran.push_back(w);
          for (int64_t i = 0; i < k->size(); ++i) rec.Add(k->nll_base[i], k->nll_quant[i], k->kld[i], k->same_top[i] != 0);
        }
      if (int(ran.size()) <= op.windows || ran != WindowsRan(int(ran.size()), n, scan.experiment.seed)) continue;
      SetFromRecords(scan, rec, ran, cost, z, &op);
    }
  return Status::Ok();
}

// Extends an option to the first `windows` windows of the seeded order: the unit's cell evaluated on
// the windows its records lack (EvaluateCellWindows: prefix start, the records file extended), no
// store row. `work` is a copy of the reference (restored after).
Status ExtendOption(const Scan& scan, Model& work, const std::vector<Cell>& full, int u, int windows, SearchCost cost,
                    double z, Option* op) {
  const Cell c = ExtensionCell(full, scan.table, u, op->scheme, windows);
  QL_ASSIGN_OR_RETURN(const CellPlan p, PlanCell(*scan.session, c));
  QL_ASSIGN_OR_RETURN(const WindowRecords w, EvaluateCellWindows(*scan.session, work, p));
  QL_CHECK(w.windows == windows, "extension to {} windows ran {}", windows, w.windows);
  SetFromRecords(scan, w.records, WindowsRan(windows, int(scan.session->windows.size()), scan.experiment.seed), cost, z,
                 op);
  return Status::Ok();
}

// Makes the options whose full-window cell the store holds (a full scan, or a refinement before window
// records were extended in place) exact, at that cell's cost.
Status UseFullCells(const Scan& scan, const std::vector<Cell>& full, const std::vector<std::pair<int, int>>& which,
                    SearchCost cost, std::vector<std::vector<Option>>* opts) {
  QL_ASSIGN_OR_RETURN(auto store, ResultStore::OpenReadOnly(scan.results_dir));
  for (const auto& [u, k] : which) {
    Option& op = (*opts)[size_t(u)][size_t(k)];
    const std::string id = DescribeCell(*scan.session, FullCell(full, scan.table, u, op.scheme)).id;
    QL_ASSIGN_OR_RETURN(std::optional<CellFacts> f, ReadCellFacts(*store, id));
    if (!f) continue;
    op.cost = CostOf(*f, cost), op.spread = 0, op.exact = true, op.windows = 0;
    const int n = int(scan.session->windows.size());
    op.window_cost = StoredWindowCost(scan, *store, id, WindowsRan(n, n, 0), cost);
  }
  return Status::Ok();
}

// Attaches to every option not yet exact the per-window KLD sums of its adaptive cell, for the paired
// comparisons of the refinement (search_refine.h).
Status UseAdaptiveWindows(const Scan& scan, SearchCost cost, std::vector<std::vector<Option>>* opts) {
  const SensitivityTable& t = scan.table;
  QL_ASSIGN_OR_RETURN(auto store, ResultStore::OpenReadOnly(scan.results_dir));
  const int n = int(scan.session->windows.size());
  for (size_t u = 0; u < opts->size(); ++u)
    for (Option& op : (*opts)[u]) {
      if (op.exact || op.scheme.empty() || !op.window_cost.empty()) continue;  // set already (an extension)
      const size_t si = size_t(std::find(t.schemes.begin(), t.schemes.end(), op.scheme) - t.schemes.begin());
      const SensitivityRow& r = t.rows[u * t.schemes.size() + si];
      if (!r.facts) continue;
      const std::vector<int> ran = WindowsRan(r.facts->eval_windows, n, scan.experiment.seed);
      op.window_cost = StoredWindowCost(scan, *store, r.facts->id, ran, cost);
    }
  return Status::Ok();
}

// Every rival the refinement's passes found (search_refine.h, DecisionRivals): which unit, which option
// against which pick, why, and the windows each was over then: what the refinement's windows were for.
nlohmann::json RivalsJson(const Refined& r, const std::vector<std::vector<Option>>& opts, const SensitivityTable& t) {
  nlohmann::json out = nlohmann::json::array();
  auto name = [&](int u, int k) { return k == 0 ? std::string("bf16") : opts[size_t(u)][size_t(k)].scheme; };
  auto num = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
  for (size_t pass = 0; pass < r.rivals.size(); ++pass)
    for (const Rival& v : r.rivals[pass])
      out.push_back({{"pass", pass}, {"unit", t.units[size_t(v.unit)].name}, {"option", name(v.unit, v.option)},
                     {"pick", name(v.unit, v.pick)}, {"why", RivalWhyName(v.why)}, {"d", num(v.d)}, {"se", num(v.se)},
                     {"common_windows", v.common}, {"option_windows", v.option_windows},
                     {"pick_windows", v.pick_windows},
                     {"bytes_diff", opts[size_t(v.unit)][size_t(v.option)].bytes - opts[size_t(v.unit)][size_t(v.pick)].bytes}});
  return out;
}

// Adds one solve's refinement report to the search's (a target search may solve several times): counts
// and seconds summed, converged only if every solve's did, the multiplier and exact count of the last.
void AddRefinement(const nlohmann::json& now, nlohmann::json* total) {
  if (total->is_null()) {
    *total = now;
    return;
  }
  for (const char* k : {"passes", "options_measured", "doubling_steps", "windows_evaluated", "windows_resumed"})
    (*total)[k] = (*total)[k].get<int64_t>() + now[k].get<int64_t>();
  for (const char* k : {"seconds", "cpu_seconds"}) (*total)[k] = (*total)[k].get<double>() + now[k].get<double>();
  (*total)["converged"] = (*total)["converged"].get<bool>() && now["converged"].get<bool>();
  for (const auto& v : now["rivals"]) (*total)["rivals"].push_back(v);
  (*total)["lambda"] = now["lambda"], (*total)["exact_options"] = now["exact_options"];
}

// The knapsack's choice, after an adaptive scan with its decision options re-measured on every window
// until none is left (search_refine.h): the choice a full scan gives, at the cost of the options it
// depends on. An option is measured by extending its unit's window records in place (ExtendOption: only
// the windows they lack run, no store row), to every window at once or, with refine_doubling, by
// refine_growth per step. Full-window cells already in the store (a full scan) and records extended by an
// earlier search are used as they are.
StatusOr<Choice> SolveRefined(Scan& scan, const SearchOptions& o, SearchCost cost, int64_t max_bytes, double target,
                              int64_t bucket, std::vector<std::vector<Option>>* opts, nlohmann::json* report,
                              std::ostream& log) {
  const SensitivityTable& t = scan.table;
  if (!t.adaptive || o.refine_z <= 0) return SolveKnapsack(*opts, max_bytes, target, bucket);
  const std::vector<Cell> full = SensitivityCells(scan.experiment, t.units, t.schemes, std::nullopt);
  std::vector<std::pair<int, int>> every;
  for (size_t u = 0; u < opts->size(); ++u)
    for (size_t k = 1; k < (*opts)[u].size(); ++k) every.emplace_back(int(u), int(k));
  QL_RETURN_IF_ERROR(UseFullCells(scan, full, every, cost, opts));
  QL_RETURN_IF_ERROR(UseWindowRecordsOf(scan, full, o.refine_z, cost, opts));
  PairedWindows paired{WindowTokens(scan.session->windows), o.refine_z};
  if (o.refine_paired) { QL_RETURN_IF_ERROR(UseAdaptiveWindows(scan, cost, opts)); }
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = ProcessCpuSeconds();
  const int64_t evaluated0 = scan.session->window_tally->evaluated, taken0 = scan.session->window_tally->taken;
  const int n_windows = int(scan.session->windows.size());
  int steps = 0;              // extensions short of every window
  std::optional<Model> work;  // the reference's copy the units are quantized in, made at the first extension
  auto measure = [&](const std::vector<std::pair<int, int>>& need, std::vector<std::vector<Option>>* o2) -> Status {
    if (!work) work = WorkModel(*scan.session);
    int short_of_all = 0;
    for (const auto& [u, k] : need) {
      Option& op = (*o2)[size_t(u)][size_t(k)];
      const int m = o.refine_doubling ? NextWindows(op, n_windows, o.refine_growth) : n_windows;
      short_of_all += m < n_windows;
      QL_RETURN_IF_ERROR(ExtendOption(scan, *work, full, u, m, cost, o.refine_z, &op));
    }
    log << fmt::format("search: refinement: {} options extended to every window, {} by a step short of it\n",
                       need.size() - size_t(short_of_all), short_of_all);
    steps += short_of_all;
    return Status::Ok();
  };
  QL_ASSIGN_OR_RETURN(Refined r, SolveAndRefine(opts, max_bytes, target, bucket, o.refine_slack, measure,
                                                    o.refine_doubling ? 200 : 20, o.refine_paired ? &paired : nullptr,
                                                    o.refine_exchange && cost == SearchCost::kKld ? RefineRule::kExchange
                                                                                               : RefineRule::kPriceSlack));
  int exact = 0;
  for (const auto& [u, k] : every) exact += (*opts)[size_t(u)][size_t(k)].exact;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = ProcessCpuSeconds() - c0;
  nlohmann::json now = {{"passes", r.passes}, {"options_measured", r.measured}, {"doubling_steps", steps},
                              {"converged", r.converged},
                              {"lambda", r.lambda}, {"exact_options", exact}, {"options", every.size()},
                              {"seconds", wall}, {"cpu_seconds", cpu},
                              {"windows_evaluated", scan.session->window_tally->evaluated - evaluated0},
                              {"windows_resumed", scan.session->window_tally->taken - taken0}};
  now["rivals"] = RivalsJson(r, *opts, t);
  log << fmt::format("search: refinement {} after {} passes: {} options measured ({} of them short of every window) in "
                     "{:.1f}s ({:.1f} CPU-s; {} windows evaluated, {} taken from window records); {} of {} options exact\n",
                     r.converged ? "done" : "stopped", r.passes, r.measured, steps, wall, cpu,
                     now["windows_evaluated"].get<int64_t>(), now["windows_resumed"].get<int64_t>(), exact, every.size());
  AddRefinement(now, report);
  return r.choice;
}

// Uniform weight-only cells of the store on the same model, text and protocol, with no ignore set and
// no overrides: (scheme, bits per weight, measured KLD and ΔPPL with its interval).
StatusOr<nlohmann::json> UniformCells(const Scan& scan) {
  QL_ASSIGN_OR_RETURN(auto store, ResultStore::OpenReadOnly(scan.results_dir));
  const Session& s = *scan.session;
  QL_ASSIGN_OR_RETURN(SqlResult r, store->Query(
      "SELECT c.weight_scheme, c.algorithm, m.bits_per_weight, m.kld_mean, m.kld_se, m.dppl, m.dppl_lo, m.dppl_hi "
      "FROM cells c JOIN metrics m "
      "ON m.cell_id = c.id WHERE c.status = 'ok' AND c.model_id = '" + s.hashes.model + "' AND c.dataset_id = '" +
      s.hashes.data + "' AND c.protocol = '" + s.protocol.Canonical() + "' AND c.weight_scheme != '' AND "
      "c.act_scheme = '' AND c.kv_scheme = '' AND coalesce(c.attn_scheme, '') = '' AND c.ignore_set = 'none' AND "
      "c.config NOT LIKE '%\"overrides\"%' ORDER BY m.bits_per_weight"));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : r.rows)
    out.push_back({{"scheme", SqlValueToString(row[0])}, {"algorithm", SqlValueToString(row[1])},
                   {"bits_per_weight", Num(row[2])}, {"kld_mean", Num(row[3])}, {"kld_se", Num(row[4])},
                   {"dppl", Num(row[5])}, {"dppl_lo", Num(row[6])}, {"dppl_hi", Num(row[7])}});
  return out;
}

std::string Abs(const std::string& p) { return std::filesystem::absolute(p).lexically_normal().string(); }

std::string Recipe(const Scan& scan, const Cell& cell, const nlohmann::json& measured, const std::string& target) {
  const Experiment& e = scan.experiment;
  nlohmann::json a = cell.algorithm.params;
  a["name"] = cell.algorithm.name;
  const std::string algo = cell.algorithm.params.empty() ? cell.algorithm.name : a.dump();  // JSON is YAML flow
  std::string exceptions;
  for (const OverrideSpec& o : cell.overrides)
    if (o.scheme.empty()) exceptions = fmt::format("# BF16 exceptions: {} modules\n", o.targets.size());
  const std::string name = e.name.substr(0, e.name.size() - std::string("-sensitivity").size());
  return fmt::format(
      "# Written by `quantlab search`: the verified configuration (measured KLD {:.6f} ± {:.6f}, ΔPPL {:+.4f}\n"
      "# [{:+.4f}, {:+.4f}], {:.4f} bits/weight over the searched modules, scales included{}).\n"
      "# Run: quantlab sweep THIS_FILE\n{}"
      "name: {}-recipe\nmodel: {}\ndata: {}\nprotocol: {}\nbaseline: {}\nseed: {}\nresults: {}\n"
      "targets: {}\ntied_head: {}\nlayer_error_windows: {}\nkld_top_k: {}\n"
      "overrides: {}\ngrid:\n  schemes: [{}]\n  algorithms: [{}]\n",
      measured.value("kld_mean", 0.0), measured.value("kld_se", 0.0), measured.value("dppl", 0.0),
      measured.value("dppl_lo", 0.0), measured.value("dppl_hi", 0.0), measured.value("bits_per_weight_units", 0.0),
      target.empty() ? "" : fmt::format("; target {}: {}", target, measured.value("meets_target", false) ? "met" : "NOT met"),
      exceptions, name, Abs(scan.session->model_path), Abs(e.data), scan.session->protocol.Canonical(), e.baseline,
      e.seed, Abs(scan.results_dir), nlohmann::json(e.targets).dump(), e.tied_head, e.layer_error_windows, e.kld_top_k,
      OverridesYaml(cell.overrides), cell.scheme.weights.empty() ? "none" : cell.scheme.weights, algo);
}

// What a search solves for: the knapsack's cost (SearchCost), its target in those units (-1: a byte
// budget) and, for a ΔPPL target, the baseline's PPL on every window and which end of the verified
// cell's interval must meet it.
struct SearchGoal {
  SearchCost cost = SearchCost::kKld;
  double target = -1;
  double ppl_base = 0;
  std::string bound = "point";  // point | upper | lower

  // The verified cell in the cost's units: its value and the value checked against the target.
  Measurement Measure(const CellFacts& f) const {
    if (cost == SearchCost::kKld) return {f.kld, f.kld};
    return {f.ln_ratio, bound == "upper" ? f.ln_ratio_hi : bound == "lower" ? f.ln_ratio_lo : f.ln_ratio};
  }
  std::string Describe(const SearchOptions& o) const {
    if (cost == SearchCost::kKld) return fmt::format("KLD {}", o.target_kld);
    return fmt::format("ΔPPL {} ({} of the 95% interval)", o.target_dppl,
                       bound == "point" ? "point estimate" : bound + " end");
  }
};

// ΔPPL <= D is ln(ppl / ppl_base) <= ln(1 + D / ppl_base): the additive form of the target.
StatusOr<SearchGoal> Goal(const Scan& scan, const SearchOptions& o) {
  SearchGoal g;
  if (o.target_kld >= 0) g.target = o.target_kld;
  if (o.target_dppl < 0) return g;
  if (o.dppl_bound != "upper" && o.dppl_bound != "point" && o.dppl_bound != "lower")
    return Status::Errorf("search: --dppl-bound '{}' is not one of upper, point, lower", o.dppl_bound);
  g.cost = SearchCost::kLnPpl, g.bound = o.dppl_bound;
  g.ppl_base = Perplexity(scan.session->base->nll).ppl;
  g.target = std::log1p(o.target_dppl / g.ppl_base);
  return g;
}

// One verified round as the report's JSON (kind and solve_target are added by the caller).
nlohmann::json RoundJson(const CellFacts& f, const Choice& ch, int round, const SearchGoal& g, const std::vector<Unit>& units) {
  nlohmann::json r = {{"round", round}, {"cell_id", f.id}, {"kld_mean", f.kld}, {"kld_se", f.kld_se}, {"dppl", f.dppl},
                      {"dppl_lo", f.dppl_lo}, {"dppl_hi", f.dppl_hi}, {"bits_per_weight_units", UnitsBpw(ch.bytes, units)},
                      {"bytes_units", ch.bytes}};
  if (g.cost == SearchCost::kKld) {
    r.update({{"predicted_kld", ch.cost}, {"additivity_error", f.kld - ch.cost}});
  } else {  // additivity in the additive units; the predicted ΔPPL converted back
    r.update({{"predicted_ln_ppl_ratio", ch.cost}, {"ln_ppl_ratio", f.ln_ratio}, {"ln_ppl_ratio_se", f.ln_ratio_se},
              {"additivity_error", f.ln_ratio - ch.cost}, {"predicted_dppl", g.ppl_base * std::expm1(ch.cost)}});
  }
  if (g.target >= 0) r["meets_target"] = g.Measure(f).bound <= g.target;
  return r;
}

std::string RoundLine(const nlohmann::json& r, const SearchGoal& g) {
  const std::string head = fmt::format(
      "round {} ({}{}): {:.4f} bits/weight, ", r["round"].get<int>(), r["kind"].get<std::string>(),
      r["kind"] == "rescaled" ? fmt::format(" at {} {:.6f}", g.cost == SearchCost::kKld ? "KLD" : "ln PPL ratio",
                                            r["solve_target"].get<double>())
                              : "",
      r["bits_per_weight_units"].get<double>());
  if (g.cost == SearchCost::kKld)
    return head + fmt::format("predicted KLD {:.6f}, measured {:.6f} ± {:.6f} (additivity error {:+.6f}), "
                              "ΔPPL {:+.4f} [{:+.4f}, {:+.4f}]\n",
                              r["predicted_kld"].get<double>(), r["kld_mean"].get<double>(), r["kld_se"].get<double>(),
                              r["additivity_error"].get<double>(), r["dppl"].get<double>(), r["dppl_lo"].get<double>(),
                              r["dppl_hi"].get<double>());
  return head + fmt::format("predicted ΔPPL {:+.4f} (ln PPL ratio {:.6f}), measured {:+.4f} [{:+.4f}, {:+.4f}] "
                            "(ln ratio {:.6f}, additivity error {:+.6f}), KLD {:.6f} ± {:.6f}\n",
                            r["predicted_dppl"].get<double>(), r["predicted_ln_ppl_ratio"].get<double>(),
                            r["dppl"].get<double>(), r["dppl_lo"].get<double>(), r["dppl_hi"].get<double>(),
                            r["ln_ppl_ratio"].get<double>(), r["additivity_error"].get<double>(),
                            r["kld_mean"].get<double>(), r["kld_se"].get<double>());
}

}  // namespace

StatusOr<std::unique_ptr<Scan>> RunSensitivity(const Experiment& e, const ScanOptions& o, std::ostream& log) {
  auto scan = std::make_unique<Scan>();
  scan->experiment = ScanExperiment(e, "-sensitivity");
  scan->results_dir = o.sweep.results.empty() ? e.results : o.sweep.results;
  SessionOptions so;
  so.model = o.sweep.model;
  so.baseline_cache_dir = scan->results_dir + "/baseline-cache";
  so.log = &log;
  so.prefix_budget_mb = o.prefix_budget_mb;
  QL_ASSIGN_OR_RETURN(scan->session, OpenSession(scan->experiment, ExpandGrid(scan->experiment), so));
  QL_RETURN_IF_ERROR(UseWindowRecords(scan.get()));
  QL_ASSIGN_OR_RETURN(std::vector<Unit> units, SensitivityUnits(*scan->session, o.spec.units));
  const std::vector<Cell> grid = SensitivityCells(scan->experiment, units, o.spec.schemes, o.spec.adaptive);
  int si = 0, sn = 1;
  if (!o.sweep.shard.empty()) { QL_ASSIGN_OR_RETURN(std::tie(si, sn), ParseShard(o.sweep.shard)); }
  log << fmt::format("sensitivity: {} units ({}) x {} schemes = {} cells\n", units.size(), o.spec.units,
                     o.spec.schemes.size(), grid.size());
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = ProcessCpuSeconds();
  QL_ASSIGN_OR_RETURN(SweepSummary sum, RunCells(*scan->session, grid, ShardCells(grid, si, sn), o.sweep,
                                                 scan->results_dir, log));
  log << fmt::format("sensitivity {}: {} cells, {} ok, {} failed, {} diverged, {} skipped (already recorded) in "
                     "{:.1f}s ({:.1f} CPU-s)\n",
                     e.name, sum.total, sum.ok, sum.failed, sum.diverged, sum.skipped,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                     ProcessCpuSeconds() - c0);
  QL_ASSIGN_OR_RETURN(auto store, ResultStore::OpenReadOnly(scan->results_dir));
  QL_ASSIGN_OR_RETURN(scan->table,
                      ReadSensitivity(*store, *scan->session, std::move(units), o.spec.schemes, o.spec.adaptive));
  return scan;
}

StatusOr<SearchResult> RunSearch(Scan& scan, const SearchOptions& o, std::ostream& log) {
  const SensitivityTable& t = scan.table;
  std::vector<std::string> schemes = o.schemes.empty() ? t.schemes : o.schemes;
  for (const auto& sc : schemes)
    if (std::find(t.schemes.begin(), t.schemes.end(), sc) == t.schemes.end())
      return Status::Errorf("search: --schemes '{}' is not one of the scan's schemes (sensitivity.schemes)", sc);
  QL_ASSIGN_OR_RETURN(const SearchGoal goal, Goal(scan, o));
  if (goal.cost == SearchCost::kLnPpl && t.adaptive && t.dnll_rel_se == 0 && t.dnll_se == 0 && o.refine_z > 0)
    log << "search: the adaptive scan stopped its units on KLD alone, so a ΔPPL target re-measures most options; "
           "sensitivity.adaptive's dnll_rel_se / dnll_se stop them on ΔNLL too (docs/sensitivity.md)\n";
  QL_ASSIGN_OR_RETURN(std::vector<std::vector<Option>> opts, Options(t, schemes, o.refine_z, goal.cost));
  int64_t numel = 0, base_bytes = 0;
  for (const Unit& u : t.units) numel += u.numel, base_bytes += u.baseline_bytes;
  // Buckets of the gcd of every option's bytes make the DP exact; above 2M buckets, coarser ones
  // (options rounded up: never over budget, possibly a little under).
  int64_t bucket = 0;
  for (const auto& u : opts)
    for (const Option& op : u) bucket = std::gcd(bucket, op.bytes);
  if (bucket <= 0 || base_bytes / bucket > 2'000'000) bucket = std::max<int64_t>(1, base_bytes / 2'000'000 + 1);
  const int64_t max_bytes = o.budget_bpw >= 0 ? int64_t(std::floor(o.budget_bpw * double(numel) / 8)) : -1;
  nlohmann::json refined, rounds = nlohmann::json::array();
  Cell cell;  // the last verified configuration (the recipe's)
  auto solve = [&](double target) {
    return SolveRefined(scan, o, goal.cost, max_bytes, target, bucket, &opts, &refined, log);
  };
  auto measure = [&](const Choice& ch, int round) -> StatusOr<Measurement> {
    cell = ConfigCell(scan.experiment, t.units, opts, ch, round);
    QL_ASSIGN_OR_RETURN(CellFacts f, Verify(scan, cell, log));
    rounds.push_back(RoundJson(f, ch, round, goal, t.units));
    log << fmt::format("search: round {}: predicted {:.6f}, measured {:.6f} ({})\n", round, ch.cost, CostOf(f, goal.cost),
                       goal.cost == SearchCost::kKld ? "KLD" : "ln PPL ratio");
    return goal.Measure(f);
  };
  Choice c;
  if (goal.target < 0) {
    QL_ASSIGN_OR_RETURN(c, solve(-1));
    QL_RETURN_IF_ERROR(measure(c, 0).status());
    rounds[0].update({{"kind", "solve"}, {"solve_target", -1}});
  } else {
    const TargetRules rules{o.rescale_rounds, o.max_rounds};
    QL_ASSIGN_OR_RETURN(std::vector<TargetRound> tr, SearchToTarget(&opts, goal.target, solve, measure, rules));
    for (size_t i = 0; i < tr.size(); ++i) rounds[i].update({{"kind", tr[i].kind}, {"solve_target", tr[i].solve_target}});
    c = tr.back().choice;
  }
  SearchResult out;
  if (!refined.is_null())
    out.text += fmt::format("refinement: {} options of the adaptive scan re-measured ({} passes, {} windows evaluated, "
                            "{} resumed); {} of {} options exact\n",
                            refined["options_measured"].get<int>(), refined["passes"].get<int>(),
                            refined["windows_evaluated"].get<int64_t>(), refined["windows_resumed"].get<int64_t>(),
                            refined["exact_options"].get<int>(), refined["options"].get<size_t>());
  for (const auto& r : rounds) out.text += RoundLine(r, goal);
  const bool met = goal.target < 0 || rounds.back()["meets_target"].get<bool>();
  if (!met)
    out.text += fmt::format("target {} not met after {} rounds (raise --rescale-rounds / --max-rounds)\n",
                            goal.Describe(o), rounds.size());
  nlohmann::json choice = nlohmann::json::object();
  int exceptions = 0;
  for (size_t u = 0; u < t.units.size(); ++u) {
    const std::string& sc = opts[u][size_t(c.pick[u])].scheme;
    choice[t.units[u].name] = sc.empty() ? "bf16" : sc;
    exceptions += sc.empty();
  }
  out.text += fmt::format("chosen: {} of {} units kept at baseline precision\n", exceptions, t.units.size());
  for (size_t u = 0; u < t.units.size(); ++u)
    if (opts[u][size_t(c.pick[u])].scheme != cell.scheme.weights)
      out.text += fmt::format("  {:<34} {}\n", t.units[u].name, choice[t.units[u].name].get<std::string>());
  out.text += fmt::format("  (every other unit: {})\n", cell.scheme.weights.empty() ? "bf16" : cell.scheme.weights);
  QL_ASSIGN_OR_RETURN(nlohmann::json uniform, UniformCells(scan));
  out.text += "uniform cells in the store (same model, text, protocol; no ignore set):\n";
  for (const auto& u : uniform)
    out.text += fmt::format("  {:<16} {:<6} {:.4f} bits/weight  KLD {:.6f} ± {:.6f}  ΔPPL {:+.4f} [{:+.4f}, {:+.4f}]\n",
                            u["scheme"].get<std::string>(), u["algorithm"].get<std::string>(),
                            u["bits_per_weight"].get<double>(), u["kld_mean"].get<double>(), u["kld_se"].get<double>(),
                            u["dppl"].get<double>(), u["dppl_lo"].get<double>(), u["dppl_hi"].get<double>());
  out.report = {{"rounds", rounds}, {"choice", choice}, {"bf16_units", exceptions}, {"uniform", uniform},
                {"budget_bpw", o.budget_bpw}, {"target_kld", o.target_kld}, {"target_dppl", o.target_dppl},
                {"cost", goal.cost == SearchCost::kKld ? "kld" : "ln_ppl_ratio"}, {"met", met},
                {"refinement", refined},
                {"cells_evaluated", rounds.size()}};
  if (o.target_dppl >= 0) out.report.update({{"dppl_bound", o.dppl_bound}, {"ppl_base", goal.ppl_base}});
  out.recipe = Recipe(scan, cell, rounds.back(), goal.target < 0 ? "" : goal.Describe(o));
  log.flush();
  return out;
}

}  // namespace ql
