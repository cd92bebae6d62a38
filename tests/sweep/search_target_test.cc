// `search --target-kld` when the units' ΔKLD do not add up (search_target.h): on hand-made units with
// a fake measurement of known super-additive error, the rescaled solve reaches the target where the
// greedy repair alone does not, at the bytes of the exact optimum under that measurement; the ratio's
// bound, the strictly falling solve targets, a solve that repeats itself, a met first round, and a
// criterion an interval's width above the measured value (a ΔPPL target on its interval's upper end).
#include "harness/sweep/search_target.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace ql {
namespace {

// n units: baseline (100 bytes, cost 0) and three schemes of fewer bytes and rising cost.
std::vector<std::vector<Option>> Units(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.001, 0.01);
  std::vector<std::vector<Option>> opts(static_cast<size_t>(n));
  for (auto& o : opts) {
    const double c = u(rng);
    o = {{"", 100, 0}, {"a", 60, c}, {"b", 50, 2.5 * c}, {"c", 40, 6 * c}};
  }
  return opts;
}

struct Fake {
  std::vector<std::vector<Option>> opts;
  std::function<double(double)> measured_of;  // predicted -> measured
  std::function<double(double)> width_of = [](double) { return 0.0; };  // measured -> criterion − measured
  SolveAtFn Solve() {
    return [this](double t) { return SolveKnapsack(opts, -1, t, 10); };
  }
  MeasureChoiceFn Measure() {
    return [this](const Choice& c, int) -> StatusOr<Measurement> {
      const double m = measured_of(c.cost);
      return Measurement{m, m + width_of(m)};
    };
  }
};

TEST(SearchTarget, RescalingReachesASuperAdditiveTargetAtTheOptimumsBytes) {
  Fake f{Units(30, 1), [](double p) { return 1.3 * p; }};
  const double target = 0.1;
  auto r = SearchToTarget(&f.opts, target, f.Solve(), f.Measure(), {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].kind, "solve");
  EXPECT_GT((*r)[0].measured, target);  // the first solve misses by the additivity error
  EXPECT_EQ((*r)[1].kind, "rescaled");
  EXPECT_NEAR((*r)[1].solve_target, target * (*r)[0].choice.cost / (*r)[0].measured, 1e-15);
  EXPECT_LE((*r)[1].measured, target);
  // Measured = 1.3 × predicted: meeting the target is predicted <= target / 1.3, whose fewest bytes
  // the knapsack gives exactly.
  auto best = SolveKnapsack(f.opts, -1, target / 1.3, 10);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ((*r)[1].choice.bytes, best->bytes);

  // The greedy repair alone (one unit per round) needs every one of its 3 rounds, at no fewer bytes.
  auto greedy = SearchToTarget(&f.opts, target, f.Solve(), f.Measure(), {0, 3});
  ASSERT_TRUE(greedy.ok());
  ASSERT_EQ(greedy->size(), 4u);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ((*greedy)[i].kind, "repair");
    EXPECT_GT((*greedy)[i].choice.bytes, (*greedy)[i - 1].choice.bytes);
    EXPECT_LT((*greedy)[i].choice.cost, (*greedy)[i - 1].choice.cost);
  }
  for (size_t i = 0; i + 1 < greedy->size(); ++i) EXPECT_GT((*greedy)[i].measured, target);
  EXPECT_GE(greedy->back().choice.bytes, best->bytes);
}

