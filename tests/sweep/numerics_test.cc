// Numbers that do not move by accident. (1) Golden numbers: a few cells of the default model (weights,
// activations, KV cache, attention inputs, GPTQ) against tests/data/golden/numerics-f32x<lanes>.json,
// one file per SIMD width (kernels/gemm.h SimdFloatLanes: 16 on AVX-512, 8 on AVX2; sums group by
// lane, so the widths differ in the last bits, and GPTQ's rounding decisions amplify that; no cell here
// uses OpenBLAS, so its core does not matter: GPTQ runs on kernels/spd.h and kernels/gemm.h), each keyed
// by the numerics version (harness/eval/numerics.h): a change that moves any number must bump the
// version and regenerate the files (QL_WRITE_GOLDEN=1 ctest -R Numerics.Golden writes this machine's
// width's file; with QL_SIMD=avx2 an AVX-512 machine writes the 8-lane one). (2) Determinism:
// the same cells through the binary with 1 and 2 threads, and as two merged shards, give bitwise the
// same metrics, per-tensor and per-layer errors.
#include <filesystem>
#include "tests/test_paths.h"
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/eval/metric_table.h"
#include "harness/eval/numerics.h"
#include "harness/sweep/cell_pipeline.h"
#include "harness/util/blas.h"
#include "kernels/gemm.h"
#include "kernels/simd_target.h"
#include "results/store.h"
#include "tests/run_command.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kSource = QL_SOURCE_DIR;
// This machine's SIMD width's file.
std::string GoldenFile() {
  return kSource + "/tests/data/golden/numerics-f32x" + std::to_string(SimdFloatLanes()) + ".json";
}

std::string Experiment(const std::string& calib) {
  return "name: numerics\nmodel: " + kSource + "/models/quantlab-tiny\ndata: " + kSource +
         "/models/quantlab-tiny/heldout.txt\nprotocol: {name: llamacpp, ctx: 256, chunks: 2}\n"
         "calibration: {data: " + calib + ", samples: 2, seqlen: 64}\n"
         "grid:\n  schemes: [int4:g32, W8A8, {weights: int8:channel, kv_cache: int8:token}, "
         "{weights: int8:channel, attention: int8:token}, nvfp4]\n  algorithms: [rtn, {name: gptq, blocksize: 32}]\n"
         "  ignore: [lm_head]\n";
}

class Numerics : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(kSource + "/models/quantlab-tiny/calibration.txt", std::ios::binary);
    std::string text(40000, '\0');
    in.read(text.data(), text.size());
    text.resize(size_t(in.gcount()));
    std::ofstream(dir_ / "calib.txt", std::ios::binary) << text;
    std::ofstream(dir_ / "exp.yaml") << Experiment((dir_ / "calib.txt").string());
  }
  std::string P(const std::string& n) const { return (dir_ / n).string(); }
  qltest::TempDir dir_{"ql_numerics_test"};
};

