// The one cell pipeline through its two callers: `quantlab eval` and a one-cell `quantlab sweep` give
// the same cell id and bit-identical metrics for every kind of scheme; restoring leaves the work model
// equal to the reference; `tied_head: untie` quantizes a copy; `status` and `merge` name missing cells
// and refuse disagreeing baselines. All on stories260K (tied head, 5 layers).
#include <sys/wait.h>
#include "tests/test_paths.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/eval/metric_table.h"
#include "harness/sweep/cell_pipeline.h"
#include "results/store.h"
#include "tests/run_command.h"
#include "tests/sweep/store_rows.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";

class Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(60000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir_ / "eval.txt", std::ios::binary) << text.substr(0, 30000);
    std::ofstream(dir_ / "calib.txt", std::ios::binary) << text.substr(30000);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // An experiment with one grid entry (YAML flow text) and extra top-level lines.
  std::string Yaml(const std::string& scheme, const std::string& algo = "rtn", const std::string& extra = "") const {
    return "name: one\nmodel: " + kModel + "\ndata: " + Path("eval.txt") +
           "\nprotocol: {name: llamacpp, ctx: 64, chunks: 4}\ncalibration: {data: " + Path("calib.txt") +
           ", samples: 4, seqlen: 32}\n" + extra + "grid:\n  schemes: [" + scheme + "]\n  algorithms: [" + algo +
           "]\n";
  }

  qltest::CommandResult Quantlab(const std::string& args) const {
    return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + " 2>&1");
  }

  qltest::TempDir dir_{"ql_pipeline_test"};
};

TEST_F(Pipeline, EvalEqualsAOneCellSweepForEverySchemeKind) {
  struct Case {
    std::string yaml_scheme, yaml_algo, eval_flags;
  };
  const std::vector<Case> cases = {
      {"int4:g32", "rtn", "--scheme int4:g32"},
      {"W8A8", "rtn", "--scheme W8A8"},
      {"{weights: int8:channel, kv_cache: int8:token}", "rtn", "--scheme int8:channel --kv-cache int8:token"},
      {"{weights: int8:channel, attention: {q: int8:token, p: fp8_e4m3:noscale}}", "rtn",
       "--scheme int8:channel --attn-q int8:token --attn-p fp8_e4m3:noscale"},
      {"int4:g32", "{name: gptq, blocksize: 32}", "--scheme int4:g32 --algorithm gptq --param blocksize=32 --calib " +
                                                      Path("calib.txt") + " --calib-samples 4 --calib-seqlen 32"},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string yaml = Path("exp" + std::to_string(n) + ".yaml"), results = Path("res" + std::to_string(n++));
    std::ofstream(yaml) << Yaml(c.yaml_scheme, c.yaml_algo);
    const auto sweep = Quantlab("sweep " + yaml + " --results " + results + " --no-table");
    ASSERT_EQ(sweep.exit_code, 0) << sweep.out;
    const auto eval = qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " eval --model " + kModel + " --data " +
                                         Path("eval.txt") + " --ctx 64 --chunks 4 " + c.eval_flags + " --json 2>&1");
    ASSERT_EQ(eval.exit_code, 0) << eval.out;
    const auto j = nlohmann::json::parse(eval.out);
    std::string cols = "c.id";
    for (const MetricDef& d : MetricTable()) cols += ", m." + std::string(d.name);
    const SqlResult r = Rows(results, "SELECT " + cols + " FROM cells c JOIN metrics m ON m.cell_id = c.id");
    ASSERT_EQ(r.rows.size(), 1u) << c.eval_flags;
    EXPECT_EQ(SqlValueToString(r.rows[0][0]), j["cell_id"].get<std::string>()) << c.eval_flags;
    for (size_t i = 0; i < MetricTable().size(); ++i) {
      const std::string name(MetricTable()[i].name);
      const SqlValue& v = r.rows[0][i + 1];
      if (std::holds_alternative<std::monostate>(v)) {
        EXPECT_TRUE(j[name].is_null()) << name;
        continue;
      }
      const double stored = std::holds_alternative<double>(v) ? std::get<double>(v) : double(std::get<int64_t>(v));
      EXPECT_EQ(stored, j[name].get<double>()) << c.eval_flags << ": " << name;  // bitwise
    }
  }
}