TEST(SearchTarget, DriftingRatioFallingTargetsThenRepair) {
  // The error grows with the predicted KLD's distance below the target: each rescale undershoots a
  // little; the solve targets fall strictly and each is target × the last cell's ratio (or just below
  // its prediction).
  const double target = 0.1;
  Fake f{Units(30, 2), [&](double p) { return p * (1.45 - 0.15 * p / target); }};
  auto r = SearchToTarget(&f.opts, target, f.Solve(), f.Measure(), {3, 3});
  ASSERT_TRUE(r.ok());
  ASSERT_GE(r->size(), 2u);
  for (size_t i = 1; i < r->size(); ++i) {
    const TargetRound& prev = (*r)[i - 1];
    if ((*r)[i].kind != "rescaled") continue;
    EXPECT_EQ((*r)[i].solve_target, std::min(target * (prev.choice.cost / prev.measured), std::nextafter(prev.choice.cost, 0.0)));
    EXPECT_LT((*r)[i].solve_target, prev.choice.cost);
    EXPECT_LE((*r)[i].choice.cost, (*r)[i].solve_target);
  }
  EXPECT_LE(r->back().measured, target);
  for (size_t i = 0; i + 1 < r->size(); ++i) EXPECT_GT((*r)[i].measured, target);  // stops at the first met
}

TEST(SearchTarget, RatioIsBoundedAndAMetFirstRoundStops) {
  Fake f{Units(30, 3), [](double p) { return 10 * p; }};
  const double target = 0.1;
  auto r = SearchToTarget(&f.opts, target, f.Solve(), f.Measure(), {1, 0, 0.25});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].solve_target, target * 0.25);  // 1/10 clamped to 0.25
  EXPECT_GT(r->back().measured, target);            // not met: the rounds are spent

  Fake sub{Units(30, 3), [](double p) { return 0.8 * p; }};
  auto one = SearchToTarget(&sub.opts, target, sub.Solve(), sub.Measure(), {});
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].kind, "solve");
  EXPECT_EQ((*one)[0].solve_target, target);
}

TEST(SearchTarget, AnIntervalEndIsMetAtTheWidthsSquareRootScaling) {
  // Measured = predicted, checked at an interval's upper end c·√measured above it (search --target-dppl
  // on a ΔPPL interval): the first solve misses by the width, the rescaled one solves at the m with
  // m + c·√m = target and meets the target at exactly the bytes of the knapsack there (the optimum
  // under this criterion).
  const double target = 0.1, c = 0.1;
  Fake f{Units(30, 5), [](double p) { return p; }};
  f.width_of = [c](double m) { return c * std::sqrt(m); };
  auto r = SearchToTarget(&f.opts, target, f.Solve(), f.Measure(), {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_GT((*r)[0].bound, target);
  EXPECT_EQ((*r)[1].kind, "rescaled");
  const double x = 0.5 * (-c + std::sqrt(c * c + 4 * target));
  EXPECT_NEAR((*r)[1].solve_target, x * x, 1e-15);
  EXPECT_NEAR(x * x + c * x, target, 1e-15);
  EXPECT_LE((*r)[1].bound, target);
  auto best = SolveKnapsack(f.opts, -1, (*r)[1].solve_target, 10);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ((*r)[1].choice.bytes, best->bytes);

  // A width far above the target: the solve target stops at min_ratio × target.
  Fake wide{Units(30, 5), [](double p) { return p; }};
  wide.width_of = [](double m) { return 10 * std::sqrt(m); };
  auto w = SearchToTarget(&wide.opts, target, wide.Solve(), wide.Measure(), {1, 0});
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 2u);
  EXPECT_EQ((*w)[1].solve_target, 0.25 * target);
  EXPECT_GT((*w)[1].bound, target);  // unreachable at this width: the rounds are spent, not met
}

TEST(SearchTarget, ASolveThatRepeatsAVerifiedChoiceGoesToRepair) {
  Fake f{Units(10, 4), [](double p) { return 1.5 * p; }};
  const double target = 0.03;
  auto first = SolveKnapsack(f.opts, -1, target, 10);
  ASSERT_TRUE(first.ok());
  SolveAtFn same = [&](double) -> StatusOr<Choice> { return *first; };
  auto r = SearchToTarget(&f.opts, target, same, f.Measure(), {3, 2});
  ASSERT_TRUE(r.ok());
  ASSERT_GE(r->size(), 2u);
  EXPECT_EQ((*r)[1].kind, "repair");
  Choice c = *first;
  ASSERT_TRUE(GreedyRepair(f.opts, &c));
  EXPECT_EQ((*r)[1].choice.pick, c.pick);
}

}  // namespace
}  // namespace ql
