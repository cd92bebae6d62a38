// Task accuracy inside the one cell pipeline: the experiment's `tasks:` files read and scored for the
// baseline once per session (cached on disk beside the PPL baseline when a cache directory is given),
// then scored for every cell with the cell's weights and hooks and compared item by item
// (harness/eval/tasks.h CompareTask). The result is store rows (results/store.h TaskMetricRow, names
// from TaskRowStats) and per-item arrays. Not the scoring rules (harness/eval/tasks.h) nor the
// `tasks:` syntax (experiment_tasks.h).
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/tasks.h"
#include "harness/eval/tasks.h"
#include "harness/model/forward.h"
#include "harness/model/model.h"
#include "harness/sweep/experiment.h"
#include "results/store.h"

namespace ql {

// One `tasks:` entry, read and scored on the session's reference model.
struct SessionTask {
  TaskSpec spec;
  TaskSet set;
  std::vector<TaskConvention> conventions;
  std::vector<TaskScores> base;  // [conventions]: the baseline's scores, same order
  bool from_disk = false;        // the baseline scores came from the cache
};

struct SessionTaskOptions {
  std::string model_hash;  // ContentHashes::model
  std::string precision;   // the baseline precision's name (part of the cache key)
  std::string cache_dir;   // "" = no cache
  std::ostream* log = nullptr;
};

// Reads every task file (errors name the file and line), sets *tasks_hash to the hash of the files'
// contents ("" without tasks: identities of cells without tasks do not change), and scores the
// baseline on each in one joint pass per task (ScoreTaskConventions).
StatusOr<std::vector<SessionTask>> OpenSessionTasks(const Experiment& e, const Model& reference,
                                                    const SessionTaskOptions& o, std::string* tasks_hash);

// Scores `work` (the cell's quantized model) with `hooks` on every session task, compares it with the
// baseline and appends the rows to r->task_metrics and the per-item arrays to r->arrays:
//   task/<task>/gold, task/<task>/n_candidates                         [items]
//   task/<task>/<convention>/loglik, .../loglik_base, .../n_tokens     [Σ candidates] (item-major)
//   task/<task>/<convention>/<metric>/chosen, .../correct, .../correct_base   [items] (chosen −1: a
//   cloze target not decoded greedily)
Status ScoreCellTasks(const std::vector<SessionTask>& tasks, const Model& work, const ForwardHooks* hooks,
                      CellResult* r);

// The statistics stored per accuracy metric M (rows named M + suffix) and per task, in store order.
struct TaskRowStat {
  std::string_view suffix;  // "" (the cell's accuracy), "_se", "_base", "_delta", …
  std::string_view doc;
};
const std::vector<TaskRowStat>& TaskRowStats();     // per accuracy metric
const std::vector<TaskRowStat>& TaskItemRowStats(); // per (task, convention): n, dloglik_gold, …

// The rows of one (task, convention): every TaskRowStats entry of every accuracy metric, then the
// per-task ones, then cloze ppl / ppl_token of cell and baseline.
std::vector<TaskMetricRow> TaskRows(const TaskScores& base, const TaskScores& cell, const TaskComparison& cmp);

}  // namespace ql