TEST_F(Numerics, GoldenNumbersOfTheDefaultModel) {
  // QL_SIMD=avx2 on an AVX-512 machine checks (or, with QL_WRITE_GOLDEN, writes) the 8-lane file.
  ASSERT_TRUE(LimitSimdTargetFromEnvironment().ok());
  auto e = LoadExperiment(P("exp.yaml"));
  ASSERT_TRUE(e.ok()) << e.status().message();
  const auto cells = ExpandGrid(*e);
  auto s = OpenSession(*e, cells, {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  nlohmann::json got = nlohmann::json::object();
  Model work = (*s)->reference;
  for (const Cell& c : cells) {
    auto plan = PlanCell(**s, c);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const CellResult r = RunCell(**s, work, *plan);
    ASSERT_EQ(r.cell.status, "ok") << c.Label() << ": " << r.cell.reason;
    nlohmann::json m;
    for (const char* name : {"ppl", "kld_mean", "top1", "bits_per_weight"}) m[name] = *r.metrics->Get(name);
    got[c.Label()] = m;
  }
  const std::string golden = GoldenFile();
  nlohmann::json want;
  if (std::ifstream f(golden); f) want = nlohmann::json::parse(f);
  if (std::getenv("QL_WRITE_GOLDEN")) {  // this width's cells
    want = {{"numerics_version", kNumericsVersion}, {"cells", got}};
    std::ofstream(golden) << want.dump(1) << "\n";
    GTEST_SKIP() << "wrote " << golden;
  }
  ASSERT_FALSE(want.is_null()) << golden << " is missing: no golden numbers for this SIMD width (" << GemmTarget()
                               << "); QL_WRITE_GOLDEN=1 writes them";
  ASSERT_EQ(want["numerics_version"], kNumericsVersion)
      << "the golden file is of another numerics version: regenerate it (QL_WRITE_GOLDEN=1) after a bump";
  auto check = [&](const nlohmann::json& g, const nlohmann::json& w, const std::string& where) {
    ASSERT_EQ(w.size(), g.size()) << where;
    for (const auto& [label, m] : g.items())
      for (const auto& [name, v] : m.items())
        EXPECT_EQ(v.get<double>(), w[label][name].get<double>())
            << where << " " << label << " " << name << ": the numbers moved; if that is intended, bump "
            << "kNumericsVersion (harness/eval/numerics.h) and regenerate " << golden << " (and the other widths' files)";
  };
  check(got, want["cells"], "cells");
}

TEST_F(Numerics, BitwiseTheSameForThreadCountsAndShards) {
  auto sweep = [&](int threads, const std::string& results, const std::string& shard) {
    const std::string t = std::to_string(threads);
    const auto r = qltest::RunCommand("QL_NUM_THREADS=" + t + " OMP_NUM_THREADS=" + t + " OPENBLAS_NUM_THREADS=" + t +
                                      " " + QL_QUANTLAB_BIN + " sweep " + P("exp.yaml") + " --results " + P(results) +
                                      (shard.empty() ? "" : " --shard " + shard) + " --no-table 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.out;
  };
  sweep(1, "t1", "");
  sweep(2, "t2", "");
  sweep(2, "s0", "0/2");
  sweep(1, "s1", "1/2");
  const auto merged = qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " merge " + P("sm") + " " + P("s0") + " " +
                                         P("s1") + " 2>&1");
  ASSERT_EQ(merged.exit_code, 0) << merged.out;
  EXPECT_EQ(merged.out.find("missing"), std::string::npos) << merged.out;  // every shard planned the same ids
  auto store = ResultStore::Open(P("t1"));
  ASSERT_TRUE(store.ok()) << store.status().message();
  for (const std::string other : {"t2", "sm"}) {
    ASSERT_TRUE((*store)->db().Exec("ATTACH DATABASE '" + P(other) + "/results.sqlite' AS o").ok());
    for (const char* table : {"metrics", "tensor_errors", "layer_errors", "baselines"}) {
      const std::string cols = std::string(table) == "baselines" ? "model_id, dataset_id, protocol, ppl, n_tokens" : "*";
      auto diff = (*store)->Query(fmt::format("SELECT count(*) FROM (SELECT {0} FROM main.{1} EXCEPT SELECT {0} FROM o.{1})",
                                              cols, table));
      ASSERT_TRUE(diff.ok()) << diff.status().message();
      EXPECT_EQ(SqlValueToString(diff->rows[0][0]), "0") << table << " differs between t1 and " << other;
      auto n = (*store)->Query(fmt::format("SELECT count(*) FROM o.{}", table));
      EXPECT_NE(SqlValueToString(n->rows[0][0]), "0") << table;
    }
    ASSERT_TRUE((*store)->db().Exec("DETACH DATABASE o").ok());
  }
  // Every cell names what its numbers depend on besides code and config: SIMD target and BLAS kernels.
  auto hosts = (*store)->Query("SELECT DISTINCT host FROM cells");
  ASSERT_TRUE(hosts.ok()) << hosts.status().message();
  ASSERT_EQ(hosts->rows.size(), 1u);
  EXPECT_EQ(SqlValueToString(hosts->rows[0][0]), MachineDescription());
  EXPECT_NE(MachineDescription().find(" · OpenBLAS " + BlasCoreName()), std::string::npos) << MachineDescription();
}

TEST(BlasFallback, NamedOnlyForGenericKernelsOnAWideMachine) {
  const std::string note = BlasFallbackNote("Prescott", 16);  // Debian's OpenBLAS 0.3.21 on Emerald Rapids
  EXPECT_NE(note.find("Prescott kernels"), std::string::npos) << note;
  EXPECT_NE(note.find("OPENBLAS_CORETYPE=Haswell"), std::string::npos) << note;
  EXPECT_EQ(note.back(), '\n');
  EXPECT_NE(BlasFallbackNote("unknown", 8), "");
  EXPECT_EQ(BlasFallbackNote("Prescott", 4), "");  // an SSE machine: those kernels are the right ones
  for (const char* fast : {"Haswell", "Zen", "SkylakeX", "Cooperlake"}) EXPECT_EQ(BlasFallbackNote(fast, 16), "");
}

}  // namespace
}  // namespace ql
