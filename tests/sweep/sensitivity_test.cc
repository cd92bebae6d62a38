// Sensitivity scans and the mixed-precision search: Spearman ρ against hand-computed values, the
// knapsack against brute force, and a scan + search + recipe on stories260K at ctx 64 (units are
// resumable cells, per-unit bytes exact, the verified cell within budget, the recipe is that cell).
#include "harness/sweep/sensitivity.h"
#include "tests/test_paths.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "kernels/quantizer.h"
#include "kernels/scheme.h"
#include "harness/quant/quant_util.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

TEST(Spearman, HandComputedValues) {
  EXPECT_DOUBLE_EQ(Spearman({1, 2, 3, 4}, {10, 20, 30, 45}), 1.0);
  EXPECT_DOUBLE_EQ(Spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  // Ties share their mean rank: ranks (0, 1.5, 1.5, 3) vs (0, 1, 2, 3): 4.5 / sqrt(4.5 * 5).
  EXPECT_NEAR(Spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 4.5 / std::sqrt(22.5), 1e-12);
  EXPECT_TRUE(std::isnan(Spearman({1}, {2})));
  EXPECT_TRUE(std::isnan(Spearman({1, 1, 1}, {1, 2, 3})));
}

// Every combination of options: (least cost within max_bytes, fewest bytes within max_kld).
std::pair<double, int64_t> BruteForce(const std::vector<std::vector<Option>>& opts, int64_t max_bytes, double max_kld) {
  double best_cost = INFINITY;
  int64_t best_bytes = INT64_MAX;
  std::vector<size_t> k(opts.size(), 0);
  while (true) {
    double c = 0;
    int64_t b = 0;
    for (size_t u = 0; u < opts.size(); ++u) c += opts[u][k[u]].cost, b += opts[u][k[u]].bytes;
    if (b <= max_bytes) best_cost = std::min(best_cost, c);
    if (c <= max_kld) best_bytes = std::min(best_bytes, b);
    size_t u = 0;
    while (u < opts.size() && ++k[u] == opts[u].size()) k[u++] = 0;
    if (u == opts.size()) break;
  }
  return {best_cost, best_bytes};
}

TEST(Knapsack, ExactAgainstBruteForce) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> bytes(1, 40);
  std::uniform_real_distribution<double> cost(0, 1);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::vector<Option>> opts(1 + trial % 6);
    for (auto& o : opts)
      for (int k = 0; k < 1 + trial % 4; ++k) o.push_back({"s" + std::to_string(k), bytes(rng), cost(rng)});
    const int64_t budget = 15 * int64_t(opts.size());
    const double target = 0.4 * double(opts.size());
    const auto [want_cost, want_bytes] = BruteForce(opts, budget, target);
    auto by_budget = SolveKnapsack(opts, budget, -1, 1);
    ASSERT_EQ(by_budget.ok(), std::isfinite(want_cost)) << trial;
    if (by_budget.ok()) {
      EXPECT_NEAR(by_budget->cost, want_cost, 1e-12) << trial;
      EXPECT_LE(by_budget->bytes, budget);
    }
    auto by_target = SolveKnapsack(opts, -1, target, 1);
    ASSERT_EQ(by_target.ok(), want_bytes != INT64_MAX) << trial;
    if (by_target.ok()) {
      EXPECT_EQ(by_target->bytes, want_bytes) << trial;
      EXPECT_LE(by_target->cost, target + 1e-12);
    }
  }
}

TEST(Knapsack, BucketsNeverExceedTheBudget) {
  const std::vector<std::vector<Option>> opts = {{{"a", 7, 1.0}, {"b", 13, 0.1}}, {{"a", 7, 1.0}, {"b", 13, 0.2}}};
  // Exact: 13 + 7 = 20 fits a budget of 20; in buckets of 4 (rounded up: 4 + 2 = 6 buckets > 5) it does not.
  auto c = SolveKnapsack(opts, 20, -1, 4);
  ASSERT_TRUE(c.ok());
  EXPECT_LE(c->bytes, 20);
  EXPECT_EQ(c->bytes, 14);
}

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(20000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir_ / "eval.txt", std::ios::binary) << text;
  }
  std::string Yaml() const {
    return "name: sens\nmodel: " + std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin\ndata: " +
           (dir_ / "eval.txt").string() + "\nprotocol: {name: llamacpp, ctx: 64, chunks: 2}\nresults: " +
           (dir_ / "res").string() + "\nsensitivity: {units: layer, schemes: [int4:g32, int3:g32]}\n"
           "grid:\n  schemes: [int4:g32, int3:g32]\n";
  }
  qltest::TempDir dir_{"ql_sensitivity_test"};
};

