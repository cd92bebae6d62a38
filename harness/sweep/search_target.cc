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
    QL_ASSIGN_OR_RETURN(r.measured, measure(r.choice, int(rounds.size())));
    rounds.push_back(std::move(r));
    return Status::Ok();
  };
  auto missed = [&] { return rounds.back().measured > target; };
  auto seen = [&](const Choice& c) {
    return std::any_of(rounds.begin(), rounds.end(), [&](const TargetRound& r) { return r.choice.pick == c.pick; });
  };
  QL_ASSIGN_OR_RETURN(Choice first, solve(target));
  QL_RETURN_IF_ERROR(verify({"solve", target, first, 0}));
  for (int i = 0; i < rules.rescale_rounds && missed(); ++i) {
    const TargetRound& last = rounds.back();
    const double ratio = std::clamp(last.measured > 0 ? last.choice.cost / last.measured : 1.0, rules.min_ratio, 1.0);
    // Strictly below the missed prediction: at or above it the knapsack may return the same choice.
    const double next = std::min(target * ratio, std::nextafter(last.choice.cost, 0.0));
    if (!(next >= 0)) break;
    QL_ASSIGN_OR_RETURN(Choice c, solve(next));
    if (seen(c)) break;
    QL_RETURN_IF_ERROR(verify({"rescaled", next, c, 0}));
  }
  for (int i = 0; i < rules.repair_rounds && missed(); ++i) {
    Choice c = rounds.back().choice;
    if (!GreedyRepair(*opts, &c)) break;
    QL_RETURN_IF_ERROR(verify({"repair", -1, c, 0}));
  }
  return rounds;
}

}  // namespace ql
