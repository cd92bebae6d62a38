// Paired statistics of per-item 0/1 outcomes (a baseline and a quantized model answering the same
// questions): accuracy ± standard error, the paired difference, the exact McNemar test and a seeded
// paired bootstrap interval. Pure math on arrays; harness/eval/tasks.h feeds it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ql {

// Accuracy of 0/1 outcomes and its standard error sqrt(p(1-p)/(n-1)): the sample standard deviation
// of the outcomes over sqrt(n), as lm-evaluation-harness and llama.cpp report it (0 when n < 2).
struct Accuracy {
  int64_t n = 0, correct = 0;
  double acc = 0, se = 0;
};
Accuracy AccuracyOf(std::span<const uint8_t> correct);

// Exact two-sided McNemar test: under H0 the b + c discordant pairs split as Binomial(b + c, 1/2);
// p = min(1, 2 · P(X <= min(b, c))). b + c = 0 gives p = 1. Summed in log space (exact to ~1e-12
// relative for any n).
double McNemarExactP(int64_t b, int64_t c);

// Paired bootstrap of the mean difference mean(cell_i - base_i): `resamples` draws of n item indices
// with replacement (SplitMix64 from `seed`, so the interval is bitwise reproducible), percentile
// interval at `level` (e.g. 0.95), linear interpolation between order statistics.
struct BootstrapInterval {
  double lo = 0, hi = 0;
  int resamples = 0;
  uint64_t seed = 0;
};
BootstrapInterval PairedBootstrap(std::span<const double> base, std::span<const double> cell, int resamples,
                                  uint64_t seed, double level = 0.95);

// Everything a reader needs to judge whether an accuracy change is noise.
struct PairedAccuracy {
  Accuracy base, cell;
  double diff = 0, diff_se = 0;  // acc_cell − acc_base and the paired standard error sd(d)/sqrt(n)
  double diff_lo = 0, diff_hi = 0;  // diff ± 1.96 · diff_se
  int64_t right_to_wrong = 0, wrong_to_right = 0;  // flips (McNemar's discordant pairs b, c)
  double mcnemar_p = 1;
  BootstrapInterval bootstrap;
};
// base, cell: [n] 0/1 outcomes of the same items in the same order (QL_CHECKs equal sizes).
PairedAccuracy PairAccuracies(std::span<const uint8_t> base, std::span<const uint8_t> cell,
                              int bootstrap_resamples = 10000, uint64_t seed = 1);

// KL(p ‖ q) in nats of the distributions softmax(base_scores) and softmax(cell_scores) over one
// question's candidates ([candidates] each, accumulated in double).
double CandidateKl(std::span<const double> base_scores, std::span<const double> cell_scores);

}  // namespace ql
