// Task accuracy in the one cell pipeline (harness/sweep/cell_tasks.h) on stories260K: the `tasks:` key's
// checks, cell identities (unchanged without tasks; the files' contents, not their paths, in them),
// every row consistent with scoring the baseline directly, the per-item arrays, the baseline cache,
// and a sweep that stores the rows.
#include <filesystem>
#include "tests/test_paths.h"
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "harness/eval/baseline.h"
#include "harness/eval/numerics.h"
#include "harness/io/load.h"
#include "harness/quant/algorithm.h"
#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/runner.h"
#include "results/h5_arrays.h"
#include "results/report.h"
#include "results/store.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";
const std::string kTasks = std::string(QL_SHARED_DIR) + "/data/tasks/";

class TasksSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ql_tasks_sweep_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(20000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir_ / "eval.txt", std::ios::binary) << text;
    fs::copy_file(kTasks + "copa.jsonl", dir_ / "copa.jsonl");
    fs::copy_file(kTasks + "copa.jsonl", dir_ / "copa_copy.jsonl");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& n) const { return (dir_ / n).string(); }

  std::string Yaml(const std::string& tasks, const std::string& schemes = "int4:g32") const {
    return "name: t\nmodel: " + kModel + "\ndata: " + Path("eval.txt") +
           "\nprotocol: {name: llamacpp, ctx: 64, chunks: 2}\nresults: " + Path("results") + "\n" + tasks +
           "grid:\n  schemes: [" + schemes + "]\n";
  }
  std::string TwoTasks() const {
    return "tasks:\n  - {name: copa, file: " + Path("copa.jsonl") +
                                ", convention: both, limit: 12, seed: 3}\n  - {name: lambada, file: " + kTasks +
                                "lambada_openai.jsonl, limit: 4}\n";
  }

  static Experiment Parse(const std::string& yaml) {
    auto e = ParseExperiment(yaml, "t.yaml", ".");
    EXPECT_TRUE(e.ok()) << e.status().message();
    return e.ok() ? *e : Experiment{};
  }
  // The cell's id and, when `result` is set, the cell run through the pipeline.
  std::string RunOne(const Experiment& e, const std::string& cache, CellResult* result = nullptr,
                     bool* from_disk = nullptr) const {
    const std::vector<Cell> cells = ExpandGrid(e);
    SessionOptions so;
    so.baseline_cache_dir = cache;
    auto s = OpenSession(e, cells, so);
    EXPECT_TRUE(s.ok()) << s.status().message();
    if (!s.ok()) return "";
    if (from_disk) *from_disk = !(*s)->tasks.empty() && (*s)->tasks[0].from_disk;
    if (result) {
      auto plan = PlanCell(**s, cells[0]);
      EXPECT_TRUE(plan.ok());
      Model work = (*s)->reference;
      *result = RunCell(**s, work, *plan);
    }
    return DescribeCell(**s, cells[0]).id;
  }
  fs::path dir_;
};

double Row(const CellResult& r, const std::string& task, const std::string& conv, const std::string& metric) {
  for (const TaskMetricRow& t : r.task_metrics)
    if (t.task == task && t.convention == conv && t.metric == metric) return t.value;
  ADD_FAILURE() << "no row " << task << " " << conv << " " << metric;
  return NAN;
}

