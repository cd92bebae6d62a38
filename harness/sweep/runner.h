// The sweep runner: loads the model once, builds the evaluation windows once, computes (or loads)
// the baseline once, then for each cell of its shard quantizes a working copy of the targeted
// weights in memory, evaluates against the baseline, commits the cell, and restores the weights.
// Finished cells (any status) are skipped, so running the same file again resumes.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "harness/model/model.h"
#include "harness/sweep/experiment.h"
#include "kernels/status.h"
#include "results/store.h"

namespace ql {

struct SweepOptions {
  std::string shard;          // "i/N" or "" for all cells
  std::string results;        // overrides the experiment's results directory when non-empty
  std::string model;          // overrides the experiment's model path when non-empty
  bool progress_bar = true;   // a redrawn bar on a terminal; plain lines otherwise
  int layer_error_windows = 1;  // windows used for the per-layer output error (0 = all)
};

struct SweepSummary {
  int total = 0, skipped = 0, ok = 0, failed = 0, diverged = 0;
  std::string experiment_id;
  std::string results_dir;
};

// The (module path, canonical scheme) pairs a cell quantizes: targets − ignore, each with the
// cell's weight scheme, or a mix's per-module choice (Q4_K_M: q6_k for lm_head and for v_proj /
// down_proj in llama.cpp's "use_more_bits" layers, q4_k elsewhere).
StatusOr<std::vector<std::pair<std::string, std::string>>> CellModuleSchemes(const Model& model,
                                                                            const Experiment& e,
                                                                            const Cell& cell);

StatusOr<SweepSummary> RunSweep(const Experiment& e, const SweepOptions& opt, std::ostream& log);

// The comparison table of an experiment's cells (all experiments when experiment_id is empty),
// sorted by `sort` ("dppl", "kld", "bits"): one line per cell with scheme, algorithm, ignore set,
// bits/weight, PPL, ΔPPL [95% CI], KLD mean/p99, top-1, status. kv / attention: add the kv_scheme /
// attn_scheme column (a version-1 store has no attn_scheme; decide with AnyCellSets).
std::string CompareSql(const std::string& experiment_id, const std::string& sort, bool attention = false,
                       bool kv = false);
// True when some cell of the experiment (all when empty) has a non-empty `column` ("attn_scheme",
// "kv_scheme"); false when the store has no such column.
bool AnyCellSets(ResultStore& store, const std::string& experiment_id, const std::string& column);

}  // namespace ql
