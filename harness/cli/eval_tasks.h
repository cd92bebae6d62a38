// `quantlab eval --task NAME=FILE …`: the flags as the experiment's `tasks:` key, and the task rows of
// a cell (harness/sweep/cell_tasks.h) as text and JSON. Scoring is the cell pipeline's, not here.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/sweep/cell_pipeline.h"
#include "kernels/status.h"
#include "results/store.h"

namespace ql::cli {

struct EvalTaskFlags {
  std::vector<std::string> tasks;   // NAME=FILE
  std::string convention = "lmeval";  // lmeval | llamacpp | both
  int64_t limit = 0;
  uint64_t seed = 0;
};

// The `tasks:` list the flags describe (an empty array without --task); errors name the bad flag.
StatusOr<nlohmann::json> EvalTasksJson(const EvalTaskFlags& f);

// {task: {convention: {metric: value}}} of a cell's rows (the store's names).
nlohmann::json TaskRowsJson(const std::vector<TaskMetricRow>& rows);
// {task: {convention: {metric: value, metric_se: se, items_per_s, …}}} of the session's baseline scores.
nlohmann::json BaselineTasksJson(const Session& s);

void PrintBaselineTasks(const Session& s);
// One line per (task, convention, accuracy metric): base and cell acc ± se, Δ with its normal and
// bootstrap intervals, McNemar p, flips, answer KLD.
void PrintTaskRows(const std::vector<TaskMetricRow>& rows);

}  // namespace ql::cli