TEST_F(ScanTest, ScanSearchRecipe) {
  auto e = ParseExperiment(Yaml(), "sens.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::ostringstream log;
  SweepOptions so;
  so.progress_bar = false;
  ASSERT_TRUE(RunSweep(*e, so, log).ok());  // the uniform cells to compare against
  ScanOptions o;
  o.spec = *e->sensitivity;
  auto scan = RunSensitivity(*e, o, log);
  ASSERT_TRUE(scan.ok()) << scan.status().message();
  const SensitivityTable& t = (*scan)->table;
  ASSERT_EQ(t.units.size(), 6u);  // 5 layers + lm_head
  ASSERT_EQ(t.rows.size(), 12u);
  const Model& m = (*scan)->session->reference;
  for (const SensitivityRow& r : t.rows) {
    ASSERT_TRUE(r.facts) << r.unit->name << " " << r.scheme;
    EXPECT_GT(r.facts->kld, 0.0);
    int64_t want = 0;  // the unit's bytes at the scheme, from the quantizer
    for (const std::string& mod : r.unit->modules) {
      const Tensor& w = m.W(WeightKey(m, mod));
      want += int64_t(Quantize(*ParseScheme(r.scheme), w.data.data(), w.rows(), w.cols())->Bytes());
    }
    EXPECT_EQ(r.facts->quant_bytes, want) << r.unit->name;
  }
  // Resumable: the same scan again runs nothing and reads the same table.
  auto again = RunSensitivity(*e, o, log);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(log.str().find("12 skipped"), std::string::npos);
  EXPECT_EQ((*again)->table.rows[3].facts->kld, t.rows[3].facts->kld);

  SearchOptions so2;
  so2.budget_bpw = 4.5;
  auto found = RunSearch(**scan, so2, log);
  ASSERT_TRUE(found.ok()) << found.status().message();
  const nlohmann::json& last = found->report["rounds"].back();
  EXPECT_LE(last["bits_per_weight_units"].get<double>(), 4.5);
  EXPECT_GT(last["bits_per_weight_units"].get<double>(), 4.0);  // uses the budget: int3 everywhere is ~4.02
  EXPECT_NEAR(last["additivity_error"].get<double>(), last["kld_mean"].get<double>() - last["predicted_kld"].get<double>(), 1e-12);
  EXPECT_EQ(found->report["uniform"].size(), 2u);
  // The recipe is the verified cell: same identity when parsed back.
  auto recipe = ParseExperiment(found->recipe, "recipe.yaml");
  ASSERT_TRUE(recipe.ok()) << recipe.status().message() << "\n" << found->recipe;
  const std::vector<Cell> cells = ExpandGrid(*recipe);
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(DescribeCell(*(*scan)->session, cells[0]).id, last["cell_id"].get<std::string>());

  // A KLD target: the fewest bytes predicted to reach it, repaired while the measurement misses it.
  SearchOptions so3;
  so3.target_kld = 0.2;
  so3.schemes = {"int3:g32"};
  auto target = RunSearch(**scan, so3, log);
  ASSERT_TRUE(target.ok()) << target.status().message();
  const nlohmann::json& rounds = target->report["rounds"];
  EXPECT_LE(rounds[0]["predicted_kld"].get<double>(), 0.2);
  const bool met = rounds.back()["kld_mean"].get<double>() <= 0.2;
  EXPECT_TRUE(met || rounds.size() == size_t(so3.rescale_rounds + so3.max_rounds + 1));
  EXPECT_EQ(rounds[0]["kind"], "solve");
  for (size_t i = 1; i < rounds.size(); ++i) {  // only after a miss; a rescaled solve takes no fewer bytes, a repair more
    const nlohmann::json &r = rounds[i], &prev = rounds[i - 1];
    EXPECT_GT(prev["kld_mean"].get<double>(), 0.2);
    if (r["kind"] == "rescaled") {
      const double p = prev["predicted_kld"].get<double>(), m = prev["kld_mean"].get<double>();
      EXPECT_EQ(r["solve_target"].get<double>(), std::min(0.2 * std::clamp(p / m, 0.25, 1.0), std::nextafter(p, 0.0)));
      EXPECT_LE(r["predicted_kld"].get<double>(), r["solve_target"].get<double>());
      EXPECT_GE(r["bytes_units"].get<int64_t>(), prev["bytes_units"].get<int64_t>());
    } else {
      EXPECT_EQ(r["kind"], "repair");
      EXPECT_GT(r["bytes_units"].get<int64_t>(), prev["bytes_units"].get<int64_t>());
    }
  }
  // Whenever the first round missed, the second is a rescaled solve (this model's units interact).
  if (rounds.size() > 1) EXPECT_EQ(rounds[1]["kind"], "rescaled");

  // A ΔPPL target, met by the upper end of the verified cell's paired interval (the default) or by its
  // point estimate: the units' costs are their ln PPL ratios, the knapsack is solved at
  // ln(1 + D / ppl_base), and a round meets D exactly when its stored dppl_hi (dppl) is <= D.
  const double D = 1.0;  // upper: round 0 misses (its interval ends at +1.86), the rescaled round meets it
  const double ppl_base = t.rows[0].facts->ppl_base;  // a full scan: every unit's ppl_base is the baseline's
  for (const std::string bound : {"upper", "point"}) {
    SearchOptions sd;
    sd.target_dppl = D, sd.dppl_bound = bound;
    auto dp = RunSearch(**scan, sd, log);
    ASSERT_TRUE(dp.ok()) << dp.status().message();
    const nlohmann::json& rep = dp->report;
    EXPECT_EQ(rep["cost"], "ln_ppl_ratio");
    EXPECT_EQ(rep["ppl_base"].get<double>(), ppl_base);
    const double T = std::log1p(D / ppl_base);
    const nlohmann::json& rs = rep["rounds"];
    ASSERT_GE(rs.size(), 1u);
    EXPECT_EQ(rs[0]["solve_target"].get<double>(), T);
    for (size_t i = 0; i < rs.size(); ++i) {
      const nlohmann::json& r = rs[i];
      const double crit = bound == "upper" ? r["dppl_hi"].get<double>() : r["dppl"].get<double>();
      EXPECT_EQ(r["meets_target"].get<bool>(), crit <= D) << bound << " round " << i;
      EXPECT_NEAR(r["ln_ppl_ratio"].get<double>(), std::log1p(r["dppl"].get<double>() / ppl_base), 1e-12);
      EXPECT_NEAR(r["predicted_dppl"].get<double>(), ppl_base * std::expm1(r["predicted_ln_ppl_ratio"].get<double>()), 1e-12);
      if (r["kind"] != "repair") EXPECT_LE(r["predicted_ln_ppl_ratio"].get<double>(), r["solve_target"].get<double>());
      if (i > 0) EXPECT_FALSE(rs[i - 1]["meets_target"].get<bool>());  // only after a miss
      if (r["kind"] == "rescaled") {  // search_target.h's rule from the round before
        const nlohmann::json& prev = rs[i - 1];
        const double p = prev["predicted_ln_ppl_ratio"].get<double>(), m = prev["ln_ppl_ratio"].get<double>();
        const double w = bound == "upper" ? std::log1p(prev["dppl_hi"].get<double>() / ppl_base) - m : 0.0;
        const double c = w / std::sqrt(m), x = 0.5 * (-c + std::sqrt(c * c + 4 * T));
        const double want = std::min(std::max(x * x * std::clamp(p / m, 0.25, 1.0), 0.25 * T), p);
        EXPECT_NEAR(r["solve_target"].get<double>(), want, 1e-9) << bound << " round " << i;
      }
    }
    // The last round's prediction is the sum of its units' measured ln PPL ratios, each clamped at 0
    // (bf16: 0).
    double sum = 0;
    for (const SensitivityRow& r : t.rows)
      if (rep["choice"][r.unit->name] == r.scheme) sum += std::max(0.0, r.facts->ln_ratio);
    EXPECT_NEAR(sum, rs.back()["predicted_ln_ppl_ratio"].get<double>(), 1e-12);
    auto recipe_x = ParseExperiment(dp->recipe, "recipe.yaml");
    ASSERT_TRUE(recipe_x.ok()) << dp->recipe;
    EXPECT_EQ(DescribeCell(*(*scan)->session, ExpandGrid(*recipe_x)[0]).id, rs.back()["cell_id"].get<std::string>());
    EXPECT_NE(dp->recipe.find("target ΔPPL"), std::string::npos);
    EXPECT_TRUE(rep["met"].get<bool>()) << dp->text;
    EXPECT_LT(rs.back()["bits_per_weight_units"].get<double>(), 16.0);  // not everything kept at bf16
  }
}

}  // namespace
}  // namespace ql
