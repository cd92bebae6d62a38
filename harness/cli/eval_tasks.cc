// `quantlab eval --task` flags and output (see eval_tasks.h).
#include "harness/cli/eval_tasks.h"

#include <cmath>
#include <map>

#include <fmt/format.h>

namespace ql::cli {
namespace {

// (task, convention) -> metric -> value, in first-seen order of (task, convention).
using RowGroups = std::vector<std::pair<std::pair<std::string, std::string>, std::map<std::string, double>>>;

RowGroups Group(const std::vector<TaskMetricRow>& rows) {
  RowGroups g;
  for (const TaskMetricRow& r : rows) {
    const auto key = std::make_pair(r.task, r.convention);
    if (g.empty() || g.back().first != key) g.push_back({key, {}});
    g.back().second[r.metric] = r.value;
  }
  return g;
}

double Get(const std::map<std::string, double>& m, const std::string& k) {
  const auto it = m.find(k);
  return it == m.end() ? NAN : it->second;
}

}  // namespace

StatusOr<nlohmann::json> EvalTasksJson(const EvalTaskFlags& f) {
  nlohmann::json a = nlohmann::json::array();
  if (f.tasks.empty() && (f.limit != 0 || f.seed != 0 || f.convention != "lmeval"))
    return Status::Error("--limit, --task-seed and --task-convention need --task NAME=FILE");
  for (const std::string& spec : f.tasks) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return Status::Errorf("--task '{}' is not NAME=FILE (e.g. --task piqa=piqa.jsonl)", spec);
    nlohmann::json t = {{"name", spec.substr(0, eq)}, {"file", spec.substr(eq + 1)}, {"convention", f.convention}};
    if (f.limit) t["limit"] = f.limit;
    if (f.seed) t["seed"] = f.seed;
    a.push_back(t);
  }
  return a;
}

nlohmann::json TaskRowsJson(const std::vector<TaskMetricRow>& rows) {
  nlohmann::json j = nlohmann::json::object();
  for (const TaskMetricRow& r : rows)
    j[r.task][r.convention][r.metric] = std::isfinite(r.value) ? nlohmann::json(r.value) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json BaselineTasksJson(const Session& s) {
  nlohmann::json j = nlohmann::json::object();
  for (const SessionTask& t : s.tasks)
    for (const TaskScores& b : t.base) {
      nlohmann::json& o = j[t.spec.name][std::string(TaskConventionName(b.convention))];
      for (const TaskMetricValue& m : TaskMetrics(b)) o[m.name] = m.value, o[m.name + "_se"] = m.se;
      o["n"] = b.items.size();
      o["limit"] = b.limit;
      o["items_per_s"] = b.items_per_s();
      o["baseline_cache"] = t.from_disk ? "disk" : "computed";
    }
  return j;
}

void PrintBaselineTasks(const Session& s) {
  for (const SessionTask& t : s.tasks)
    for (const TaskScores& b : t.base) {
      std::string m;
      for (const TaskMetricValue& v : TaskMetrics(b))
        m += v.name.rfind("acc", 0) == 0 ? fmt::format("  {} {:.2f} ± {:.2f}", v.name, 100 * v.value, 100 * v.se)
                                         : fmt::format("  {} {:.3f}", v.name, v.value);
      fmt::print("task base {} {} ({} items, {}){}  | {:.2f} items/s{}\n", t.spec.name, TaskConventionName(b.convention),
                 b.items.size(), b.limit, m, b.items_per_s(), t.from_disk ? " (from disk cache)" : "");
    }
}

void PrintTaskRows(const std::vector<TaskMetricRow>& rows) {
  for (const auto& [key, m] : Group(rows)) {
    for (const auto& [name, value] : m) {
      if (!m.count(name + "_mcnemar_p")) continue;  // one line per accuracy metric
      const auto g = [&](const char* suffix) { return Get(m, name + suffix); };
      std::string kld = std::isfinite(g("_answer_kld")) ? fmt::format("  answer KLD {:.5f}", g("_answer_kld")) : "";
      fmt::print("task      {} {} {} ({:.0f} items): base {:.2f} ± {:.2f}  cell {:.2f} ± {:.2f}  Δ {:+.2f} "
                 "[{:+.2f}, {:+.2f}] boot [{:+.2f}, {:+.2f}]  McNemar p {:.3g}  flips {:.0f} right→wrong, {:.0f} "
                 "wrong→right{}\n",
                 key.first, key.second, name, Get(m, "n"), 100 * g("_base"), 100 * g("_base_se"), 100 * value,
                 100 * g("_se"), 100 * g("_delta"), 100 * g("_delta_lo"), 100 * g("_delta_hi"), 100 * g("_boot_lo"),
                 100 * g("_boot_hi"), g("_mcnemar_p"), g("_right_to_wrong"), g("_wrong_to_right"), kld);
    }
    if (m.count("ppl"))
      fmt::print("task      {} {} ppl base {:.3f} cell {:.3f}, ppl_token base {:.3f} cell {:.3f}\n", key.first,
                 key.second, Get(m, "ppl_base"), Get(m, "ppl"), Get(m, "ppl_token_base"), Get(m, "ppl_token"));
  }
}

}  // namespace ql::cli
