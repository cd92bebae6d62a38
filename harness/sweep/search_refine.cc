// The options a mixed-precision choice depends on (see search_refine.h).
#include "harness/sweep/search_refine.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>

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

// Why k could beat p at some price in prices[] (compared paired on the windows both ran), or nothing.
std::optional<Rival> PairedRival(const Option& k, const Option& p, double lambda, const double prices[2],
                                 const PairedWindows& pw) {
  const double nan = std::nan("");
  if (k.cost + lambda * double(k.bytes) <= p.cost + lambda * double(p.bytes))
    return Rival{0, 0, 0, RivalWhy::kPreferred, nan, nan, 0};
  const PairedDiff d = PairedDifference(k, p, pw.tokens);
  if (std::isnan(d.se) || d.n < pw.min_common) {
    if (CanBeat(k, p, prices[0]) || CanBeat(k, p, prices[1])) return Rival{0, 0, 0, RivalWhy::kInterval, nan, nan, d.n};
    return std::nullopt;
  }
  for (int i = 0; i < 2; ++i)
    if (d.d - pw.z * d.se + prices[i] * double(k.bytes - p.bytes) <= 0) return Rival{0, 0, 0, RivalWhy::kPaired, d.d, d.se, d.n};
  return std::nullopt;
}

std::optional<Rival> UnpairedRival(const Option& k, const Option& p, const double prices[2]) {
  if (!CanBeat(k, p, prices[0]) && !CanBeat(k, p, prices[1])) return std::nullopt;
  return Rival{0, 0, 0, RivalWhy::kInterval, std::nan(""), std::nan(""), 0};
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

const char* RivalWhyName(RivalWhy w) {
  switch (w) {
    case RivalWhy::kPreferred: return "preferred";
    case RivalWhy::kPaired: return "paired";
    case RivalWhy::kInterval: return "interval";
    case RivalWhy::kExchange: return "exchange";
    case RivalWhy::kTotal: return "total";
  }
  return "?";
}

std::vector<Rival> DecisionRivals(const std::vector<std::vector<Option>>& opts, const Choice& c, double lambda,
                                  const double prices[2], const PairedWindows* paired) {
  std::vector<Rival> out;
  for (size_t u = 0; u < opts.size(); ++u) {
    const int p = c.pick[u];
    const Option& pick = opts[u][size_t(p)];
    for (size_t k = 0; k < opts[u].size(); ++k) {
      if (int(k) == p) continue;
      const Option& o = opts[u][k];
      std::optional<Rival> r = paired ? PairedRival(o, pick, lambda, prices, *paired) : UnpairedRival(o, pick, prices);
      if (!r) continue;
      r->unit = int(u), r->option = int(k), r->pick = p;
      r->option_windows = o.exact ? -1 : o.windows, r->pick_windows = pick.exact ? -1 : pick.windows;
      out.push_back(*r);
    }
  }
  return out;
}

namespace {

// The options to measure for these rivals (grouped by unit): each rival and, after a unit's last, its
// pick — the ones not yet exact.
std::vector<std::pair<int, int>> OptionsToMeasure(const std::vector<std::vector<Option>>& opts,
                                                  const std::vector<Rival>& rivals) {
  std::vector<std::pair<int, int>> out;
  auto add = [&](int u, int k) {
    if (!opts[size_t(u)][size_t(k)].exact && std::find(out.begin(), out.end(), std::pair(u, k)) == out.end())
      out.emplace_back(u, k);
  };
  for (size_t i = 0; i < rivals.size(); ++i) {
    const int u = rivals[i].unit;
    add(u, rivals[i].option);
    if (i + 1 == rivals.size() || rivals[i + 1].unit != u) add(u, rivals[i].pick);
  }
  return out;
}

}  // namespace

std::vector<std::pair<int, int>> DecisionOptionsAt(const std::vector<std::vector<Option>>& opts, const Choice& c,
                                                   double lambda, const double prices[2], const PairedWindows* paired) {
  return OptionsToMeasure(opts, DecisionRivals(opts, c, lambda, prices, paired));
}

namespace {

// The least full-window cost option k of a unit can have against its pick p within the bounds, as p's
// cost plus the least difference (ExchangeRivals); `why` gets the difference used.
double AdversaryCost(const Option& k, const Option& p, const PairedWindows* pw, Rival* why) {
  why->d = why->se = std::nan(""), why->common = 0;
  if (k.exact && p.exact) return k.cost;
  if (pw) {
    const PairedDiff d = PairedDifference(k, p, pw->tokens);
    why->common = d.n;
    if (!std::isnan(d.se) && d.n >= pw->min_common) {
      why->d = d.d, why->se = d.se;
      return p.cost + d.d - pw->z * d.se;
    }
  }
  return p.cost + (k.cost - k.spread) - (p.cost + p.spread);
}

}  // namespace

namespace {

// The adversary's costs (AdversaryCost for every option but each unit's pick) and, per unit and
// option, the rival record of that pair; `held` gets the choice's cost, Σ of its picks'.
std::vector<std::vector<Option>> AdversaryOptions(const std::vector<std::vector<Option>>& opts, const Choice& c,
                                                  const PairedWindows* paired, std::vector<std::vector<Rival>>* why,
                                                  double* held) {
  std::vector<std::vector<Option>> adv = opts;
  why->assign(opts.size(), {});
  *held = 0;
  for (size_t u = 0; u < opts.size(); ++u) {
    const int p = c.pick[u];
    (*why)[u].resize(opts[u].size());
    *held += opts[u][size_t(p)].cost;
    for (size_t k = 0; k < opts[u].size(); ++k) {
      Rival& r = (*why)[u][k];
      r.unit = int(u), r.option = int(k), r.pick = p, r.why = RivalWhy::kExchange;
      r.option_windows = opts[u][k].exact ? -1 : opts[u][k].windows;
      r.pick_windows = opts[u][size_t(p)].exact ? -1 : opts[u][size_t(p)].windows;
      if (int(k) != p) adv[u][k].cost = AdversaryCost(opts[u][k], opts[u][size_t(p)], paired, &r);
    }
  }
  return adv;
}

// Appends the units where x differs from c (their rival records) to out and holds those whose pair is
// inexact at their picks in adv (an exchange of exact pairs alone cannot beat c, so the next one found
// moves a unit not yet held); false when every such pair is exact (a tie the sums' rounding broke).
bool TakeExchange(const std::vector<std::vector<Option>>& opts, const Choice& c, const Choice& x,
                  const std::vector<std::vector<Rival>>& why, std::vector<std::vector<Option>>* adv,
                  std::vector<Rival>* out) {
  bool inexact = false;
  for (size_t u = 0; u < opts.size(); ++u) {
    const int k = x.pick[u], p = c.pick[u];
    if (k == p) continue;
    out->push_back(why[u][size_t(k)]);
    if (opts[u][size_t(k)].exact && opts[u][size_t(p)].exact) continue;
    inexact = true;
    for (size_t j = 0; j < (*adv)[u].size(); ++j)
      if (int(j) != p) (*adv)[u][j].cost = INFINITY;  // held at its pick: find the exchanges without it
  }
  return inexact;
}

int64_t Buckets(const std::vector<std::vector<Option>>& opts, const Choice& c, int64_t bucket) {
  int64_t b = 0;
  for (size_t u = 0; u < opts.size(); ++u) b += (opts[u][size_t(c.pick[u])].bytes + bucket - 1) / bucket;
  return b;
}

}  // namespace

std::vector<Rival> ExchangeRivals(const std::vector<std::vector<Option>>& opts, const Choice& c, int64_t max_bytes,
                                  int64_t bucket, const PairedWindows* paired) {
  std::vector<std::vector<Rival>> why;
  double held = 0;
  std::vector<std::vector<Option>> adv = AdversaryOptions(opts, c, paired, &why, &held);
  std::vector<Rival> out;
  for (;;) {
    StatusOr<Choice> x = SolveKnapsack(adv, max_bytes, -1, bucket);
    QL_CHECK(x.ok(), "the choice itself fits the budget");
    if (!(x->cost < held - 1e-12 * std::fabs(held))) return out;  // nothing within the bounds beats c
    if (!TakeExchange(opts, c, *x, why, &adv, &out)) return out;   // exact units only: a rounding tie
  }
}

namespace {

// Residuals e_w = cost_w − cost · tokens_w of an option on the windows it ran (NaN elsewhere), and the
// mean tokens of those windows.
std::vector<double> Residuals(const Option& o, const std::vector<int64_t>& tokens, double* t_mean) {
  std::vector<double> e(tokens.size(), std::nan(""));
  double st = 0, sk = 0;
  int n = 0;
  for (size_t w = 0; w < tokens.size(); ++w)
    if (!std::isnan(o.window_cost[w])) sk += o.window_cost[w], st += double(tokens[w]), ++n;
  *t_mean = n > 0 ? st / n : 0;
  for (size_t w = 0; w < tokens.size(); ++w)
    if (!std::isnan(o.window_cost[w])) e[w] = o.window_cost[w] - sk / st * double(tokens[w]);
  return e;
}

// The covariance of two options' residuals on the windows both ran (divisor n − 1; NaN below 2).
double ResidualCovariance(const std::vector<double>& a, const std::vector<double>& b) {
  double sa = 0, sb = 0, sab = 0;
  int n = 0;
  for (size_t w = 0; w < a.size(); ++w)
    if (!std::isnan(a[w]) && !std::isnan(b[w])) sa += a[w], sb += b[w], sab += a[w] * b[w], ++n;
  return n < 2 ? std::nan("") : (sab - sa * sb / n) / (n - 1);
}

}  // namespace

TotalBound ChoiceTotal(const std::vector<std::vector<Option>>& opts, const Choice& c, const PairedWindows* paired) {
  double exact = 0, point = 0, spread = 0;
  std::vector<size_t> in;  // units whose chosen option is inexact
  int least = INT32_MAX;
  for (size_t u = 0; u < opts.size(); ++u) {
    const Option& o = opts[u][size_t(c.pick[u])];
    if (o.exact) exact += o.cost;
    else in.push_back(u), point += o.cost, spread += o.spread, least = std::min(least, o.windows);
  }
  TotalBound out{exact, exact, -1, std::vector<double>(opts.size(), 0.0)};
  if (in.empty()) return out;
  out.lo = exact + point - spread, out.hi = exact + point + spread, out.common = 0;
  for (size_t u : in) out.share[u] = opts[u][size_t(c.pick[u])].spread;
  if (!paired) return out;
  const size_t N = paired->tokens.size();
  std::vector<std::vector<double>> e(in.size());  // [inexact unit][window] residuals
  std::vector<double> t(in.size());              // their mean tokens per window
  std::vector<int> n(in.size());                 // windows each ran
  for (size_t i = 0; i < in.size(); ++i) {
    const Option& o = opts[in[i]][size_t(c.pick[in[i]])];
    if (o.window_cost.size() != N || least < paired->min_common) return out;
    e[i] = Residuals(o, paired->tokens, &t[i]);
    n[i] = int(std::count_if(e[i].begin(), e[i].end(), [](double x) { return !std::isnan(x); }));
  }
  // Each option's mean over the first n of the seeded order; two such means of n_u <= n_v windows
  // covary as (1/n_v − 1/N) · S_uv (nested samples without replacement), S_uv estimated on the n_u.
  double var = 0;
  std::vector<double> row(in.size(), 0.0);
  for (size_t i = 0; i < in.size(); ++i)
    for (size_t j = 0; j < in.size(); ++j) {
      const double s_ij = ResidualCovariance(e[i], e[j]);
      if (std::isnan(s_ij)) return out;
      const double f = 1.0 / std::max(n[i], n[j]) - 1.0 / double(N);
      const double v = std::max(0.0, f) * s_ij / (t[i] * t[j]);
      var += v, row[i] += v;
    }
  const double se = std::sqrt(std::max(0.0, var));
  out.lo = exact + point - paired->z * se, out.hi = exact + point + paired->z * se, out.common = least;
  for (size_t i = 0; i < in.size(); ++i) out.share[in[i]] = row[i];
  return out;
}

std::vector<Rival> TargetRivals(const std::vector<std::vector<Option>>& opts, const Choice& c, double max_kld,
                                int64_t bucket, const PairedWindows* paired) {
  const int64_t b = Buckets(opts, c, bucket);
  std::vector<Rival> out = ExchangeRivals(opts, c, b * bucket, bucket, paired);  // (3)
  const TotalBound total = ChoiceTotal(opts, c, paired);
  bool total_short = total.hi > max_kld;                                        // (1)
  std::vector<std::vector<Rival>> why;
  double held = 0;
  std::vector<std::vector<Option>> adv = AdversaryOptions(opts, c, paired, &why, &held);
  for (;;) {  // (2): every configuration of fewer buckets the bounds allow to meet the target
    if (b == 0) break;
    StatusOr<Choice> x = SolveKnapsack(adv, (b - 1) * bucket, -1, bucket);
    if (!x.ok() || !(total.lo + (x->cost - held) <= max_kld)) break;
    total_short |= total.common >= 0;
    if (!TakeExchange(opts, c, *x, why, &adv, &out)) break;
  }
  if (!total_short || total.common < 0) return out;
  // The total's bound is too wide: the chosen options whose share of its variance (or of the summed
  // spreads) is at least the mean share — the ones whose extension narrows it most.
  double mean = 0;
  int inexact = 0;
  for (size_t u = 0; u < opts.size(); ++u)
    if (!opts[u][size_t(c.pick[u])].exact) mean += total.share[u], ++inexact;
  mean /= std::max(1, inexact);
  for (size_t u = 0; u < opts.size(); ++u) {
    const Option& o = opts[u][size_t(c.pick[u])];
    if (o.exact || total.share[u] < mean) continue;
    Rival r = why[u][size_t(c.pick[u])];
    r.why = RivalWhy::kTotal, r.d = total.lo, r.se = total.hi, r.common = total.common;
    out.push_back(r);
  }
  return out;
}

StatusOr<Refined> SolveAndRefine(std::vector<std::vector<Option>>* opts, int64_t max_bytes, double max_kld,
                                 int64_t bucket, double slack, const MeasureFn& measure, int max_passes,
                                 const PairedWindows* paired, RefineRule rule) {
  Refined r;
  for (;;) {
    QL_ASSIGN_OR_RETURN(r.choice, SolveKnapsack(*opts, max_bytes, max_kld, bucket));
    r.lambda = LagrangeMultiplier(*opts, r.choice, max_kld < 0, max_kld);
    double prices[2];
    TargetPriceRange(*opts, r.choice, r.lambda, slack, max_kld, prices);
    std::vector<Rival> rivals = rule == RefineRule::kPriceSlack ? DecisionRivals(*opts, r.choice, r.lambda, prices, paired)
                                : max_kld < 0 ? ExchangeRivals(*opts, r.choice, max_bytes, bucket, paired)
                                              : TargetRivals(*opts, r.choice, max_kld, bucket, paired);
    const std::vector<std::pair<int, int>> need = OptionsToMeasure(*opts, rivals);
    if (need.empty()) return r;
    r.rivals.push_back(std::move(rivals));
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
