// Experiment files: parsing, validation errors (key, line, what is allowed), grid expansion, shards,
// cell identity, target/ignore resolution on a real model.
#include "harness/sweep/experiment.h"
#include "tests/test_paths.h"

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "harness/io/load.h"
#include "harness/quant/targets.h"
#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/runner.h"

namespace ql {
namespace {

const char* kMinimal = R"(name: t
model: m.bin
data: d.txt
grid:
  schemes: [int4:g32, W8A8]
  ignore: [none, lm_head]
)";

std::string ErrorOf(const std::string& yaml) {
  auto e = ParseExperiment(yaml, "x.yaml");
  return e.ok() ? std::string("(no error)") : e.status().message();
}

TEST(Experiment, ParsesAndExpandsGrid) {
  auto e = ParseExperiment(kMinimal, "x.yaml", "/base");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->model, "/base/m.bin");
  EXPECT_EQ(e->data, "/base/d.txt");
  EXPECT_EQ(e->protocol, "llamacpp:ctx512");
  EXPECT_EQ(e->baseline, "bf16");
  ASSERT_EQ(e->schemes.size(), 2u);
  EXPECT_EQ(e->schemes[0].weights, "int4:g32");
  EXPECT_EQ(e->schemes[1].label, "W8A8");
  EXPECT_EQ(e->schemes[1].weights, "int8:channel");
  EXPECT_EQ(e->schemes[1].activations, "int8:token");
  ASSERT_EQ(e->algorithms.size(), 1u);
  EXPECT_EQ(e->algorithms[0].name, "rtn");
  const auto cells = ExpandGrid(*e);
  ASSERT_EQ(cells.size(), 4u);  // 2 schemes x 1 algorithm x 2 ignore sets
  std::set<std::string> labels;
  for (size_t i = 0; i < cells.size(); ++i) {
    EXPECT_EQ(cells[i].index, int(i));
    labels.insert(cells[i].Label());
  }
  EXPECT_EQ(labels.size(), 4u);
  EXPECT_TRUE(labels.count("W8A8 | rtn | ignore=lm_head"));
}

