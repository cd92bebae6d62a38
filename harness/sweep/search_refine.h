// Which measured costs a mixed-precision choice depends on: the Lagrange multiplier (price of a byte) at
// a knapsack solution, and the (unit, option) pairs whose cost, anywhere within its interval, could change
// that unit's choice. `search` re-measures those on every window after an adaptive scan, so its answer is
// the full scan's. Pure logic on Option lists; running the cells is RunSearch's (sensitivity.cc).
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "harness/sweep/sensitivity.h"

namespace ql {

// Per unit, the option minimizing cost + lambda * bytes (ties: the lower index).
std::vector<int> LagrangianPick(const std::vector<std::vector<Option>>& opts, double lambda);

// The price of a byte at which LagrangianPick crosses the solution c: with a byte budget (by_budget) the
// least lambda whose pick fits in c.bytes; with a KLD target the largest lambda whose pick costs at most
// max_kld. 0 when even lambda = 0 fits (budget) / the largest tried when every lambda meets the target.
double LagrangeMultiplier(const std::vector<std::vector<Option>>& opts, const Choice& c, bool by_budget,
                          double max_kld);

// The pairs (unit, option index) to re-measure: for every unit whose pick p could lose to another option
// k for some price lambda' in [lambda / slack, lambda * slack] with costs anywhere in their intervals
// (cost ± spread): cost_k - spread_k + lambda' bytes_k <= cost_p + spread_p + lambda' bytes_p, the pick
// and every such k — the ones not yet `exact` (measured on every window). A unit whose choice is clear
// by more than both intervals at every such price needs nothing.
//
// With `paired` (the windows' scored-token counts and z), two options of a unit that both carry
// window_cost (the baseline counts as zero on every window) are compared on their *difference*,
// estimated on the windows both ran: D = Σ (cost_k,w − cost_p,w) / Σ tokens_w, with the standard error of
// that ratio over the n of N windows (finite-population corrected, as the adaptive stop's), and k is a
// rival when D − z·se + lambda' (bytes_k − bytes_p) <= 0, or when the costs as they are already prefer k
// at lambda. The two cells see the same windows, so most of their noise cancels in D: far fewer near
// ties than the sum of the two intervals gives. Options without window_cost, or pairs with fewer than
// min_common windows in common (a standard error from 1–2 degrees of freedom is no bound), use the
// intervals.
struct PairedWindows {
  std::vector<int64_t> tokens;  // [windows] scored tokens per window
  double z = 3;
  int min_common = 4;
};
std::vector<std::pair<int, int>> DecisionOptions(const std::vector<std::vector<Option>>& opts, const Choice& c,
                                                 double lambda, double slack, const PairedWindows* paired = nullptr);
// The same over an explicit price range [prices[0], prices[1]] (containing lambda).
std::vector<std::pair<int, int>> DecisionOptionsAt(const std::vector<std::vector<Option>>& opts, const Choice& c,
                                                   double lambda, const double prices[2],
                                                   const PairedWindows* paired = nullptr);

// Why an option k of a unit is a rival of its pick p (DecisionOptionsAt): the costs as they are prefer
// k at lambda (kPreferred: the knapsack's fractional units), the paired difference's interval reaches
// an end of the price range (kPaired), or, without a paired comparison, the two intervals do (kInterval).
// kExchange: the pair is one unit's part of an exchange of several units that the bounds allow to beat
// the choice (ExchangeRivals).
// kTotal: the pick itself, one of a target choice's options of a large share of its total's variance when the bound on
// the choice's total is too wide to say whether it meets the target (TargetRivals; d and se then carry
// the total's bounds).
enum class RivalWhy { kPreferred, kPaired, kInterval, kExchange, kTotal };
struct Rival {
  int unit = 0, option = 0, pick = 0;
  RivalWhy why = RivalWhy::kInterval;
  double d = 0, se = 0;  // the paired difference and its standard error (kPaired; NaN otherwise)
  int common = 0;        // windows both ran
  int option_windows = -1, pick_windows = -1;  // the windows each cost is over (-1: exact)
};
const char* RivalWhyName(RivalWhy w);
// Every (unit, rival) pair DecisionOptionsAt's options come from, exact ones included.
std::vector<Rival> DecisionRivals(const std::vector<std::vector<Option>>& opts, const Choice& c, double lambda,
                                  const double prices[2], const PairedWindows* paired = nullptr);

// A budget choice's certificate by exchanges (the rule for byte budgets; DecisionRivals' price slack is
// a proxy for it). The full scan's choice differs from c only if some other configuration x within the
// budget costs less at the full-window costs: Σ_u (cost(x_u) − cost(c_u)) < 0, a sum of differences
// against each unit's pick. Each difference is bounded below by the refinement's own bounds — the paired
// D − z·se on the windows both options ran, the intervals' (cost_k − spread_k) − (cost_p + spread_p)
// without a pairing, the difference itself when both are exact — so the knapsack re-solved on those
// lower bounds (the adversary's costs) finds the configuration the bounds favour most against c. When
// it is not cheaper than c, no cost within its bounds changes the answer: c is certified, exactly and
// with any number of units exchanged at once, with no price slack. Otherwise the units where it differs
// from c are returned (option against pick, why = kExchange), those of them with an inexact pair are held
// at their picks and the adversary solves again, until nothing within the budget beats c: every
// exchange the bounds allow, each one's units measured in the same pass. Exact near ties need nothing
// (their difference is known), however close their break-even price is to the multiplier.
std::vector<Rival> ExchangeRivals(const std::vector<std::vector<Option>>& opts, const Choice& c, int64_t max_bytes,
                                  int64_t bucket, const PairedWindows* paired = nullptr);

// Bounds [lo, hi] on the full-window total cost of a choice: its exact options as they are, plus its
// inexact options' costs ± z·se of their sum. Each is a mean over the first n_u windows of one seeded
// order, so two of them covary — a hard window raises both — as (1/max(n_u, n_v) − 1/N) · S_uv (nested
// samples without replacement), S_uv the covariance of their residuals cost_w − cost · tokens_w on the
// windows both ran; the variance of the sum adds every pair's, which keeps that correlation, and each
// option can stop at its own windows. Without a pairing (or below min_common windows): ± the sum of the
// spreads. share: per unit, its chosen option's row of that variance (or its spread); common: the
// fewest windows of the chosen inexact options (0: the spreads; -1: all exact, lo = hi = the total).
struct TotalBound {
  double lo = 0, hi = 0;
  int common = 0;
  std::vector<double> share = {};
};
TotalBound ChoiceTotal(const std::vector<std::vector<Option>>& opts, const Choice& c, const PairedWindows* paired);

// A KLD-target choice's certificate (the fewest bytes whose total is within max_kld). The full scan gives
// c if (1) c's total meets the target at full-window costs, (2) no configuration of fewer buckets does,
// (3) none of c's buckets or fewer costs less. With the bounds: (1) ChoiceTotal(c).hi <= max_kld; (2) the
// adversary's knapsack at one bucket less than c finds nothing whose least total, ChoiceTotal(c).lo +
// its least difference from c, is <= max_kld (each such exchange's units are rivals, held, and the
// adversary solves again); (3) ExchangeRivals at c's buckets. When (1) or (2) fails on the total's
// width, c's inexact options of at least the mean share of the total's variance are rivals too (kTotal):
// extending them narrows it most.
std::vector<Rival> TargetRivals(const std::vector<std::vector<Option>>& opts, const Choice& c, double max_kld,
                                int64_t bucket, const PairedWindows* paired = nullptr);

// The price range a target search's decisions must hold over: [lambda / slack, lambda · slack], widened
// to the multipliers at max_kld ∓ S, S = Σ of the chosen options' spreads. The chosen options' cost
// errors add up in the target's constraint, and they do not cancel: every inexact option ran the
// first windows of one seeded order, so a hard window raises them all (on stories260K, 4 of 8 windows
// put the chosen int4 options' total 8% above its full-window value and moved four units' choices).
// Without a target (max_kld < 0) the range is the slack's alone.
void TargetPriceRange(const std::vector<std::vector<Option>>& opts, const Choice& c, double lambda, double slack,
                      double max_kld, double prices[2]);

// The paired difference of option k against p on the windows both ran (see DecisionOptions): D and its
// standard error, and the number of common windows n (se = NaN below 2, 0 when n is every window).
struct PairedDiff {
  double d = 0, se = 0;
  int n = 0;
};
PairedDiff PairedDifference(const Option& k, const Option& p, const std::vector<int64_t>& tokens);

// The refinement loop: solve the knapsack (SolveKnapsack's arguments), hand the DecisionOptions at its
// multiplier to `measure` (which sets their cost and makes them exact, or measures them on more windows
// than before: Option::windows grows), re-solve; until none is left or after max_passes. Extending in
// steps, an option stops as soon as its decision separates (paired, on the windows both ran) or it has
// every window. When none is left, a cost can move the choice only by more than z of its standard
// errors (or a price outside the slack; with a target, outside TargetPriceRange).
struct Refined {
  Choice choice;
  double lambda = 0;     // the multiplier at the final choice
  int passes = 0;
  int measured = 0;      // options handed to `measure`
  bool converged = true; // false: stopped at max_passes with options left
  std::vector<std::vector<Rival>> rivals;  // [passes] the rivals each measured pass found
};
// How SolveAndRefine finds the options to measure: DecisionRivals over a price range (kPriceSlack), or
// the choice's certificate (kExchange): ExchangeRivals for a byte budget, TargetRivals for a target.
enum class RefineRule { kPriceSlack, kExchange };
using MeasureFn = std::function<Status(const std::vector<std::pair<int, int>>&, std::vector<std::vector<Option>>*)>;
StatusOr<Refined> SolveAndRefine(std::vector<std::vector<Option>>* opts, int64_t max_bytes, double max_kld,
                                 int64_t bucket, double slack, const MeasureFn& measure, int max_passes = 20,
                                 const PairedWindows* paired = nullptr, RefineRule rule = RefineRule::kPriceSlack);

}  // namespace ql
