// The options a mixed-precision choice depends on (see search_refine.h).
#include "harness/sweep/search_refine.h"

#include <cmath>

namespace ql {
namespace {

struct Totals {
  int64_t bytes = 0;
  double cost = 0;
};

Totals PickTotals(const std::vector<std::vector<Option>>& opts, double lambda) {
  const std::vector<int> pick = LagrangianPick(opts, lambda);
  Totals t;
  for (size_t u = 0; u < opts.size(); ++u) t.bytes += opts[u][size_t(pick[u])].bytes, t.cost += opts[u][size_t(pick[u])].cost;
  return t;
}

// Can option k beat option p at price lambda with both costs anywhere in their intervals?
bool CanBeat(const Option& k, const Option& p, double lambda) {
  return k.cost - k.spread + lambda * double(k.bytes) <= p.cost + p.spread + lambda * double(p.bytes);
}

}  // namespace

std::vector<int> LagrangianPick(const std::vector<std::vector<Option>>& opts, double lambda) {
  std::vector<int> pick(opts.size(), 0);
  for (size_t u = 0; u < opts.size(); ++u) {
    double best = INFINITY;
    for (size_t k = 0; k < opts[u].size(); ++k) {
      const double v = opts[u][k].cost + lambda * double(opts[u][k].bytes);
      if (v < best) best = v, pick[u] = int(k);
    }
  }
  return pick;
}

double LagrangeMultiplier(const std::vector<std::vector<Option>>& opts, const Choice& c, bool by_budget,
                          double max_kld) {
  // Bytes fall and cost rises with lambda; bisect log(lambda) over a range far wider than any
  // ΔKLD / Δbytes of a model (1e-18 .. 1e6).
  auto ok = [&](double lambda) {
    const Totals t = PickTotals(opts, lambda);
    return by_budget ? t.bytes <= c.bytes : t.cost <= max_kld;
  };
  double lo = std::log(1e-18), hi = std::log(1e6);
  if (by_budget) {
    if (ok(0)) return 0;
    if (!ok(std::exp(hi))) return std::exp(hi);
    for (int i = 0; i < 200; ++i) {  // invariant: !ok(lo), ok(hi)
      const double mid = 0.5 * (lo + hi);
      (ok(std::exp(mid)) ? hi : lo) = mid;
    }
    return std::exp(hi);
  }
  if (ok(std::exp(hi))) return std::exp(hi);
  if (!ok(std::exp(lo))) return std::exp(lo);
  for (int i = 0; i < 200; ++i) {  // invariant: ok(lo), !ok(hi)
    const double mid = 0.5 * (lo + hi);
    (ok(std::exp(mid)) ? lo : hi) = mid;
  }
  return std::exp(lo);
}

std::vector<std::pair<int, int>> DecisionOptions(const std::vector<std::vector<Option>>& opts, const Choice& c,
                                                 double lambda, double slack) {
  std::vector<std::pair<int, int>> out;
  const double prices[2] = {lambda / slack, lambda * slack};
  for (size_t u = 0; u < opts.size(); ++u) {
    const int p = c.pick[u];
    std::vector<int> rivals;
    for (size_t k = 0; k < opts[u].size(); ++k)
      if (int(k) != p && (CanBeat(opts[u][k], opts[u][size_t(p)], prices[0]) ||
                          CanBeat(opts[u][k], opts[u][size_t(p)], prices[1])))
        rivals.push_back(int(k));
    if (rivals.empty()) continue;
    rivals.push_back(p);
    for (int k : rivals)
      if (!opts[u][size_t(k)].exact) out.emplace_back(int(u), k);
  }
  return out;
}

StatusOr<Refined> SolveAndRefine(std::vector<std::vector<Option>>* opts, int64_t max_bytes, double max_kld,
                                 int64_t bucket, double slack, const MeasureFn& measure, int max_passes) {
  Refined r;
  for (;;) {
    QL_ASSIGN_OR_RETURN(r.choice, SolveKnapsack(*opts, max_bytes, max_kld, bucket));
    r.lambda = LagrangeMultiplier(*opts, r.choice, max_kld < 0, max_kld);
    const std::vector<std::pair<int, int>> need = DecisionOptions(*opts, r.choice, r.lambda, slack);
    if (need.empty()) return r;
    if (r.passes == max_passes) {
      r.converged = false;
      return r;
    }
    QL_RETURN_IF_ERROR(measure(need, opts));
    for (const auto& [u, k] : need) QL_CHECK((*opts)[size_t(u)][size_t(k)].exact, "measure must make its options exact");
    r.measured += int(need.size());
    ++r.passes;
  }
}

}  // namespace ql
