// Per-module scheme overrides (`overrides:` in an experiment file): parsing, the identity rule, the
// resolution rules (no match / overlap are errors naming the line) and the exact bytes of a mix, on
// stories260K (5 layers, tied head) at ctx 64.
#include <filesystem>
#include "tests/test_paths.h"
#include <fstream>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "harness/sweep/cell_pipeline.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";

// The evaluation text, one file per test process (ctest runs tests as parallel processes), removed at exit.
struct EvalFile {
  fs::path path = fs::temp_directory_path() / ("ql_overrides_test_" + std::to_string(std::random_device{}()) + ".txt");
  EvalFile() {
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(20000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(path, std::ios::binary) << text;
  }
  ~EvalFile() { fs::remove(path); }
};

std::string EvalText() {
  static const EvalFile f;
  return f.path.string();
}

std::string Yaml(const std::string& overrides, const std::string& schemes = "[int4:g32]") {
  return "name: ov\nmodel: " + kModel + "\ndata: " + EvalText() +
         "\nprotocol: {name: llamacpp, ctx: 64, chunks: 2}\n" + overrides + "grid:\n  schemes: " + schemes + "\n";
}

TEST(Overrides, IdentityChangesOnlyWhenPresent) {
  auto plain = ParseExperiment(Yaml(""), "t.yaml");
  auto with = ParseExperiment(Yaml("overrides: [{targets: [lm_head], scheme: bf16}]\n"), "t.yaml");
  ASSERT_TRUE(plain.ok() && with.ok()) << plain.status().message() << with.status().message();
  const nlohmann::json a = ExpandGrid(*plain)[0].CanonicalJson(*plain);
  const nlohmann::json b = ExpandGrid(*with)[0].CanonicalJson(*with);
  EXPECT_FALSE(a.contains("overrides"));
  ASSERT_TRUE(b.contains("overrides"));
  EXPECT_EQ(b["overrides"][0]["scheme"], "");  // bf16 = baseline precision
  nlohmann::json b_without = b;
  b_without.erase("overrides");
  EXPECT_EQ(a, b_without);
}

TEST(Overrides, BadEntriesAreParseErrors) {
  auto bad_scheme = ParseExperiment(Yaml("overrides:\n  - {targets: [lm_head], scheme: int99}\n"), "t.yaml");
  ASSERT_FALSE(bad_scheme.ok());
  EXPECT_NE(bad_scheme.status().message().find("t.yaml:6"), std::string::npos) << bad_scheme.status().message();
  auto no_targets = ParseExperiment(Yaml("overrides: [{scheme: int8:channel}]\n"), "t.yaml");
  EXPECT_FALSE(no_targets.ok());
  auto bad_re = ParseExperiment(Yaml("overrides: [{targets: ['re:(('], scheme: bf16}]\n"), "t.yaml");
  EXPECT_FALSE(bad_re.ok());
}

class OverridesRun : public ::testing::Test {
 protected:
  // Plans (and, with run, evaluates) the single cell of `yaml`.
  StatusOr<CellPlan> Plan(const std::string& yaml) {
    QL_ASSIGN_OR_RETURN(exp_, ParseExperiment(yaml, "t.yaml"));
    cells_ = ExpandGrid(exp_);
    if (!session_ || session_->experiment != &exp_) {
      QL_ASSIGN_OR_RETURN(session_, OpenSession(exp_, cells_, {}));
    }
    return PlanCell(*session_, cells_[0]);
  }
  Experiment exp_;
  std::vector<Cell> cells_;
  std::unique_ptr<Session> session_;
};

TEST_F(OverridesRun, NoMatchAndOverlapAreErrorsNamingTheLine) {
  auto none = Plan(Yaml("overrides:\n  - {targets: [model.layers.9.mlp.up_proj], scheme: bf16}\n"));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("t.yaml:6"), std::string::npos) << none.status().message();
  EXPECT_NE(none.status().message().find("matches no module"), std::string::npos) << none.status().message();
  auto overlap = Plan(Yaml("overrides:\n  - {targets: ['re:.*down_proj'], scheme: int8:channel}\n"
                           "  - {targets: [model.layers.1.mlp.down_proj], scheme: bf16}\n"));
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.status().message().find("t.yaml:7"), std::string::npos) << overlap.status().message();
  EXPECT_NE(overlap.status().message().find("already set by the override at t.yaml:6"), std::string::npos)
      << overlap.status().message();
}

TEST_F(OverridesRun, MixResolvesInModelOrderAndCountsExactBytes) {
  const std::string ov =
      "overrides:\n  - {targets: ['re:.*down_proj'], scheme: int8:channel}\n"
      "  - {targets: [model.layers.0.self_attn.q_proj, lm_head], scheme: bf16}\n";
  auto plan = Plan(Yaml(ov));
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  const Model& m = session_->reference;
  // Every linear but q_proj of layer 0 and the head; down_proj at int8:channel, the rest int4:g32.
  ASSERT_EQ(plan->module_schemes.size(), m.LinearModules().size() - 2);
  for (const auto& [mod, sc] : plan->module_schemes) {
    EXPECT_NE(mod, "model.layers.0.self_attn.q_proj");
    EXPECT_NE(mod, "lm_head");
    EXPECT_EQ(sc, mod.ends_with("down_proj") ? "int8:channel" : "int4:g32") << mod;
  }
  Model work = session_->reference;
  const CellResult r = RunCell(*session_, work, *plan);
  ASSERT_EQ(r.cell.status, "ok") << r.cell.reason;
  // The expected bytes from the quantizer, tensor by tensor, independently of MeasureTensors.
  int64_t quant_bytes = 0, quant_numel = 0, other_bytes = 0;
  std::set<std::string> quantized;
  for (const auto& [mod, sc] : plan->module_schemes) {
    const Tensor& w = m.W(mod + ".weight");
    auto qt = Quantize(*ParseScheme(sc), w.data.data(), w.rows(), w.cols());
    ASSERT_TRUE(qt.ok());
    quant_bytes += int64_t(qt->Bytes());
    quant_numel += w.numel();
    quantized.insert(mod + ".weight");
  }
  for (const auto& [name, t] : m.weights)
    if (!quantized.count(name)) other_bytes += 2 * t.numel();
  EXPECT_EQ(int64_t(*r.metrics->Get("model_bytes")), quant_bytes + other_bytes);
  EXPECT_DOUBLE_EQ(*r.metrics->Get("bits_per_weight"), double(quant_bytes * 8) / double(quant_numel));
  int64_t rows_bytes = 0;
  for (const auto& t : r.tensor_errors) rows_bytes += t.bytes;
  EXPECT_EQ(rows_bytes, quant_bytes);
}

TEST_F(OverridesRun, OnlyOverridesQuantizeOnlyTheirModules) {
  // weights none + one override: exactly one tensor quantized (what a sensitivity cell is).
  auto plan = Plan(Yaml("overrides: [{targets: [model.layers.2.mlp.up_proj], scheme: int3:g32}]\n", "[none]"));
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_EQ(plan->module_schemes.size(), 1u);
  EXPECT_EQ(plan->module_schemes[0].first, "model.layers.2.mlp.up_proj");
  Model work = session_->reference;
  const CellResult r = RunCell(*session_, work, *plan);
  ASSERT_EQ(r.cell.status, "ok") << r.cell.reason;
  EXPECT_GT(*r.metrics->Get("kld_mean"), 0.0);
  ASSERT_EQ(r.tensor_errors.size(), 1u);
}

}  // namespace
}  // namespace ql
