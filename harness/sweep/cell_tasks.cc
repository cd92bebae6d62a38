// Task accuracy in the cell pipeline (see cell_tasks.h).
#include "harness/sweep/cell_tasks.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/eval/baseline.h"
#include "harness/eval/numerics.h"

namespace ql {
namespace {

namespace fs = std::filesystem;

// One stat of one accuracy metric, read from its comparison.
struct StatDef {
  TaskRowStat stat;
  std::function<double(const TaskMetricComparison&)> get;
};

const std::vector<StatDef>& StatDefs() {
  static const std::vector<StatDef> kDefs = {
      {{"", "accuracy of the cell"}, [](const auto& m) { return m.paired.cell.acc; }},
      {{"_se", "its standard error sqrt(p(1-p)/(n-1))"}, [](const auto& m) { return m.paired.cell.se; }},
      {{"_base", "accuracy of the baseline on the same items"}, [](const auto& m) { return m.paired.base.acc; }},
      {{"_base_se", "its standard error"}, [](const auto& m) { return m.paired.base.se; }},
      {{"_delta", "cell − baseline accuracy"}, [](const auto& m) { return m.paired.diff; }},
      {{"_delta_se", "paired standard error sd(d)/sqrt(n)"}, [](const auto& m) { return m.paired.diff_se; }},
      {{"_delta_lo", "delta − 1.96 se"}, [](const auto& m) { return m.paired.diff_lo; }},
      {{"_delta_hi", "delta + 1.96 se"}, [](const auto& m) { return m.paired.diff_hi; }},
      {{"_boot_lo", "paired bootstrap 95% interval, low (10,000 resamples, seed 1)"},
       [](const auto& m) { return m.paired.bootstrap.lo; }},
      {{"_boot_hi", "paired bootstrap 95% interval, high"}, [](const auto& m) { return m.paired.bootstrap.hi; }},
      {{"_mcnemar_p", "exact two-sided McNemar p-value of the flips"}, [](const auto& m) { return m.paired.mcnemar_p; }},
      {{"_right_to_wrong", "items the baseline got right and the cell wrong"},
       [](const auto& m) { return double(m.paired.right_to_wrong); }},
      {{"_wrong_to_right", "items the baseline got wrong and the cell right"},
       [](const auto& m) { return double(m.paired.wrong_to_right); }},
      {{"_same_choice", "fraction of items where both choose the same candidate"},
       [](const auto& m) { return m.same_choice; }},
      {{"_answer_kld", "mean KL(base ‖ cell) of softmax over the candidates' scores (NULL for cloze)"},
       [](const auto& m) { return m.has_kl ? m.kl_mean : NAN; }},
      {{"_answer_kld_se", "its standard error"}, [](const auto& m) { return m.has_kl ? m.kl_se : NAN; }},
  };
  return kDefs;
}

std::vector<TaskConvention> ParseConventions(const TaskSpec& t) {
  std::vector<TaskConvention> out;
  for (const std::string& c : t.conventions) out.push_back(*ParseTaskConvention(c));  // checked by the parser
  return out;
}

// --- the baseline cache: <dir>/tasks-<key>.json, one file per (model, precision, file, conventions,
// limit, window, numerics version). Doubles are written with 17 significant digits (exact). ---

std::string CacheKey(const SessionTaskOptions& o, const std::string& file_hash, const TaskSpec& t, int window) {
  const std::string k = fmt::format("model {}\nprecision {}\nfile {}\nconventions {}\nlimit {}\nwindow {}\nnumerics {}",
                                    o.model_hash, o.precision, file_hash, nlohmann::json(t.conventions).dump(),
                                    TaskLimit{t.limit, t.seed}.Canonical(), window, kNumericsVersion);
  return fmt::format("{:016x}", Fnv1a64(k.data(), k.size()));
}

nlohmann::json ScoresToJson(const TaskScores& s) {
  nlohmann::json items = nlohmann::json::array();
  for (const ItemScore& it : s.items) {
    nlohmann::json c = nlohmann::json::array();
    for (const CandidateScore& k : it.candidates) c.push_back({k.loglik, k.n_tokens, k.n_chars, k.greedy});
    items.push_back({it.line, it.gold, it.truncated_tokens, c});
  }
  return {{"window", s.window}, {"tokens_forwarded", s.tokens_forwarded}, {"seconds", s.seconds}, {"items", items}};
}

// The cached scores of `set` under `c`, or false when the file does not describe exactly these items.
bool ScoresFromJson(const nlohmann::json& j, const TaskSet& set, TaskConvention c, TaskScores* s) {
  try {
    const auto& items = j.at("items");
    if (items.size() != set.items.size()) return false;
    s->task = set.name, s->path = set.path, s->shape = set.shape, s->convention = c;
    s->limit = set.limit.Canonical();
    s->window = j.at("window").get<int>();
    s->tokens_forwarded = j.at("tokens_forwarded").get<int64_t>();
    s->seconds = j.at("seconds").get<double>();
    for (size_t i = 0; i < items.size(); ++i) {
      ItemScore it;
      it.line = items[i].at(0).get<int>();
      it.gold = items[i].at(1).get<int>();
      it.truncated_tokens = items[i].at(2).get<int>();
      for (const auto& k : items[i].at(3))
        it.candidates.push_back({k.at(0).get<double>(), k.at(1).get<int>(), k.at(2).get<int>(), k.at(3).get<bool>()});
      if (it.line != set.items[i].line || int(it.candidates.size()) != set.items[i].num_candidates()) return false;
      s->items.push_back(std::move(it));
    }
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

bool LoadCached(const std::string& path, SessionTask* t) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("conventions") || j["conventions"].size() != t->conventions.size()) return false;
  std::vector<TaskScores> base(t->conventions.size());
  for (size_t c = 0; c < base.size(); ++c)
    if (!ScoresFromJson(j["conventions"][c], t->set, t->conventions[c], &base[c])) return false;
  t->base = std::move(base);
  return true;
}

Status StoreCached(const std::string& path, const SessionTask& t) {
  nlohmann::json j = {{"task", t.spec.name}, {"file", t.spec.file}, {"conventions", nlohmann::json::array()}};
  for (const TaskScores& s : t.base) j["conventions"].push_back(ScoresToJson(s));
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << j.dump();
    if (!f) return Status::Errorf("{}: cannot write the task baseline cache (check the directory)", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::Errorf("{}: cannot move the task baseline cache into place: {}", path, ec.message());
  return Status::Ok();
}

std::string Summary(const TaskScores& s) {
  std::string m;
  for (const TaskMetricValue& v : TaskMetrics(s))
    m += v.name.rfind("acc", 0) == 0 ? fmt::format(" {} {:.2f} ± {:.2f}", v.name, 100 * v.value, 100 * v.se)
                                     : fmt::format(" {} {:.3f}", v.name, v.value);
  return fmt::format("{} {} ({} items, {}):{}", s.task, TaskConventionName(s.convention), s.items.size(), s.limit, m);
}

Status ScoreBaseline(const Model& reference, const SessionTaskOptions& o, const std::string& file_hash,
                     SessionTask* t) {
  const int window = reference.config.max_seq_len;
  const std::string path =
      o.cache_dir.empty() ? "" : (fs::path(o.cache_dir) / ("tasks-" + CacheKey(o, file_hash, t->spec, window) + ".json")).string();
  if (!path.empty() && LoadCached(path, t)) {
    t->from_disk = true;
  } else {
    QL_ASSIGN_OR_RETURN(t->base, ScoreTaskConventions(reference, t->set, t->conventions));
    if (!path.empty()) {
      std::error_code ec;
      fs::create_directories(o.cache_dir, ec);
      QL_RETURN_IF_ERROR(StoreCached(path, *t));
    }
  }
  if (o.log)
    for (const TaskScores& s : t->base)
      *o.log << fmt::format("task baseline {} — {:.2f} items/s{}\n", Summary(s), s.items_per_s(),
                            t->from_disk ? " (from disk cache)" : "");
  return Status::Ok();
}

void AddArrays(const SessionTask& t, size_t c, const TaskScores& cell, CellResult* r) {
  const TaskScores& base = t.base[c];
  const std::string dir = fmt::format("task/{}/{}/", t.spec.name, TaskConventionName(cell.convention));
  std::vector<float>& gold = r->arrays["task/" + t.spec.name + "/gold"];
  std::vector<float>& ncand = r->arrays["task/" + t.spec.name + "/n_candidates"];
  const bool first = gold.empty();
  std::vector<float> ll, ll_base, ntok;
  for (size_t i = 0; i < cell.items.size(); ++i) {
    if (first) gold.push_back(float(cell.items[i].gold)), ncand.push_back(float(cell.items[i].candidates.size()));
    for (size_t k = 0; k < cell.items[i].candidates.size(); ++k) {
      ll.push_back(float(cell.items[i].candidates[k].loglik));
      ll_base.push_back(float(base.items[i].candidates[k].loglik));
      ntok.push_back(float(cell.items[i].candidates[k].n_tokens));
    }
  }
  r->arrays[dir + "loglik"] = std::move(ll);
  r->arrays[dir + "loglik_base"] = std::move(ll_base);
  r->arrays[dir + "n_tokens"] = std::move(ntok);
  for (const TaskMetricSpec& m : TaskMetricSpecs(cell.shape, cell.convention)) {
    std::vector<float> chosen;
    for (const ItemScore& it : cell.items) chosen.push_back(float(it.Chosen(m.rule)));
    const std::vector<uint8_t> cc = cell.Correct(m.rule), bc = base.Correct(m.rule);
    r->arrays[dir + std::string(m.name) + "/chosen"] = std::move(chosen);
    r->arrays[dir + std::string(m.name) + "/correct"].assign(cc.begin(), cc.end());
    r->arrays[dir + std::string(m.name) + "/correct_base"].assign(bc.begin(), bc.end());
  }
}

}  // namespace

const std::vector<TaskRowStat>& TaskRowStats() {
  static const std::vector<TaskRowStat> kStats = [] {
    std::vector<TaskRowStat> v;
    for (const StatDef& d : StatDefs()) v.push_back(d.stat);
    return v;
  }();
  return kStats;
}

const std::vector<TaskRowStat>& TaskItemRowStats() {
  static const std::vector<TaskRowStat> kStats = {
      {"n", "items scored"},
      {"truncated_items", "items whose context lost tokens on the left to fit the window"},
      {"dloglik_gold", "mean (cell − base) log-likelihood of the gold candidate, nats"},
      {"dloglik_gold_se", "its standard error"},
      {"items_per_s", "the cell's scoring speed (all conventions of the task in one pass)"},
      {"ppl", "cloze only: the cell's per-target perplexity"},
      {"ppl_base", "cloze only: the baseline's"},
      {"ppl_token", "cloze only: the cell's per-token perplexity of the targets"},
      {"ppl_token_base", "cloze only: the baseline's"},
  };
  return kStats;
}

std::vector<TaskMetricRow> TaskRows(const TaskScores& base, const TaskScores& cell, const TaskComparison& cmp) {
  std::vector<TaskMetricRow> rows;
  const std::string task = cmp.task, conv(TaskConventionName(cmp.convention));
  for (const TaskMetricComparison& m : cmp.metrics)
    for (const StatDef& d : StatDefs()) rows.push_back({task, conv, m.metric + std::string(d.stat.suffix), d.get(m)});
  rows.push_back({task, conv, "n", double(cmp.n)});
  rows.push_back({task, conv, "truncated_items", double(cell.truncated_items())});
  rows.push_back({task, conv, "dloglik_gold", cmp.dloglik_gold});
  rows.push_back({task, conv, "dloglik_gold_se", cmp.dloglik_gold_se});
  rows.push_back({task, conv, "items_per_s", cell.items_per_s()});
  if (cell.shape == TaskShape::kCloze) {
    const std::vector<TaskMetricValue> mc = TaskMetrics(cell), mb = TaskMetrics(base);
    for (size_t i = 0; i < mc.size(); ++i) {
      if (mc[i].name.rfind("ppl", 0) != 0) continue;
      rows.push_back({task, conv, mc[i].name, mc[i].value});
      rows.push_back({task, conv, mc[i].name + "_base", mb[i].value});
    }
  }
  return rows;
}

StatusOr<std::vector<SessionTask>> OpenSessionTasks(const Experiment& e, const Model& reference,
                                                    const SessionTaskOptions& o, std::string* tasks_hash) {
  tasks_hash->clear();
  std::vector<SessionTask> out;
  if (e.tasks.empty()) return out;
  std::string joined;  // "name=hash\n" per task, in file order
  std::vector<std::string> file_hashes;
  for (const TaskSpec& spec : e.tasks) {  // every file read and checked before the (slow) scoring
    SessionTask t;
    t.spec = spec;
    t.conventions = ParseConventions(spec);
    QL_ASSIGN_OR_RETURN(t.set, ReadTaskFile(spec.file, spec.name, TaskLimit{spec.limit, spec.seed}));
    QL_ASSIGN_OR_RETURN(std::string h, HashFile(spec.file));
    joined += spec.name + "=" + h + "\n";
    file_hashes.push_back(h);
    out.push_back(std::move(t));
  }
  *tasks_hash = fmt::format("{:016x}", Fnv1a64(joined.data(), joined.size()));
  for (size_t i = 0; i < out.size(); ++i) QL_RETURN_IF_ERROR(ScoreBaseline(reference, o, file_hashes[i], &out[i]));
  return out;
}

Status ScoreCellTasks(const std::vector<SessionTask>& tasks, const Model& work, const ForwardHooks* hooks,
                      CellResult* r) {
  TaskScoreOptions opt;
  opt.hooks = hooks;
  for (const SessionTask& t : tasks) {
    QL_ASSIGN_OR_RETURN(std::vector<TaskScores> cell, ScoreTaskConventions(work, t.set, t.conventions, opt));
    for (size_t c = 0; c < cell.size(); ++c) {
      QL_ASSIGN_OR_RETURN(TaskComparison cmp, CompareTask(t.base[c], cell[c]));
      for (TaskMetricRow& row : TaskRows(t.base[c], cell[c], cmp)) r->task_metrics.push_back(std::move(row));
      AddArrays(t, c, cell[c], r);
    }
  }
  return Status::Ok();
}

}  // namespace ql
