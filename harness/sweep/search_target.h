// Reaching a KLD target when the units' ΔKLD do not add up: the knapsack predicts a configuration's KLD
// as the sum of its units' costs, and the verified cell measures more (super-additive units) or less.
// When a verified configuration misses the target, solve again at the target scaled by that cell's
// measured additivity ratio (predicted / measured, bounded), verify, repeat for a bounded number of
// rounds, and only then repair greedily one unit per round. Pure logic over callbacks: solving (with
// its refinement) and running the cells are RunSearch's (sensitivity.cc).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/sweep/sensitivity.h"

namespace ql {

struct TargetRound {
  std::string kind;          // "solve" (at the target), "rescaled" (at a rescaled target), "repair"
  double solve_target = -1;  // the target the knapsack was solved at (repair: -1)
  Choice choice;             // choice.cost = the predicted KLD
  double measured = 0;       // the verified cell's KLD
};

struct TargetRules {
  int rescale_rounds = 3;  // solves at a rescaled target after the first miss
  int repair_rounds = 3;   // greedy repairs after those
  double min_ratio = 0.25; // predicted / measured is clamped to [min_ratio, 1]
};

using SolveAtFn = std::function<StatusOr<Choice>(double target)>;   // the knapsack (refined) at a target
using MeasureChoiceFn = std::function<StatusOr<double>(const Choice&, int round)>;  // verify: measured KLD

// Round 0 solves at `target` and verifies. While the last verified cell misses (measured > target):
// up to rules.rescale_rounds times, solve at target · clamp(predicted / measured) of that cell —
// strictly below its prediction, so the knapsack must take more bytes — and verify (a solve that
// returns a configuration already verified ends the rescaling); then up to rules.repair_rounds greedy
// repairs (GreedyRepair) of the last configuration, each verified. Stops at the first cell meeting the
// target. `opts` is read by the repairs (the costs as SolveAtFn's refinement left them).
StatusOr<std::vector<TargetRound>> SearchToTarget(const std::vector<std::vector<Option>>* opts, double target,
                                                  const SolveAtFn& solve, const MeasureChoiceFn& measure,
                                                  const TargetRules& rules);

// One greedy repair step: the upgrade with the largest measured KLD gain per extra byte. False when no
// option of any unit costs less KLD for more bytes.
bool GreedyRepair(const std::vector<std::vector<Option>>& opts, Choice* c);

}  // namespace ql
