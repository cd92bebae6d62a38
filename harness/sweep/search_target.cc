// Target rescaling by measured additivity, then greedy repair (see search_target.h).
#include "harness/sweep/search_target.h"

#include <algorithm>
#include <cmath>

namespace ql {

bool GreedyRepair(const std::vector<std::vector<Option>>& opts, Choice* c) {
  double best = 0;
  size_t bu = 0, bk = 0;
  for (size_t u = 0; u < opts.size(); ++u) {
    const Option& cur = opts[u][size_t(c->pick[u])];
    for (size_t k = 0; k < opts[u].size(); ++k) {
      const Option& o = opts[u][k];
      if (o.cost >= cur.cost || o.bytes <= cur.bytes) continue;
      const double gain = (cur.cost - o.cost) / double(o.bytes - cur.bytes);
      if (gain > best) best = gain, bu = u, bk = k;
    }
  }
  if (best <= 0) return false;
  c->bytes += opts[bu][bk].bytes - opts[bu][size_t(c->pick[bu])].bytes;
  c->cost += opts[bu][bk].cost - opts[bu][size_t(c->pick[bu])].cost;
  c->pick[bu] = int(bk);
  return true;
}

StatusOr<std::vector<TargetRound>> SearchToTarget(const std::vector<std::vector<Option>>* opts, double target,
                                                  const SolveAtFn& solve, const MeasureChoiceFn& measure,
                                                  const TargetRules& rules) {
  std::vector<TargetRound> rounds;
  auto verify = [&](TargetRound r) -> Status {
    QL_ASSIGN_OR_RETURN(const Measurement m, measure(r.choice, int(rounds.size())));
    r.measured = m.value, r.bound = m.bound;
    rounds.push_back(std::move(r));
    return Status::Ok();
  };
  auto missed = [&] { return rounds.back().bound > target; };
  auto seen = [&](const Choice& c) {
    return std::any_of(rounds.begin(), rounds.end(), [&](const TargetRound& r) { return r.choice.pick == c.pick; });
  };
  // The next solve target from a missed cell: target · ratio for a point criterion; with an interval
  // end, the width w = bound − measured of a cell grows as the square root of its measured value (a
  // small perturbation moves each token's NLL to first order, their mean only to second), so the next
  // cell should have measured m with m + c·√m = target, c = w / √m_last: √m = (−c + √(c² + 4·target)) / 2,
  // and is solved at m · ratio. Without a positive measured value the width is taken as it is.
  auto width_rule = [&](const TargetRound& last, double ratio) {
    const double w = last.bound - last.measured;
    if (w == 0) return target * ratio;
    double m = target - w;
    if (last.measured > 0) {
      const double c = w / std::sqrt(last.measured), x = 0.5 * (-c + std::sqrt(c * c + 4 * target));
      m = x * x;
    }
    return std::max(m * ratio, rules.min_ratio * target);
  };
  QL_ASSIGN_OR_RETURN(Choice first, solve(target));
  QL_RETURN_IF_ERROR(verify({"solve", target, first}));
  for (int i = 0; i < rules.rescale_rounds && missed(); ++i) {
    const TargetRound& last = rounds.back();
    const double ratio = std::clamp(last.measured > 0 ? last.choice.cost / last.measured : 1.0, rules.min_ratio, 1.0);
    const double scaled = width_rule(last, ratio);
    // Strictly below the missed prediction: at or above it the knapsack may return the same choice.
    const double next = std::min(scaled, std::nextafter(last.choice.cost, -INFINITY));
    if (!(next >= 0)) break;
    QL_ASSIGN_OR_RETURN(Choice c, solve(next));
    if (seen(c)) break;
    QL_RETURN_IF_ERROR(verify({"rescaled", next, c}));
  }
  for (int i = 0; i < rules.repair_rounds && missed(); ++i) {
    Choice c = rounds.back().choice;
    if (!GreedyRepair(*opts, &c)) break;
    QL_RETURN_IF_ERROR(verify({"repair", -1, c}));
  }
  return rounds;
}

}  // namespace ql