TEST(Experiment, SchemeNamesWinOverPresets) {
  auto e = ParseExperiment("name: t\nmodel: m\ndata: d\ngrid: {schemes: [MXFP4, W4A4_MXFP4, nvfp4]}\n", "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->schemes[0].weights, "mxfp4");
  EXPECT_EQ(e->schemes[0].activations, "");
  EXPECT_EQ(e->schemes[1].weights, "mxfp4");
  EXPECT_EQ(e->schemes[1].activations, "mxfp4");
  EXPECT_EQ(e->schemes[2].activations, "");
}

TEST(Experiment, OptionalAxesMultiply) {
  std::string y = std::string(kMinimal) + "  activations: [none, int8:token, fp8_e4m3:token]\n";
  auto e = ParseExperiment(y, "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const auto cells = ExpandGrid(*e);
  ASSERT_EQ(cells.size(), 12u);
  EXPECT_EQ(cells[0].scheme.activations, "");
  EXPECT_EQ(cells[1].scheme.activations, "int8:token");
  EXPECT_EQ(cells[2].scheme.activations, "fp8_e4m3:token");
}

TEST(Experiment, SchemeStringsAreCanonicalized) {
  std::string y = kMinimal;
  y.replace(y.find("int4:g32"), 8, "INT4-G32");
  auto e = ParseExperiment(y, "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->schemes[0].weights, "int4:g32");
}

TEST(Experiment, ErrorsNameKeyLineAndAllowed) {
  std::string m = ErrorOf("name: t\nmodel: m\ndata: d\nmodle: x\ngrid: {schemes: [int8:channel]}\n");
  EXPECT_NE(m.find("x.yaml:4"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown key 'modle'"), std::string::npos) << m;
  EXPECT_NE(m.find("allowed: name, model"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\ngrid:\n  schemes: [int8:channel]\n  ignroe: [none]\n");
  EXPECT_NE(m.find("x.yaml:6"), std::string::npos) << m;
  EXPECT_NE(m.find("'ignroe' in grid"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\ngrid:\n  schemes: [int4:g32, int9:g32]\n");
  EXPECT_NE(m.find("x.yaml:5"), std::string::npos) << m;
  EXPECT_NE(m.find("int9:g32"), std::string::npos) << m;
  EXPECT_NE(m.find("neither a scheme"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\ngrid:\n  schemes: [int4:g32]\n  ignore: [none, edgez]\n");
  EXPECT_NE(m.find("unknown ignore set 'edgez'"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\ngrid:\n  schemes: [int4:g32]\n  algorithms: [gptqq]\n");
  EXPECT_NE(m.find("unknown algorithm 'gptqq'"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\ngrid:\n  schemes: [int4:g32]\n  algorithms: [{name: rtn, damp: 0.1}]\n");
  EXPECT_NE(m.find("no parameter 'damp'"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\nprotocol: {name: llamacpp, ctx: 0}\ngrid: {schemes: [int4:g32]}\n");
  EXPECT_NE(m.find("x.yaml:4"), std::string::npos) << m;
  EXPECT_NE(m.find("ctx"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\nbaseline: fp8\ngrid: {schemes: [int4:g32]}\n");
  EXPECT_NE(m.find("baseline 'fp8' is not one of: bf16, fp32"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\ngrid: {schemes: [int4:g32, INT4:G32]}\n");
  EXPECT_NE(m.find("same cell twice"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ngrid: {schemes: [int4:g32]}\n");
  EXPECT_NE(m.find("missing required key 'data'"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: [m\n");
  EXPECT_NE(m.find("YAML syntax error"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\nignore_sets: {bad: ['re:(']}\ngrid: {schemes: [int4:g32]}\n");
  EXPECT_NE(m.find("not a valid regular expression"), std::string::npos) << m;
}

TEST(Experiment, ShardsPartitionTheGrid) {
  std::string y = "name: t\nmodel: m\ndata: d\ngrid:\n  schemes: [int8:channel, int4:g32, int3:g32, nf4, mxfp4]\n"
                  "  ignore: [none, lm_head]\n";
  auto e = ParseExperiment(y, "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const auto all = ExpandGrid(*e);
  ASSERT_EQ(all.size(), 10u);
  std::multiset<int> seen;
  for (int i = 0; i < 3; ++i)
    for (const auto& c : ShardCells(all, i, 3)) seen.insert(c.index);
  EXPECT_EQ(seen.size(), all.size());
  for (const auto& c : all) EXPECT_EQ(seen.count(c.index), 1u);
  EXPECT_TRUE(ParseShard("2/3").ok());
  EXPECT_FALSE(ParseShard("3/3").ok());
  EXPECT_FALSE(ParseShard("1").ok());
  EXPECT_FALSE(ParseShard("-1/2").ok());
  EXPECT_FALSE(ParseShard("1/2x").ok());
}

TEST(Experiment, CellIdentityIsStableAndSensitive) {
  auto e = ParseExperiment(kMinimal, "x.yaml");
  ASSERT_TRUE(e.ok());
  const auto cells = ExpandGrid(*e);
  const auto j0 = cells[0].CanonicalJson(*e);
  const ContentHashes h{"m1", "d1", ""};
  const std::string id = CellId(j0, h);
  EXPECT_EQ(id, CellId(cells[0].CanonicalJson(*e), h));
  EXPECT_EQ(id.size(), 20u);
  EXPECT_NE(id, CellId(cells[1].CanonicalJson(*e), h));
  EXPECT_NE(id, CellId(j0, {"m2", "d1", ""}));
  EXPECT_NE(id, CellId(j0, {"m1", "d2", ""}));
  EXPECT_NE(id, CellId(j0, {"m1", "d1", "c1"}));
  Experiment e2 = *e;
  e2.seed = 7;
  EXPECT_NE(id, CellId(cells[0].CanonicalJson(e2), h));
  // What does not determine the numbers stays out: the options at their defaults, and file paths.
  Experiment e3 = *e;
  e3.results = "/elsewhere";
  e3.model = "/other/copy/of/the/model";
  EXPECT_EQ(id, CellId(cells[0].CanonicalJson(e3), h));
  e3.tied_head = "untie";
  EXPECT_NE(id, CellId(cells[0].CanonicalJson(e3), h));
}

TEST(Experiment, CalibrationEntersOnlyCellsThatUseIt) {
  const std::string yaml = R"(
name: t
model: m.bin
data: d.txt
calibration: {data: c.txt, samples: 4, seqlen: 16}
grid:
  schemes: [int4:g32]
  algorithms: [rtn, gptq]
)";
  auto e = ParseExperiment(yaml, "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const auto cells = ExpandGrid(*e);
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_FALSE(cells[0].CanonicalJson(*e).contains("calibration"));  // rtn
  ASSERT_TRUE(cells[1].CanonicalJson(*e).contains("calibration"));   // gptq
  EXPECT_FALSE(cells[1].CanonicalJson(*e)["calibration"].contains("data"));  // a path, not content
  Experiment moved = *e;
  moved.calibration->data = "/somewhere/else/c.txt";
  EXPECT_EQ(cells[1].CanonicalJson(*e), cells[1].CanonicalJson(moved));
}

class TargetsOnStories : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = LoadModel(std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin");
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = new Model(std::move(*m));
  }
  static void TearDownTestSuite() { delete model_; }
  static Model* model_;
};
Model* TargetsOnStories::model_ = nullptr;

TEST_F(TargetsOnStories, ResolvesSyntaxAndRejectsEntriesMatchingNothing) {
  const Model& m = *model_;  // 5 layers x 7 linears + lm_head
  auto all = ResolveTargets(m, {"Linear"}, "targets");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 36u);
  auto down = ResolveTargets(m, {"re:.*down_proj"}, "targets");
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->size(), 5u);
  auto exact = ResolveTargets(m, {"model.layers.2.mlp.up_proj.weight"}, "targets");
  ASSERT_TRUE(exact.ok());
  ASSERT_EQ(exact->size(), 1u);
  EXPECT_EQ((*exact)[0], "model.layers.2.mlp.up_proj");
  auto none = ResolveTargets(m, {"Linear", "model.layers.9.mlp.up_proj"}, "ignore set 'x'");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("'model.layers.9.mlp.up_proj' matches no module"), std::string::npos);
  EXPECT_FALSE(ResolveTargets(m, {"re:.*dwn_proj"}, "targets").ok());
  auto minus = ResolveTargetsMinusIgnore(m, {"Linear"}, {"lm_head", "re:model\\.layers\\.0\\."}, "edges");
  ASSERT_TRUE(minus.ok());
  EXPECT_EQ(minus->size(), 36u - 1u - 7u);
  auto fl = BuiltinIgnoreSet(m, "first_last_2");
  ASSERT_TRUE(fl.ok());
  auto r = ResolveTargetsMinusIgnore(m, {"Linear"}, *fl, "first_last_2");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 36u - 4u * 7u);  // blocks 0, 1, 3, 4 of 5
  EXPECT_FALSE(BuiltinIgnoreSet(m, "nope").ok());
}

TEST_F(TargetsOnStories, Q4KMMixFollowsLlamaQuantizeWithFallbacks) {
  std::string y = "name: t\nmodel: m\ndata: d\ngrid: {schemes: [Q4_K_M]}\n";
  auto e = ParseExperiment(y, "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  auto ms = CellModuleSchemes(*model_, *e, ExpandGrid(*e)[0]);
  ASSERT_TRUE(ms.ok()) << ms.status().message();
  std::map<std::string, int> count;
  for (const auto& [mod, s] : *ms) ++count[s];
  // stories260K: rows of 64 (dim) and 172 (FFN), never whole 256-blocks. n = 5 layers: n/8 = 0, 7n/8 = 4 ->
  // layers 2 and 4 use more bits. q4_k falls back to q5_0, q6_k (v_proj in 2, 4) to q8_0, the tied head
  // (rows of 64) is q8_0, and down_proj (rows of 172, not even 32-blocks) is fp16.
  EXPECT_EQ(count["q5_0"], 5 * 5 + 3);
  EXPECT_EQ(count["q8_0"], 2 + 1);
  EXPECT_EQ(count["fp16"], 5);
  EXPECT_EQ(ms->size(), 36u);
}

}  // namespace
}  // namespace ql