TEST_F(TasksSweep, KeyErrorsNameTheLine) {
  struct Case {
    std::string tasks, must_contain;
  };
  const std::string f = Path("copa.jsonl");
  for (const Case& c : {Case{"tasks:\n  - {name: copa, file: " + f + ", limt: 3}\n", "t.yaml:7: unknown key 'limt'"},
                        Case{"tasks:\n  - {name: copa, file: " + f + ", convention: lighteval}\n", "'lighteval'"},
                        Case{"tasks:\n  - {name: copa, file: " + f + "}\n  - {name: copa, file: " + f + "}\n",
                             "t.yaml:8: task name 'copa' appears twice"},
                        Case{"tasks:\n  - {name: copa, file: " + f + ", seed: 2}\n", "give a limit too"},
                        Case{"tasks:\n  - {name: 'co pa', file: " + f + "}\n", "[A-Za-z0-9_-]"},
                        Case{"tasks:\n  - {name: copa}\n", "needs 'name' and 'file'"},
                        Case{"tasks: []\n", "non-empty list"},
                        Case{"tasks:\n  - {name: copa, file: " + f + ", limit: -1}\n", "integer >= 0"}}) {
    auto e = ParseExperiment(Yaml(c.tasks), "t.yaml", ".");
    ASSERT_FALSE(e.ok()) << c.tasks;
    EXPECT_NE(e.status().message().find(c.must_contain), std::string::npos) << e.status().message();
  }
  // A missing file is found when the session opens, before anything is scored.
  const Experiment e = Parse(Yaml("tasks:\n  - {name: copa, file: " + Path("nope.jsonl") + "}\n"));
  auto s = OpenSession(e, ExpandGrid(e), {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("nope.jsonl"), std::string::npos) << s.status().message();
}

TEST_F(TasksSweep, IdentityWithoutTasksIsUnchangedAndFollowsFileContents) {
  const Experiment plain = Parse(Yaml(""));
  const nlohmann::json canon = ExpandGrid(plain)[0].CanonicalJson(plain);
  EXPECT_FALSE(canon.contains("tasks"));
  // The identity formula as it was before `tasks:` existed.
  const ContentHashes h{"m0", "d0", "", ""};
  const std::string s = canon.dump() + "\nmodel m0\ndata d0\ncalibration " + fmt::format("\nnumerics {}", kNumericsVersion);
  const uint64_t a = Fnv1a64(s.data(), s.size()), b = Fnv1a64(s.data(), s.size(), 0x84222325cbf29ce4ull);
  EXPECT_EQ(CellId(canon, h), fmt::format("{:016x}{:04x}", a, b & 0xffff));

  const std::string id_plain = RunOne(plain, "");
  const std::string task = "tasks:\n  - {name: copa, file: %, limit: 4}\n";
  auto with = [&](const std::string& file) {
    std::string t = task;
    t.replace(t.find('%'), 1, Path(file));
    return RunOne(Parse(Yaml(t)), "");
  };
  const std::string id_tasks = with("copa.jsonl");
  EXPECT_NE(id_tasks, id_plain);
  EXPECT_EQ(with("copa_copy.jsonl"), id_tasks);  // the same bytes elsewhere: the same cell
  std::ofstream(Path("copa_copy.jsonl"), std::ios::app)
      << "{\"query\": \"x\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n";
  EXPECT_NE(with("copa_copy.jsonl"), id_tasks);  // other bytes: another cell
}

TEST_F(TasksSweep, RowsMatchDirectScoringAndTheCacheIsExact) {
  const Experiment e = Parse(Yaml(TwoTasks()));
  CellResult r;
  bool from_disk = true;
  RunOne(e, Path("cache"), &r, &from_disk);
  ASSERT_EQ(r.cell.status, "ok") << r.cell.reason;
  EXPECT_FALSE(from_disk);

  // The baseline scored directly on the reference model, outside the session.
  auto model = LoadModel(kModel);
  ASSERT_TRUE(model.ok());
  const Model ref = WithPrecision(*model, BaselinePrecision::kBf16);
  auto copa = ReadTaskFile(Path("copa.jsonl"), "copa", TaskLimit{12, 3});
  ASSERT_TRUE(copa.ok());
  const TaskConvention both[] = {TaskConvention::kLmEval, TaskConvention::kLlamaCpp};
  auto base = ScoreTaskConventions(ref, *copa, both);
  ASSERT_TRUE(base.ok());
  for (const TaskScores& b : *base) {
    const std::string conv(TaskConventionName(b.convention));
    for (const TaskMetricValue& m : TaskMetrics(b)) {
      EXPECT_EQ(Row(r, "copa", conv, m.name + "_base"), m.value) << conv << " " << m.name;
      const double acc = Row(r, "copa", conv, m.name), n = Row(r, "copa", conv, "n");
      EXPECT_EQ(n, 12);
      EXPECT_DOUBLE_EQ(Row(r, "copa", conv, m.name + "_delta"), acc - m.value);
      // Δ·n is exactly the net flips.
      EXPECT_NEAR((acc - m.value) * n,
                  Row(r, "copa", conv, m.name + "_wrong_to_right") - Row(r, "copa", conv, m.name + "_right_to_wrong"),
                  1e-9);
      const double p = Row(r, "copa", conv, m.name + "_mcnemar_p");
      EXPECT_TRUE(p > 0 && p <= 1) << p;
      EXPECT_LE(Row(r, "copa", conv, m.name + "_boot_lo"), Row(r, "copa", conv, m.name + "_boot_hi"));
      EXPECT_GE(Row(r, "copa", conv, m.name + "_answer_kld"), 0);
      // The arrays say the same item by item.
      const auto& correct = r.arrays.at("task/copa/" + conv + "/" + m.name + "/correct");
      ASSERT_EQ(correct.size(), 12u);
      double sum = 0;
      for (float c : correct) sum += c;
      EXPECT_DOUBLE_EQ(sum / 12, acc);
    }
    const auto& ll_base = r.arrays.at("task/copa/" + conv + "/loglik_base");
    ASSERT_EQ(ll_base.size(), 24u);  // 12 items x 2 candidates
    EXPECT_EQ(ll_base[3], float(b.items[1].candidates[1].loglik));
  }
  EXPECT_GT(Row(r, "lambada", "lmeval", "ppl"), 1);
  EXPECT_GT(Row(r, "lambada", "lmeval", "ppl_base"), 1);
  EXPECT_EQ(r.arrays.at("task/copa/gold").size(), 12u);

  // Again from the cache: the same rows, bit for bit (speed rows aside).
  CellResult again;
  RunOne(e, Path("cache"), &again, &from_disk);
  EXPECT_TRUE(from_disk);
  ASSERT_EQ(again.task_metrics.size(), r.task_metrics.size());
  for (size_t i = 0; i < r.task_metrics.size(); ++i) {
    if (r.task_metrics[i].metric == "items_per_s") continue;
    EXPECT_EQ(again.task_metrics[i].metric, r.task_metrics[i].metric);
    EXPECT_TRUE(again.task_metrics[i].value == r.task_metrics[i].value ||
                (std::isnan(again.task_metrics[i].value) && std::isnan(r.task_metrics[i].value)))
        << r.task_metrics[i].task << " " << r.task_metrics[i].metric;
  }
}

// A weight-only cell has no forward hooks and FP32 matmuls, so its tasks take the packed scorer: its
// per-item log-likelihoods equal packed scoring of its quantized weights bit for bit, and differ from
// the one-item KV-cache path (which agrees only to float rounding), so this test sees which ran.
TEST_F(TasksSweep, WeightOnlyCellTakesThePackedScorer) {
  const Experiment e = Parse(Yaml("tasks:\n  - {name: copa, file: " + Path("copa.jsonl") +
                                  ", convention: both, limit: 12, seed: 3}\n"));
  const std::vector<Cell> cells = ExpandGrid(e);
  auto s = OpenSession(e, cells, {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto plan = PlanCell(**s, cells[0]);
  ASSERT_TRUE(plan.ok());
  ASSERT_FALSE(plan->untie_head || plan->activations || plan->kv_cache);
  Model work = (*s)->reference;
  const CellResult r = RunCell(**s, work, *plan);  // restores `work` afterwards
  ASSERT_EQ(r.cell.status, "ok") << r.cell.reason;
  // The cell's weights again: its algorithm (RTN) on a copy of the reference, as the pipeline runs it.
  Model quantized = (*s)->reference;
  AlgorithmContext ctx;
  ctx.module_schemes = &plan->module_schemes;
  ctx.params = plan->cell->algorithm.params;
  ctx.seed = e.seed;
  AlgorithmRuntime runtime;
  ctx.runtime = &runtime;
  ASSERT_TRUE(plan->algorithm->apply(quantized, ctx).ok());
  auto copa = ReadTaskFile(Path("copa.jsonl"), "copa", TaskLimit{12, 3});
  ASSERT_TRUE(copa.ok());
  const TaskConvention both[] = {TaskConvention::kLmEval, TaskConvention::kLlamaCpp};
  TaskScoreOptions one_item;
  one_item.pack_rows = 0;
  auto packed = ScoreTaskConventions(quantized, *copa, both);
  auto cached = ScoreTaskConventions(quantized, *copa, both, one_item);
  ASSERT_TRUE(packed.ok() && cached.ok());
  int differ_from_cached = 0;
  for (size_t c = 0; c < packed->size(); ++c) {
    const std::string conv(TaskConventionName((*packed)[c].convention));
    const auto& ll = r.arrays.at("task/copa/" + conv + "/loglik");
    size_t k = 0;
    for (size_t i = 0; i < (*packed)[c].items.size(); ++i)
      for (size_t j = 0; j < (*packed)[c].items[i].candidates.size(); ++j, ++k) {
        ASSERT_LT(k, ll.size());
        EXPECT_EQ(ll[k], float((*packed)[c].items[i].candidates[j].loglik)) << conv << " item " << i;
        differ_from_cached += ll[k] != float((*cached)[c].items[i].candidates[j].loglik);
      }
    EXPECT_EQ(k, ll.size());
  }
  EXPECT_GT(differ_from_cached, 0) << "the two paths agree bitwise here, so this test cannot tell them apart";
}

TEST_F(TasksSweep, SweepStoresRowsAndArrays) {
  const Experiment e = Parse(Yaml(TwoTasks(), "int8:channel, int4:g32"));
  std::ostringstream log;
  SweepOptions opt;
  opt.progress_bar = false;
  auto sum = RunSweep(e, opt, log);
  ASSERT_TRUE(sum.ok()) << sum.status().message();
  EXPECT_EQ(sum->ok, 2) << log.str();
  EXPECT_NE(log.str().find("task baseline copa lmeval (12 items, sample12:seed3)"), std::string::npos) << log.str();
  auto store = ResultStore::OpenReadOnly(Path("results"));
  ASSERT_TRUE(store.ok());
  auto q = (*store)->Query(
      "SELECT c.id, t.value FROM cells c JOIN task_metrics t ON t.cell_id = c.id WHERE t.task = 'copa' AND "
      "t.convention = 'llamacpp' AND t.metric = 'acc_per_token' ORDER BY c.id");
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->rows.size(), 2u);
  for (const auto& row : q->rows) {
    const std::string id = SqlValueToString(row[0]);
    auto correct = ReadH5Array(Path("results") + "/arrays/" + id + ".h5", "task/copa/llamacpp/acc_per_token/correct");
    ASSERT_TRUE(correct.ok()) << correct.status().message();
    double sum = 0;
    for (float c : *correct) sum += c;
    EXPECT_DOUBLE_EQ(sum / double(correct->size()), std::get<double>(row[1]));
  }
  auto per_cell = (*store)->Query("SELECT count(DISTINCT metric) FROM task_metrics GROUP BY cell_id");
  ASSERT_TRUE(per_cell.ok());
  ASSERT_EQ(per_cell->rows.size(), 2u);
  EXPECT_GT(std::get<int64_t>(per_cell->rows[0][0]), 20);

  // The report plots each accuracy metric's loss (points, baseline − cell) with its paired interval.
  auto html = RenderReportHtml(**store, {});
  ASSERT_TRUE(html.ok()) << html.status().message();
  EXPECT_NE(html->find("<h3>Task accuracy</h3>"), std::string::npos);
  EXPECT_NE(html->find("-task-copa-llamacpp-acc_per_token"), std::string::npos);
  auto d = (*store)->Query("SELECT value FROM task_metrics WHERE task = 'copa' AND convention = 'llamacpp' AND "
                           "metric = 'acc_per_token_delta' AND value IS NOT NULL ORDER BY cell_id LIMIT 1");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->rows.size(), 1u);
  const double loss = -100 * std::get<double>(d->rows[0][0]);
  EXPECT_NE(html->find(fmt::format("task-copa-llamacpp-acc_per_token {:.5g} [", loss)), std::string::npos)
      << "the point's tip carries the accuracy lost, in points";
}

}  // namespace
}  // namespace ql
