// Sensitivity scans and mixed-precision search, built on ordinary cells: a unit (a module, a layer, a
// module type, …) quantized alone is a cell with one override (everything else at baseline precision),
// and a searched configuration is a cell with an override per scheme; both run through RunCell and
// the store like sweep cells, so resume, shards and merge apply. Not the evaluation (cell_pipeline.h).
#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/experiment.h"
#include "harness/sweep/runner.h"
#include "kernels/status.h"
#include "results/store.h"

namespace ql {

// A group of modules that gets one scheme: named, with its module paths (the targets of its override).
struct Unit {
  std::string name;                  // "model.layers.3.mlp.down_proj", "layer 3", "down_proj", "lm_head"
  std::vector<std::string> modules;  // in the model's order
  int64_t numel = 0;                 // weights in its tensors (a tied head counts its one tensor once)
  int64_t baseline_bytes = 0;        // at the baseline precision
};

// The experiment's resolved targets grouped by `how` (module | layer | type | layer_type; layer_type is a
// module: one linear per layer and type). lm_head is its own unit under layer and type.
StatusOr<std::vector<Unit>> SensitivityUnits(const Session& s, const std::string& how);

// One cell per (unit, scheme), unit-major: grid weights none, one override {unit's modules: scheme},
// the experiment's first algorithm, no ignore set; adaptive when `adaptive` is set.
std::vector<Cell> SensitivityCells(const Experiment& e, const std::vector<Unit>& units,
                                   const std::vector<std::string>& schemes,
                                   const std::optional<AdaptiveSpec>& adaptive = std::nullopt);

// What the store holds for one cell (absent when not recorded as ok).
struct CellFacts {
  std::string id;
  double kld = 0, kld_se = 0, dppl = 0, dppl_lo = 0, dppl_hi = 0, top1 = 0, bits_per_weight = 0;
  int64_t model_bytes = 0;
  int64_t quant_bytes = 0;     // sum of its quantized tensors' bytes
  double weight_sqnr_db = 0;   // pooled over its quantized tensors: 10 log10(Σ signal / Σ noise)
  double out_rel_mse = 0;      // relative error of the last block's output
  int eval_windows = 0;        // windows the metrics cover (0: not recorded, a store from before)
  // ln(ppl / ppl_base) = the mean per-token NLL difference, and the ln of its paired 95% interval's
  // ends, from the stored ppl_ratio columns; ln_ratio_se its paired standard error (ln_ppl_ratio_se).
  double ppl_base = 0, ln_ratio = 0, ln_ratio_lo = 0, ln_ratio_hi = 0, ln_ratio_se = 0;
};
StatusOr<std::optional<CellFacts>> ReadCellFacts(ResultStore& store, const std::string& cell_id);

struct SensitivityRow {
  const Unit* unit = nullptr;
  std::string scheme;
  std::optional<CellFacts> facts;
};
struct SensitivityTable {
  std::vector<Unit> units;
  std::vector<std::string> schemes;
  std::vector<SensitivityRow> rows;            // unit-major, as SensitivityCells
  std::vector<double> rho_sqnr, rho_out;       // per scheme: Spearman ρ of proxy vs measured KLD ranking
  bool adaptive = false;                       // the units were evaluated adaptively (see AdaptiveSpec)
  double rel_se = 0;                           // the adaptive rule's relative standard error at a stop
  double dnll_rel_se = 0, dnll_se = 0;         // its ΔNLL rule's bounds (AdaptiveSpec; 0: not used)
  int total_windows = 0;                       // the protocol's windows
};
StatusOr<SensitivityTable> ReadSensitivity(ResultStore& store, const Session& s, std::vector<Unit> units,
                                           const std::vector<std::string>& schemes,
                                           const std::optional<AdaptiveSpec>& adaptive = std::nullopt);
std::string FormatSensitivity(const SensitivityTable& t);
// Every (unit, scheme) of the table is recorded (a shard's table is not, until the shards are merged).
bool ScanComplete(const SensitivityTable& t);
nlohmann::json SensitivityJson(const SensitivityTable& t);

// Spearman rank correlation (ties get their mean rank); NaN for fewer than 2 points or no spread.
double Spearman(const std::vector<double>& a, const std::vector<double>& b);

// What a unit's cost measures, so that costs add up over units: the mean KLD (nearly additive), or
// Δ ln PPL = ln(ppl / ppl_base) = the mean per-token NLL difference (additive to first order, where ΔPPL
// itself is not: a configuration's predicted ΔPPL is ppl_base · (exp(Σ Δ ln PPL) − 1)). A Δ ln PPL can
// be negative (a unit whose rounding happens to help this text); it is taken as measured.
enum class SearchCost { kKld, kLnPpl };

// The multiple-choice knapsack on measured per-unit costs: for each unit one option (index into
// options[u]), minimizing Σ cost subject to Σ bytes <= max_bytes (max_bytes >= 0), or, with
// max_kld >= 0, minimizing Σ bytes subject to Σ cost <= max_kld. Exact DP over bytes in buckets of
// `bucket` bytes, each option's bytes rounded up (so the exact total never exceeds the budget).
struct Option {
  std::string scheme;  // "" = keep baseline precision
  int64_t bytes = 0;
  double cost = 0;     // measured cost of the unit alone (SearchCost: ΔKLD or Δ ln PPL; 0 for the baseline)
  double spread = 0;   // half-width of the interval the full-window cost lies in (0: known exactly)
  bool exact = true;   // cost measured on every window (the baseline, a full scan, a refined option)
  // [windows] the cost's sum over each window's scored tokens (KLD, or NLL difference) where the option
  // ran it, NaN where it did not; empty = not known (then only `spread` bounds it). Lets `search`
  // compare two options of a unit paired, on the windows both ran (search_refine.h).
  std::vector<double> window_cost = {};
  int windows = 0;     // windows the cost is over when not exact (the first of the seeded order)
};
struct Choice {
  std::vector<int> pick;  // per unit
  int64_t bytes = 0;
  double cost = 0;
};
StatusOr<Choice> SolveKnapsack(const std::vector<std::vector<Option>>& options, int64_t max_bytes, double max_kld,
                               int64_t bucket);

// The configuration as one cell: grid weights = the most used scheme, overrides for the others.
Cell ConfigCell(const Experiment& e, const std::vector<Unit>& units, const std::vector<std::vector<Option>>& options,
                const Choice& c, int index);

// `quantlab sensitivity`: runs (resumably, sharded) the scan of `spec` and returns its table (every
// unit and scheme of the whole scan; units of other shards show as missing until merged).
struct ScanOptions {
  SweepOptions sweep;     // shard, results, model
  SensitivitySpec spec;   // the file's sensitivity: block, or the CLI's
  int64_t prefix_budget_mb = 1024;  // prefix reuse (SessionOptions::prefix_budget_mb); 0 = off
};
struct Scan {
  std::unique_ptr<Session> session;
  Experiment experiment;  // the file's, named "<name>-sensitivity" (its own experiment id)
  SensitivityTable table;
  std::string results_dir;
};
StatusOr<std::unique_ptr<Scan>> RunSensitivity(const Experiment& e, const ScanOptions& o, std::ostream& log);

// `quantlab search`: solve on the scan's measured costs (candidates = `schemes`, a subset of the scan's,
// plus keeping the baseline), verify the choice as a cell; when it misses its target, solve again at
// the target rescaled by the measured additivity (up to `rescale_rounds`), then repair greedily up to
// `max_rounds` times (search_target.h); compare with the uniform cells of the store.
struct SearchOptions {
  double budget_bpw = -1;       // bits per weight over the units' tensors (scales included), or
  double target_kld = -1;       // a KLD target, or
  double target_dppl = -1;      // a ΔPPL target (perplexity points on the evaluation text), on Δ ln PPL costs
  // What meets target_dppl: the verified cell's paired 95% interval's "upper" end <= D (the default: the
  // change is below D with 95% confidence on this text), its "point" estimate, or its "lower" end (D
  // not excluded; at D = 0: the interval contains 0).
  std::string dppl_bound = "upper";
  std::vector<std::string> schemes;  // empty = every scheme of the scan
  int rescale_rounds = 3;  // solves at target × predicted / measured after a miss
  int max_rounds = 3;      // greedy repairs after those
  // After an adaptive scan: re-measure on every window the options the choice depends on (DecisionOptions
  // with intervals cost ± refine_z · max(rel_se · cost, se) and prices within a factor refine_slack),
  // re-solve, repeat until none is left. refine_z = 0: solve on the adaptive costs as they are.
  double refine_z = 3;
  double refine_slack = 1.5;
  // Compare a unit's options paired, on the windows both ran (search_refine.h, PairedWindows); false:
  // each option's own interval (the rule before).
  bool refine_paired = true;
  // Extend a decision option by doubling its windows (resumed from its window records) and decide
  // again after each step, instead of measuring it on every window at once; an option whose decision
  // separates stops there (search_refine.h, SolveAndRefine). Off by default: on stories260K (z 2, slack
  // 1, KLD target 0.05) it gave one unit another choice than the full scan (docs/sensitivity.md).
  bool refine_doubling = false;
  // With refine_doubling, each step takes an option of n windows to max(n + 1, ⌈refine_growth · n⌉)
  // (2: doubling, the rule before 2026-12-02's certificate; 1.25 measured fewer windows on the default
  // model's five bench searches, 951 against 1063, the same answers: docs/sensitivity.md).
  double refine_growth = 1.25;
  // For a byte budget, measure what the choice's certificate by exchanges needs (search_refine.h,
  // ExchangeRivals: no price slack); false: the price slack's rivals, as a KLD or ΔPPL target does.
  bool refine_exchange = true;
};
struct SearchResult {
  nlohmann::json report;   // predicted vs measured per round, the choice, the uniform comparison
  std::string text;        // the same, printed
  std::string recipe;      // YAML experiment reproducing the final verified cell
};
StatusOr<SearchResult> RunSearch(Scan& scan, const SearchOptions& o, std::ostream& log);

}  // namespace ql
