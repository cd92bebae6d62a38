// The options a mixed-precision choice depends on (see search_refine.h).
#include "harness/sweep/search_refine.h"

#include <algorithm>
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

// Cost sum of window w for option o: its own, 0 for the baseline (exact, cost 0, no windows), NaN unknown.
double WindowCost(const Option& o, size_t w) {
  if (!o.window_cost.empty()) return o.window_cost[w];
  return o.exact && o.cost == 0 ? 0.0 : std::nan("");
}

bool HasWindows(const Option& o, size_t n) {
  return o.window_cost.size() == n || (o.window_cost.empty() && o.exact && o.cost == 0);
}

// Could k beat p at some price in prices[], compared paired on the windows both ran?
bool PairedCanBeat(const Option& k, const Option& p, double lambda, const double prices[2], const PairedWindows& pw) {
  if (k.cost + lambda * double(k.bytes) <= p.cost + lambda * double(p.bytes)) return true;
  const PairedDiff d = PairedDifference(k, p, pw.tokens);
  if (std::isnan(d.se) || d.n < pw.min_common) return CanBeat(k, p, prices[0]) || CanBeat(k, p, prices[1]);
  for (int i = 0; i < 2; ++i)
    if (d.d - pw.z * d.se + prices[i] * double(k.bytes - p.bytes) <= 0) return true;
  return false;
}

}  // namespace

PairedDiff PairedDifference(const Option& k, const Option& p, const std::vector<int64_t>& tokens) {
  PairedDiff out;
  const size_t N = tokens.size();
  if (!HasWindows(k, N) || !HasWindows(p, N)) return {0, std::nan(""), 0};
  std::vector<double> d;  // (n) per common window: cost_k − cost_p
  std::vector<double> t;  // (n) its scored tokens
  for (size_t w = 0; w < N; ++w) {
    const double a = WindowCost(k, w), b = WindowCost(p, w);
    if (std::isnan(a) || std::isnan(b)) continue;
    d.push_back(a - b), t.push_back(double(tokens[w]));
  }
  out.n = int(d.size());
  if (out.n < 2) return {0, std::nan(""), out.n};
  double sd = 0, st = 0;
  for (size_t i = 0; i < d.size(); ++i) sd += d[i], st += t[i];
  if (st <= 0) return {0, std::nan(""), out.n};
  out.d = sd / st;
  double ss = 0;
  for (size_t i = 0; i < d.size(); ++i) ss += (d[i] - out.d * t[i]) * (d[i] - out.d * t[i]);
  const double n = double(out.n), t_mean = st / n;
  out.se = std::sqrt(std::max(0.0, 1 - n / double(N)) / n * ss / (n - 1)) / t_mean;
  return out;
}

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
                                                 double lambda, double slack, const PairedWindows* paired) {
  const double prices[2] = {lambda / slack, lambda * slack};
  return DecisionOptionsAt(opts, c, lambda, prices, paired);
}

void TargetPriceRange(const std::vector<std::vector<Option>>& opts, const Choice& c, double lambda, double slack,
                      double max_kld, double prices[2]) {
  prices[0] = lambda / slack, prices[1] = lambda * slack;
  if (max_kld < 0) return;
  double spread = 0;
  for (size_t u = 0; u < opts.size(); ++u) spread += opts[u][size_t(c.pick[u])].spread;
  if (spread <= 0) return;
  // A larger target allows a higher price of a byte (fewer bytes, more cost), a smaller one a lower.
  prices[0] = std::min(prices[0], LagrangeMultiplier(opts, c, false, std::max(0.0, max_kld - spread)));
  prices[1] = std::max(prices[1], LagrangeMultiplier(opts, c, false, max_kld + spread));
}

std::vector<std::pair<int, int>> DecisionOptionsAt(const std::vector<std::vector<Option>>& opts, const Choice& c,
                                                   double lambda, const double prices[2], const PairedWindows* paired) {
  std::vector<std::pair<int, int>> out;
  for (size_t u = 0; u < opts.size(); ++u) {
    const int p = c.pick[u];
    const Option& pick = opts[u][size_t(p)];
    std::vector<int> rivals;
    for (size_t k = 0; k < opts[u].size(); ++k) {
      if (int(k) == p) continue;
      const Option& o = opts[u][k];
      if (paired ? PairedCanBeat(o, pick, lambda, prices, *paired) : CanBeat(o, pick, prices[0]) || CanBeat(o, pick, prices[1]))
        rivals.push_back(int(k));
    }
    if (rivals.empty()) continue;
    rivals.push_back(p);
    for (int k : rivals)
      if (!opts[u][size_t(k)].exact) out.emplace_back(int(u), k);
  }
  return out;
}

StatusOr<Refined> SolveAndRefine(std::vector<std::vector<Option>>* opts, int64_t max_bytes, double max_kld,
                                 int64_t bucket, double slack, const MeasureFn& measure, int max_passes,
                                 const PairedWindows* paired) {
  Refined r;
  for (;;) {
    QL_ASSIGN_OR_RETURN(r.choice, SolveKnapsack(*opts, max_bytes, max_kld, bucket));
    r.lambda = LagrangeMultiplier(*opts, r.choice, max_kld < 0, max_kld);
    double prices[2];
    TargetPriceRange(*opts, r.choice, r.lambda, slack, max_kld, prices);
    const std::vector<std::pair<int, int>> need = DecisionOptionsAt(*opts, r.choice, r.lambda, prices, paired);
    if (need.empty()) return r;
    if (r.passes == max_passes) {
      r.converged = false;
      return r;
    }
    std::vector<int> before;
    for (const auto& [u, k] : need) before.push_back((*opts)[size_t(u)][size_t(k)].windows);
    QL_RETURN_IF_ERROR(measure(need, opts));
    for (size_t i = 0; i < need.size(); ++i) {
      const Option& o = (*opts)[size_t(need[i].first)][size_t(need[i].second)];
      QL_CHECK(o.exact || o.windows > before[i], "measure must make its options exact or measure them on more windows");
    }
    r.measured += int(need.size());
    ++r.passes;
  }
}

}  // namespace ql
