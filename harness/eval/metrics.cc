// Evaluation metrics: numerics for log-softmax, KLD, perplexity, paired intervals and error stats.
#include "harness/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/select.h"
#include "kernels/status.h"

namespace ql {

void LogSoftmax(std::span<const float> logits, std::span<double> out) {
  QL_CHECK(logits.size() == out.size() && !logits.empty());
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - double(mx));
  const double lse = double(mx) + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - lse;
}

template <typename T>
static int ArgMaxT(std::span<const T> x) {
  QL_CHECK(!x.empty());
  int best = 0;
  for (size_t i = 1; i < x.size(); ++i)
    if (x[i] > x[best]) best = int(i);
  return best;
}
int ArgMax(std::span<const float> x) {  // SIMD, bitwise the loop of ArgMaxT (kernels/select.h)
  QL_CHECK(!x.empty());
  return int(ArgMaxF32(x.data(), x.size()));
}
int ArgMax(std::span<const double> x) { return ArgMaxT(x); }

template <typename T>
static double KlDivergenceT(std::span<const T> logp_base, std::span<const T> logp_quant) {
  QL_CHECK(logp_base.size() == logp_quant.size());
  double kld = 0;
  for (size_t i = 0; i < logp_base.size(); ++i) {
    const double lb = logp_base[i];
    if (lb == -std::numeric_limits<double>::infinity()) continue;  // p_base = 0 contributes 0
    kld += std::exp(lb) * (lb - double(logp_quant[i]));
  }
  return kld;
}
double KlDivergence(std::span<const float> logp_base, std::span<const float> logp_quant) {
  return KlDivergenceT(logp_base, logp_quant);
}
double KlDivergence(std::span<const double> logp_base, std::span<const double> logp_quant) {
  return KlDivergenceT(logp_base, logp_quant);
}

double KlDivergence(std::span<const float> logp_base, std::span<const double> p_base,
                    std::span<const float> logp_quant) {
  QL_CHECK(logp_base.size() == logp_quant.size() && p_base.size() == logp_base.size());
  double kld = 0;
  for (size_t i = 0; i < logp_base.size(); ++i) {
    const double lb = logp_base[i];
    if (lb == -std::numeric_limits<double>::infinity()) continue;  // as the uncached loop: p_base = 0
    kld += p_base[i] * (lb - double(logp_quant[i]));
  }
  return kld;
}

namespace {
// KL over the top-k tokens plus the tail merged into one outcome, from the two top masses.
double WithTail(double kld, double mass_b, double mass_q) {
  const double tail_b = 1.0 - mass_b, tail_q = 1.0 - mass_q;
  // Rounding can leave a tail of ~1e-16 or slightly negative; such a tail carries no divergence.
  if (tail_b > 1e-12) kld += tail_b * (std::log(tail_b) - std::log(std::max(tail_q, 1e-300)));
  return kld;
}
}  // namespace

double KlDivergenceTopK(std::span<const int> top_idx, std::span<const float> top_logp, std::span<const double> top_p,
                        double mass_b, std::span<const float> logp_quant) {
  QL_CHECK(top_idx.size() == top_logp.size() && top_p.size() == top_logp.size());
  double kld = 0, mass_q = 0;
  for (size_t j = 0; j < top_idx.size(); ++j) {
    const double lq = logp_quant[top_idx[j]];
    kld += top_p[j] * (double(top_logp[j]) - lq);
    mass_q += std::exp(lq);
  }
  return WithTail(kld, mass_b, mass_q);
}

double KlDivergenceTopK(std::span<const int> top_idx, std::span<const float> top_logp,
                        std::span<const float> logp_quant) {
  QL_CHECK(top_idx.size() == top_logp.size());
  double kld = 0, mass_b = 0, mass_q = 0;
  for (size_t j = 0; j < top_idx.size(); ++j) {
    const double lb = top_logp[j];
    const double lq = logp_quant[top_idx[j]];
    const double pb = std::exp(lb);
    kld += pb * (lb - lq);
    mass_b += pb;
    mass_q += std::exp(lq);
  }
  return WithTail(kld, mass_b, mass_q);
}

MeanErr MeanAndStdErr(std::span<const double> x) {
  MeanErr r;
  const size_t n = x.size();
  if (n == 0) return r;
  double sum = 0;
  for (double v : x) sum += v;
  r.mean = sum / double(n);
  if (n < 2) return r;
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.se = std::sqrt(ss / double(n - 1) / double(n));
  return r;
}

double Percentile(std::span<const double> sorted, double q) {
  QL_CHECK(!sorted.empty());
  if (q <= 0) return sorted.front();
  if (q >= 1) return sorted.back();
  const double p = q * double(sorted.size() - 1);
  const size_t ip = size_t(p);
  const double f = p - double(ip);
  const size_t hi = std::min(ip + 1, sorted.size() - 1);
  return (1 - f) * sorted[ip] + f * sorted[hi];
}

double ValueStats::P(double level) const {
  if (level == 0.5) return median;
  for (size_t i = 0; i < kPercentileLevels.size(); ++i)
    if (kPercentileLevels[i] == level) return pct[i];
  QL_CHECK(false, "percentile level {} is not tabulated", level);
  return 0;
}