TEST_F(Pipeline, RestoreLeavesTheReferenceAndUntieQuantizesACopy) {
  const std::string yaml = Yaml("int4:g32", "rtn, gptq, {name: rotation, r4: false}", "tied_head: untie\n");
  auto e = ParseExperiment(yaml, "t.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const auto cells = ExpandGrid(*e);
  auto s = OpenSession(*e, cells, {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE((*s)->reference.config.tied_embeddings);
  Model work = (*s)->reference;
  for (const Cell& c : cells) {
    auto plan = PlanCell(**s, c);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    EXPECT_TRUE(plan->untie_head);
    const CellResult r = RunCell(**s, work, *plan);
    ASSERT_EQ(r.cell.status, "ok") << c.Label() << ": " << r.cell.reason;
    // The copy is quantized, the embedding is kept: 35 linears + lm_head.weight, no embed_tokens.
    EXPECT_EQ(r.tensor_errors.size(), 36u);
    bool head = false;
    for (const auto& t : r.tensor_errors) {
      head |= t.tensor == "lm_head.weight";
      EXPECT_NE(t.tensor, "model.embed_tokens.weight");
    }
    EXPECT_TRUE(head);
    // Back to the reference, bit for bit, whatever the algorithm changed.
    EXPECT_TRUE(work.config.tied_embeddings) << c.Label();
    EXPECT_EQ(work.weights.size(), (*s)->reference.weights.size()) << c.Label();
    for (const auto& [name, t] : (*s)->reference.weights)
      EXPECT_EQ(work.W(name).data, t.data) << c.Label() << ": " << name;
  }
}

TEST_F(Pipeline, SharedAndUntiedHeadsAreDifferentCells) {
  auto run = [&](const std::string& extra) {
    auto e = ParseExperiment(Yaml("int4:g32", "rtn", extra), "t.yaml");
    EXPECT_TRUE(e.ok());
    const auto cells = ExpandGrid(*e);
    auto s = OpenSession(*e, cells, {});
    EXPECT_TRUE(s.ok());
    Model work = (*s)->reference;
    return RunCell(**s, work, *PlanCell(**s, cells[0]));
  };
  const CellResult shared = run(""), untied = run("tied_head: untie\n");
  EXPECT_NE(shared.cell.id, untied.cell.id);
  // Untying keeps the input embedding exact: the two differ, and the untied model stores one tensor more.
  EXPECT_NE(shared.metrics->Get("kld_mean"), untied.metrics->Get("kld_mean"));
  EXPECT_GT(*untied.metrics->Get("model_bytes"), *shared.metrics->Get("model_bytes"));
}

// HQQ stores an fp16 zero point per group where int4:g32:asym packs a 4-bit one: 12 more bits per group of 32
// (+0.375 bits/weight) in the cell's model_bytes and bits_per_weight, and none with `zero: int`. The fix enters the
// identity as algorithm.revision (hqq only) and lut<b>'s exact k-means as format_revision (lut cells only).
TEST_F(Pipeline, HqqCountsItsFp16ZeroPointsAndFixesEnterOnlyTheirCellsIds) {
  auto e = ParseExperiment(Yaml("int4:g32:asym, lut4:channel", "rtn, hqq, {name: hqq, zero: int}"), "t.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::vector<Cell> cells;
  for (const Cell& c : ExpandGrid(*e))
    if (c.scheme.weights == "int4:g32:asym" || c.algorithm.name == "rtn") cells.push_back(c);
  ASSERT_EQ(cells.size(), 4u);  // rtn, hqq, hqq zero=int on int4:g32:asym; rtn on lut4:channel
  auto s = OpenSession(*e, cells, {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  std::vector<CellResult> r;
  for (const Cell& c : cells) {
    Model work = (*s)->reference;
    r.push_back(RunCell(**s, work, *PlanCell(**s, c)));
    ASSERT_TRUE(r.back().metrics) << c.Label();
  }
  const CellResult &rtn = r[0], &hqq = r[1], &hqq_int = r[2], &lut = r[3];
  ASSERT_EQ(hqq.tensor_errors.size(), rtn.tensor_errors.size());
  int64_t extra = 0;  // Σ over tensors of 2 bytes per group − the scheme's packed 4-bit zeros
  bool whole_groups = true;
  for (const TensorErrorRow& t : rtn.tensor_errors) {
    const Tensor& w = (*s)->reference.W(t.tensor == "lm_head.weight" ? "model.embed_tokens.weight" : t.tensor);
    const int64_t groups = w.rows() * ((w.cols() + 31) / 32);
    extra += 2 * groups - (groups * 4 + 7) / 8;
    whole_groups = whole_groups && w.cols() % 32 == 0 && groups % 2 == 0;
  }
  EXPECT_GT(extra, 0);
  EXPECT_EQ(*hqq.metrics->Get("model_bytes") - *rtn.metrics->Get("model_bytes"), double(extra));
  EXPECT_EQ(*hqq_int.metrics->Get("model_bytes"), *rtn.metrics->Get("model_bytes"));
  EXPECT_EQ(*hqq_int.metrics->Get("bits_per_weight"), *rtn.metrics->Get("bits_per_weight"));
  if (whole_groups) EXPECT_NEAR(*hqq.metrics->Get("bits_per_weight") - *rtn.metrics->Get("bits_per_weight"), 0.375, 1e-12);
  EXPECT_GT(*hqq.metrics->Get("bits_per_weight"), *rtn.metrics->Get("bits_per_weight") + 0.3);
  auto config = [](const CellResult& c) { return nlohmann::json::parse(c.cell.config); };
  EXPECT_EQ(config(hqq)["algorithm"]["revision"], 1);
  EXPECT_EQ(config(hqq_int)["algorithm"]["revision"], 1);
  EXPECT_FALSE(config(rtn)["algorithm"].contains("revision"));
  EXPECT_FALSE(config(rtn).contains("format_revision"));
  EXPECT_EQ(config(lut)["format_revision"], 1);
  EXPECT_FALSE(config(lut)["algorithm"].contains("revision"));
}

TEST_F(Pipeline, StatusAndMergeNameMissingCellsAndRefuseDisagreeingBaselines) {
  std::ofstream(Path("grid.yaml")) << Yaml("int8:channel, int4:g32, int3:g32, mxfp4");
  ASSERT_EQ(Quantlab("sweep " + Path("grid.yaml") + " --shard 0/2 --results " + Path("a") + " --no-table").exit_code, 0);
  ASSERT_EQ(Quantlab("sweep " + Path("grid.yaml") + " --shard 1/2 --results " + Path("b") + " --no-table").exit_code, 0);

  const auto half = Quantlab("merge " + Path("m1") + " " + Path("a"));
  ASSERT_EQ(half.exit_code, 0) << half.out;
  EXPECT_NE(half.out.find("2 of 4 cells missing"), std::string::npos) << half.out;
  EXPECT_NE(half.out.find("int4:g32"), std::string::npos) << half.out;  // cell 1 is shard 1's
  const auto st = Quantlab("status " + Path("m1") + " " + Path("grid.yaml") + " --list");
  EXPECT_EQ(st.exit_code, 3) << st.out;
  EXPECT_NE(st.out.find("4 cells: 2 ok, 0 failed, 0 diverged, 2 missing"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("missing"), std::string::npos);

  const auto full = Quantlab("merge " + Path("m2") + " " + Path("a") + " " + Path("b"));
  ASSERT_EQ(full.exit_code, 0) << full.out;
  EXPECT_EQ(full.out.find("missing"), std::string::npos) << full.out;
  EXPECT_EQ(Quantlab("status " + Path("m2")).exit_code, 0);

  // A shard whose baseline came out different (another thread count, code or machine) is refused.
  {
    auto b = ResultStore::Open(Path("b"));
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE((*b)->db().Exec("UPDATE baselines SET ppl = ppl * (1 + 1e-12)").ok());
  }
  const auto bad = Quantlab("merge " + Path("m3") + " " + Path("a") + " " + Path("b"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("different numbers"), std::string::npos) << bad.out;
}

TEST_F(Pipeline, OlderMetricColumnsAreAddedAndMerge) {
  std::ofstream(Path("g.yaml")) << Yaml("int8:channel");
  ASSERT_EQ(Quantlab("sweep " + Path("g.yaml") + " --results " + Path("old") + " --no-table").exit_code, 0);
  {  // As written before kld_se existed.
    auto s = ResultStore::Open(Path("old"));
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->db().Exec("ALTER TABLE metrics DROP COLUMN kld_se").ok());
  }
  ASSERT_EQ(Quantlab("merge " + Path("new") + " " + Path("old")).exit_code, 0);
  const SqlResult r = Rows(Path("new"), "SELECT kld_mean, kld_se FROM metrics");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<double>(r.rows[0][0]));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r.rows[0][1]));  // not measured then: NULL
  auto reopened = ResultStore::Open(Path("old"));  // a writer adds the column back
  ASSERT_TRUE(reopened.ok()) << reopened.status().message();
  EXPECT_TRUE((*reopened)->Query("SELECT kld_se FROM metrics").ok());
}

TEST_F(Pipeline, NothingToQuantizeIsAnErrorNotACell) {
  // An ignore set that swallows every target would record "ok" cells at 0 bits/weight and ΔPPL 0.
  auto e = ParseExperiment(Yaml("int4:g32", "rtn", "ignore_sets: {all: [\"re:.*\"]}\n") + "  ignore: [all]\n", "t.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const auto cells = ExpandGrid(*e);
  auto s = OpenSession(*e, cells, {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto plan = PlanCell(**s, cells[0]);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("leaves none of the targets"), std::string::npos) << plan.status().message();
  EXPECT_FALSE(ParseExperiment(Yaml("int4:g32") + "  ignore: []\n", "t.yaml").ok());
}

TEST(MetricTable, NamesAreUniqueAndTheReadmeListsExactlyThem) {
  std::set<std::string_view> names;
  for (const MetricDef& d : MetricTable()) {
    EXPECT_TRUE(names.insert(d.name).second) << d.name;
    EXPECT_FALSE(d.doc.empty()) << d.name;
  }
  std::ifstream f(std::string(QL_SOURCE_DIR) + "/results/README.md");
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_NE(ss.str().find(MetricTableMarkdown()), std::string::npos)
      << "results/README.md's metrics table differs from the descriptors; paste this:\n" << MetricTableMarkdown();
}

}  // namespace
}  // namespace ql
