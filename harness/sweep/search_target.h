// Reaching a quality target when the units' costs do not add up: the knapsack predicts a configuration's
// KLD (or Δ ln PPL) as the sum of its units' costs, and the verified cell measures more (super-additive
// units) or less. When a verified configuration misses the target, solve again at the target scaled by
// that cell's measured additivity ratio (predicted / measured, bounded) — less the width the target's
// criterion adds to the measured value (an interval end: search --target-dppl) —, verify, repeat for a
// bounded number of rounds, and only then repair greedily one unit per round. Pure logic over callbacks:
// solving (with its refinement) and running the cells are RunSearch's (sensitivity.cc).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/sweep/sensitivity.h"

namespace ql {

// A verified cell in the costs' units: its measured value (KLD, or ln of its PPL ratio) and the value the
// target is checked against — the measured value itself, or an end of its interval.
struct Measurement {
  double value = 0;
  double bound = 0;
};

struct TargetRound {
  std::string kind;          // "solve" (at the target), "rescaled" (at a rescaled target), "repair"
  double solve_target = -1;  // the target the knapsack was solved at (repair: -1)
  Choice choice;             // choice.cost = the predicted value
  double measured = 0;       // the verified cell's value
  double bound = 0;          // its criterion: met when bound <= target
};

struct TargetRules {
  int rescale_rounds = 3;  // solves at a rescaled target after the first miss
  int repair_rounds = 3;   // greedy repairs after those
  double min_ratio = 0.25; // predicted / measured is clamped to [min_ratio, 1]; a solve target never
                           // falls below min_ratio × target
};

using SolveAtFn = std::function<StatusOr<Choice>(double target)>;   // the knapsack (refined) at a target
using MeasureChoiceFn = std::function<StatusOr<Measurement>(const Choice&, int round)>;  // verify

// Round 0 solves at `target` and verifies. While the last verified cell misses (bound > target): up to
// rules.rescale_rounds times, solve at m · clamp(predicted / measured) of that cell, where m is the
// measured value a cell needs to meet the target — the target itself when bound = measured (a KLD
// target, a ΔPPL point target); with an interval end, the m whose interval, at the last cell's width
// scaled by √(m / measured), ends at the target (search_target.cc says why) —, at least
// min_ratio · target and strictly below the last prediction (so the knapsack must take more bytes), and
// verify (a solve that returns a configuration already verified ends the rescaling); then up to
// rules.repair_rounds greedy repairs (GreedyRepair) of the last configuration, each verified. Stops at
// the first cell meeting the target. `opts` is read by the repairs (the costs as SolveAtFn's refinement
// left them).
StatusOr<std::vector<TargetRound>> SearchToTarget(const std::vector<std::vector<Option>>* opts, double target,
                                                  const SolveAtFn& solve, const MeasureChoiceFn& measure,
                                                  const TargetRules& rules);

// One greedy repair step: the upgrade with the largest measured cost gain per extra byte. False when no
// option of any unit costs less for more bytes.
bool GreedyRepair(const std::vector<std::vector<Option>>& opts, Choice* c);

}  // namespace ql