ValueStats Summarize(std::span<const double> values) {
  ValueStats s;
  s.n = int64_t(values.size());
  if (values.empty()) return s;
  const MeanErr me = MeanAndStdErr(values);
  s.mean = me.mean;
  s.se = me.se;
  std::vector<double> sq(values.size());
  for (size_t i = 0; i < values.size(); ++i) sq[i] = values[i] * values[i];
  const MeanErr ms = MeanAndStdErr(sq);
  s.rms = std::sqrt(ms.mean);
  s.rms_se = s.rms > 0 ? 0.5 / s.rms * ms.se : 0;  // d sqrt(m) = dm / (2 sqrt(m))
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  s.min = sorted.front();
  s.max = sorted.back();
  s.median = Percentile(sorted, 0.5);
  for (size_t i = 0; i < ValueStats::kPercentileLevels.size(); ++i)
    s.pct[i] = Percentile(sorted, ValueStats::kPercentileLevels[i]);
  return s;
}

PerplexityStats Perplexity(std::span<const double> nll) {
  PerplexityStats p;
  p.n = int64_t(nll.size());
  if (nll.empty()) return p;
  const MeanErr me = MeanAndStdErr(nll);
  p.mean_nll = me.mean;
  p.se_nll = me.se;
  p.ppl = std::exp(me.mean);
  p.ppl_err = p.ppl * me.se;  // delta method: d exp(m) = exp(m) dm
  return p;
}

PairedDelta PairPerplexities(std::span<const double> nll_base, std::span<const double> nll_quant) {
  QL_CHECK(nll_base.size() == nll_quant.size());
  PairedDelta d;
  const size_t n = nll_base.size();
  d.n = int64_t(n);
  if (n == 0) return d;
  std::vector<double> diff(n);
  for (size_t i = 0; i < n; ++i) diff[i] = nll_quant[i] - nll_base[i];
  const MeanErr md = MeanAndStdErr(diff);
  const MeanErr mb = MeanAndStdErr(nll_base);
  const MeanErr mq = MeanAndStdErr(nll_quant);
  d.mean_diff = md.mean;
  d.se_diff = md.se;
  d.se_diff_unpaired = std::sqrt(mb.se * mb.se + mq.se * mq.se);
  double sbb = 0, sqq = 0, sbq = 0;
  for (size_t i = 0; i < n; ++i) {
    const double b = nll_base[i] - mb.mean, q = nll_quant[i] - mq.mean;
    sbb += b * b;
    sqq += q * q;
    sbq += b * q;
  }
  d.correlation = (sbb > 0 && sqq > 0) ? sbq / std::sqrt(sbb * sqq) : 0;
  d.ppl_base = std::exp(mb.mean);
  d.ppl_quant = std::exp(mq.mean);
  d.ratio = std::exp(md.mean);
  d.ratio_lo = std::exp(md.mean - kZ95 * md.se);
  d.ratio_hi = std::exp(md.mean + kZ95 * md.se);
  d.dppl = d.ppl_quant - d.ppl_base;
  d.dppl_lo = d.ppl_base * (d.ratio_lo - 1);
  d.dppl_hi = d.ppl_base * (d.ratio_hi - 1);
  return d;
}

void TokenRecords::Add(double nll_b, double nll_q, double kld_value, bool same) {
  nll_base.push_back(nll_b);
  nll_quant.push_back(nll_q);
  kld.push_back(kld_value);
  p_diff.push_back(std::exp(-nll_q) - std::exp(-nll_b));
  same_top.push_back(same ? 1 : 0);
}

ComparisonStats Compare(const TokenRecords& r) {
  ComparisonStats c;
  c.n = r.size();
  c.base = Perplexity(r.nll_base);
  c.quant = Perplexity(r.nll_quant);
  c.delta = PairPerplexities(r.nll_base, r.nll_quant);
  c.kld = Summarize(r.kld);
  c.p_diff = Summarize(r.p_diff);
  if (c.n > 0) {
    int64_t same = 0;
    for (uint8_t s : r.same_top) same += s;
    c.top1 = double(same) / double(c.n);
    c.top1_se = c.n > 1 ? std::sqrt(c.top1 * (1 - c.top1) / double(c.n - 1)) : 0;
  }
  return c;
}

void ErrorAccumulator::Add(std::span<const float> ref, std::span<const float> test) {
  QL_CHECK(ref.size() == test.size(), "sizes {} vs {}", ref.size(), test.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = double(test[i]) - double(ref[i]);
    sum_sq_err_ += e * e;
    sum_sq_ref_ += double(ref[i]) * double(ref[i]);
    max_abs_ = std::max(max_abs_, std::fabs(e));
  }
  n_ += int64_t(ref.size());
}

SignalError ErrorAccumulator::Result() const {
  SignalError s;
  s.n = n_;
  if (n_ == 0) return s;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  s.mse = sum_sq_err_ / double(n_);
  s.max_abs = max_abs_;
  s.rel_mse = sum_sq_ref_ > 0 ? sum_sq_err_ / sum_sq_ref_ : (sum_sq_err_ > 0 ? kInf : 0);
  s.sqnr_db = sum_sq_err_ == 0 ? kInf : (sum_sq_ref_ == 0 ? -kInf : 10 * std::log10(sum_sq_ref_ / sum_sq_err_));
  return s;
}

SignalError CompareTensors(std::span<const float> ref, std::span<const float> test) {
  ErrorAccumulator acc;
  acc.Add(ref, test);
  return acc.Result();
}

}  // namespace ql
