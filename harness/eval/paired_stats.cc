// Paired accuracy statistics (harness/eval/paired_stats.h).
#include "harness/eval/paired_stats.h"

#include <algorithm>
#include <cmath>

#include "harness/eval/metrics.h"
#include "kernels/status.h"

namespace ql {
namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// log(exp(a) + exp(b)) without overflow.
double LogAdd(double a, double b) {
  if (a < b) std::swap(a, b);
  return b == -INFINITY ? a : a + std::log1p(std::exp(b - a));
}

}  // namespace

Accuracy AccuracyOf(std::span<const uint8_t> correct) {
  Accuracy a;
  a.n = int64_t(correct.size());
  for (uint8_t c : correct) a.correct += c ? 1 : 0;
  if (a.n == 0) return a;
  a.acc = double(a.correct) / double(a.n);
  if (a.n >= 2) a.se = std::sqrt(a.acc * (1 - a.acc) / double(a.n - 1));
  return a;
}

double McNemarExactP(int64_t b, int64_t c) {
  const int64_t n = b + c, k = std::min(b, c);
  if (n == 0) return 1.0;
  // log P(X <= k) = logsumexp_i [lgamma(n+1) - lgamma(i+1) - lgamma(n-i+1)] - n·log 2
  double log_tail = -INFINITY;
  for (int64_t i = 0; i <= k; ++i)
    log_tail = LogAdd(log_tail, std::lgamma(double(n) + 1) - std::lgamma(double(i) + 1) - std::lgamma(double(n - i) + 1));
  log_tail -= double(n) * std::log(2.0);
  return std::min(1.0, 2.0 * std::exp(log_tail));
}

BootstrapInterval PairedBootstrap(std::span<const double> base, std::span<const double> cell, int resamples,
                                  uint64_t seed, double level) {
  QL_CHECK(base.size() == cell.size(), "paired bootstrap: {} vs {} items", base.size(), cell.size());
  BootstrapInterval out;
  out.resamples = resamples;
  out.seed = seed;
  const uint64_t n = base.size();
  if (n == 0 || resamples <= 0) return out;
  std::vector<double> d(n);
  for (uint64_t i = 0; i < n; ++i) d[i] = cell[i] - base[i];
  std::vector<double> means(resamples);
  uint64_t state = seed;
  for (int r = 0; r < resamples; ++r) {
    double sum = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t j = uint64_t((static_cast<unsigned __int128>(SplitMix64(&state)) * n) >> 64);
      sum += d[j];
    }
    means[r] = sum / double(n);
  }
  std::sort(means.begin(), means.end());
  const double tail = (1 - level) / 2;
  out.lo = Percentile(means, tail);
  out.hi = Percentile(means, 1 - tail);
  return out;
}

PairedAccuracy PairAccuracies(std::span<const uint8_t> base, std::span<const uint8_t> cell, int bootstrap_resamples,
                              uint64_t seed) {
  QL_CHECK(base.size() == cell.size(), "paired accuracy: {} vs {} items", base.size(), cell.size());
  PairedAccuracy out;
  out.base = AccuracyOf(base);
  out.cell = AccuracyOf(cell);
  const size_t n = base.size();
  std::vector<double> b(n), c(n), d(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = base[i] ? 1 : 0;
    c[i] = cell[i] ? 1 : 0;
    d[i] = c[i] - b[i];
    out.right_to_wrong += b[i] > c[i];
    out.wrong_to_right += c[i] > b[i];
  }
  const MeanErr md = MeanAndStdErr(d);
  out.diff = md.mean;
  out.diff_se = md.se;
  out.diff_lo = md.mean - kZ95 * md.se;
  out.diff_hi = md.mean + kZ95 * md.se;
  out.mcnemar_p = McNemarExactP(out.right_to_wrong, out.wrong_to_right);
  out.bootstrap = PairedBootstrap(b, c, bootstrap_resamples, seed);
  return out;
}

double CandidateKl(std::span<const double> base_scores, std::span<const double> cell_scores) {
  QL_CHECK(base_scores.size() == cell_scores.size() && !base_scores.empty(), "candidate KL: {} vs {} scores",
           base_scores.size(), cell_scores.size());
  auto log_norm = [](std::span<const double> s) {
    double m = *std::max_element(s.begin(), s.end()), z = 0;
    for (double v : s) z += std::exp(v - m);
    return m + std::log(z);
  };
  const double zb = log_norm(base_scores), zc = log_norm(cell_scores);
  double kl = 0;
  for (size_t i = 0; i < base_scores.size(); ++i) {
    const double lp = base_scores[i] - zb, lq = cell_scores[i] - zc;
    kl += std::exp(lp) * (lp - lq);
  }
  return std::max(0.0, kl);
}

}  // namespace ql
