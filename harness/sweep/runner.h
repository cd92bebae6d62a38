// The sweep runner: opens one Session (model, windows, baseline, calibration: harness/sweep/
// cell_pipeline.h), plans every cell of its shard before running any, then for each cell runs the
// cell pipeline, commits the result and reports progress. Finished cells are skipped, so running
// the same file again resumes (failed ones too, unless retry_failed).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "harness/model/model.h"
#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/experiment.h"
#include "kernels/status.h"
#include "results/store.h"

namespace ql {

struct SweepOptions {
  std::string shard;          // "i/N" or "" for all cells
  std::string results;        // overrides the experiment's results directory when non-empty
  std::string model;          // overrides the experiment's model path when non-empty
  bool progress_bar = true;   // a redrawn bar on a terminal; plain lines otherwise
  bool retry_failed = false;  // run cells recorded as failed again (diverged and ok cells stay)
};

struct SweepSummary {
  int total = 0, skipped = 0, ok = 0, failed = 0, diverged = 0;
  int skipped_failed = 0;  // of the skipped cells, those recorded as failed
  std::string experiment_id;
  std::string results_dir;
};

StatusOr<SweepSummary> RunSweep(const Experiment& e, const SweepOptions& opt, std::ostream& log);

// The loop of RunSweep on an open session: `cells` (this shard of `grid`, the whole plan recorded
// for `status` / `merge`) planned, run unless recorded, committed under the session experiment's id
// in `results_dir`. `quantlab sensitivity` and `search` run their generated cells through it.
StatusOr<SweepSummary> RunCells(const Session& s, const std::vector<Cell>& grid, const std::vector<Cell>& cells,
                                const SweepOptions& opt, const std::string& results_dir, std::ostream& log);

// True when some cell of the experiment (all when empty) has a non-empty `column` ("attn_scheme",
// "kv_scheme"); false when the store has no such column.
bool AnyCellSets(ResultStore& store, const std::string& experiment_id, const std::string& column);
// "" when every cell of the experiment (all when empty) was computed under one numerics version;
// else a line saying which versions are mixed and how many cells each (numbers across numerics
// versions are not comparable to the last digit).
std::string NumericsNote(ResultStore& store, const std::string& experiment_id);

}  // namespace ql
