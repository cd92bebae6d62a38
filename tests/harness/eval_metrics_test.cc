// Tests of harness/eval/metrics: every expected value is worked out by hand in the comment beside it.
#include "harness/eval/metrics.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace ql {
namespace {

TEST(EvalMetrics, LogSoftmaxMatchesHandValues) {
  // logsumexp(1,2,3) = 3 + ln(1 + e^-1 + e^-2) = 3.4076059644443806
  const std::vector<float> logits = {1, 2, 3};
  std::vector<double> lp(3);
  LogSoftmax(logits, lp);
  EXPECT_NEAR(lp[0], 1 - 3.4076059644443806, 1e-12);
  EXPECT_NEAR(lp[1], 2 - 3.4076059644443806, 1e-12);
  EXPECT_NEAR(lp[2], 3 - 3.4076059644443806, 1e-12);
}

TEST(EvalMetrics, KldOfIdenticalDistributionsIsZero) {
  std::vector<float> logits(97);
  uint32_t s = 12345;
  for (float& v : logits) {
    s = s * 1664525u + 1013904223u;
    v = float(int(s >> 8) % 2000) / 100.0f - 10.0f;
  }
  std::vector<double> lp(logits.size());
  LogSoftmax(logits, lp);
  EXPECT_EQ(KlDivergence(std::span<const double>(lp), std::span<const double>(lp)), 0.0);
  std::vector<float> lpf(lp.begin(), lp.end());
  EXPECT_EQ(KlDivergence(std::span<const float>(lpf), std::span<const float>(lpf)), 0.0);
}

TEST(EvalMetrics, KldOfThreeWayPairByHand) {
  // p = (.5, .3, .2), q = (.4, .4, .2):
  // KL(p‖q) = .5 ln(.5/.4) + .3 ln(.3/.4) + .2 ln 1 = .5·0.22314355131421 − .3·0.28768207245178
  //         = 0.111571775657105 − 0.086304621735534 = 0.025267153921571
  const std::vector<double> lp = {std::log(0.5), std::log(0.3), std::log(0.2)};
  const std::vector<double> lq = {std::log(0.4), std::log(0.4), std::log(0.2)};
  EXPECT_NEAR(KlDivergence(std::span<const double>(lp), std::span<const double>(lq)), 0.025267153921571, 1e-9);
  // Reverse direction: .4 ln(.4/.5) + .4 ln(.4/.3) = −0.089257420525684 + 0.115072828980712
  EXPECT_NEAR(KlDivergence(std::span<const double>(lq), std::span<const double>(lp)), 0.025815408455028, 1e-9);
  // Stored as float log-probs the value moves by float rounding only.
  const std::vector<float> fp(lp.begin(), lp.end()), fq(lq.begin(), lq.end());
  EXPECT_NEAR(KlDivergence(std::span<const float>(fp), std::span<const float>(fq)), 0.025267153921571, 1e-7);
}

TEST(EvalMetrics, KldTopKIsALowerBoundAndExactWithFullK) {
  // p = (.5, .3, .1, .1), q = (.4, .4, .05, .15). Exact:
  //   0.025267153921571 + .1 ln 2 + .1 ln(.1/.15) = 0.025267153921571 + 0.069314718055995 − 0.040546510810816
  //   = 0.054035361166750
  // Top-2 of p kept (ids 0,1), tail masses .2 vs .2 → tail term .2 ln 1 = 0 → 0.025267153921571.
  const std::vector<float> lp = {float(std::log(0.5)), float(std::log(0.3)), float(std::log(0.1)),
                                 float(std::log(0.1))};
  const std::vector<float> lq = {float(std::log(0.4)), float(std::log(0.4)), float(std::log(0.05)),
                                 float(std::log(0.15))};
  EXPECT_NEAR(KlDivergence(std::span<const float>(lp), std::span<const float>(lq)), 0.054035361166750, 1e-6);
  const std::vector<int> idx2 = {0, 1};
  const std::vector<float> top2 = {lp[0], lp[1]};
  const double k2 = KlDivergenceTopK(idx2, top2, lq);
  EXPECT_NEAR(k2, 0.025267153921571, 1e-6);
  // Top-3 (0,1,2): tails .1 vs .15 → .1 ln(.1/.15) added to the top terms .5 ln 1.25 + .3 ln .75 + .1 ln 2
  //   = 0.025267153921571 + 0.069314718055995 − 0.040546510810816 = exact (the tail is one token).
  const std::vector<int> idx3 = {0, 1, 2};
  const std::vector<float> top3 = {lp[0], lp[1], lp[2]};
  EXPECT_NEAR(KlDivergenceTopK(idx3, top3, lq), 0.054035361166750, 1e-6);
  const std::vector<int> idx4 = {0, 1, 2, 3};
  EXPECT_NEAR(KlDivergenceTopK(idx4, lp, lq), 0.054035361166750, 1e-6);
  EXPECT_LE(k2, KlDivergence(std::span<const float>(lp), std::span<const float>(lq)));
}

TEST(EvalMetrics, ArgMaxTakesTheFirstOnTies) {
  const std::vector<float> x = {0.1f, 0.7f, 0.3f, 0.7f};
  EXPECT_EQ(ArgMax(std::span<const float>(x)), 1);
  const std::vector<double> y = {-3, -1, -2};
  EXPECT_EQ(ArgMax(std::span<const double>(y)), 1);
}

TEST(EvalMetrics, PerplexityOfUniformLogitsIsVocabSize) {
  const int V = 512;
  std::vector<float> logits(V, 0.7f);
  std::vector<double> lp(V);
  LogSoftmax(logits, lp);
  std::vector<double> nll;
  for (int t = 0; t < 300; ++t) nll.push_back(-lp[(t * 37) % V]);
  const PerplexityStats p = Perplexity(nll);
  EXPECT_NEAR(p.ppl, 512.0, 1e-9);
  EXPECT_NEAR(p.mean_nll, std::log(512.0), 1e-12);
  EXPECT_EQ(p.n, 300);
  EXPECT_NEAR(p.ppl_err, 0.0, 1e-9);
}

TEST(EvalMetrics, MeanStdErrAndPercentilesByHand) {
  // {1,2,3,4}: mean 2.5, s² = (2.25+.25+.25+2.25)/3 = 5/3, se = sqrt(5/3/4) = 0.6454972243679028
  const std::vector<double> x = {4, 1, 3, 2};
  const MeanErr me = MeanAndStdErr(x);
  EXPECT_DOUBLE_EQ(me.mean, 2.5);
  EXPECT_NEAR(me.se, 0.6454972243679028, 1e-15);
  // Perplexity error by the delta method: exp(2.5) · 0.6454972243679028 = 12.182493960703473 · 0.6455
  const PerplexityStats p = Perplexity(x);
  EXPECT_NEAR(p.ppl, 12.182493960703473, 1e-12);
  EXPECT_NEAR(p.ppl_err, 12.182493960703473 * 0.6454972243679028, 1e-12);
  // Percentiles of {1..5} by linear interpolation at q·(n−1): q=.25 → pos 1 → 2; q=.1 → pos .4 → 1.4
  const std::vector<double> s = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(Percentile(s, 0.25), 2.0);
  EXPECT_NEAR(Percentile(s, 0.1), 1.4, 1e-15);
  EXPECT_DOUBLE_EQ(Percentile(s, 0.999), 4.996);
  EXPECT_DOUBLE_EQ(Percentile(s, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(Percentile(s, 1.0), 5.0);
  // Summarize: {-2, 1, 1, 4}: mean 1, rms sqrt((4+1+1+16)/4) = sqrt(5.5), median (1+1)/2
  const std::vector<double> v = {1, -2, 4, 1};
  const ValueStats vs = Summarize(v);
  EXPECT_DOUBLE_EQ(vs.mean, 1.0);
  EXPECT_NEAR(vs.rms, std::sqrt(5.5), 1e-15);
  EXPECT_DOUBLE_EQ(vs.median, 1.0);
  EXPECT_DOUBLE_EQ(vs.min, -2.0);
  EXPECT_DOUBLE_EQ(vs.max, 4.0);
  // p99 at position .99·3 = 2.97 between 1 and 4: 1 + .97·3 = 3.91
  EXPECT_NEAR(vs.P(0.99), 3.91, 1e-12);
}

TEST(EvalMetrics, DeltaPAndTopOneFromRecords) {
  TokenRecords r;
  // p_base(correct) = .5, p_quant(correct) = .4 → Δp = −.1
  r.Add(-std::log(0.5), -std::log(0.4), 0.01, true);
  // .2 → .35: Δp = +.15
  r.Add(-std::log(0.2), -std::log(0.35), 0.02, true);
  // .9 → .9: Δp = 0, argmax differs
  r.Add(-std::log(0.9), -std::log(0.9), 0.0, false);
  // .6 → .55: Δp = −.05
  r.Add(-std::log(0.6), -std::log(0.55), 0.03, true);
  EXPECT_NEAR(r.p_diff[0], -0.1, 1e-15);
  EXPECT_NEAR(r.p_diff[1], 0.15, 1e-15);
  const ComparisonStats c = Compare(r);
  EXPECT_EQ(c.n, 4);
  // Δp mean (−.1 + .15 + 0 − .05)/4 = 0; RMS sqrt((.01 + .0225 + 0 + .0025)/4) = sqrt(.00875)
  EXPECT_NEAR(c.p_diff.mean, 0.0, 1e-15);
  EXPECT_NEAR(c.p_diff.rms, std::sqrt(0.00875), 1e-12);
  EXPECT_NEAR(c.p_diff.max, 0.15, 1e-15);
  EXPECT_NEAR(c.p_diff.min, -0.1, 1e-15);
  // top-1: 3/4, binomial se sqrt(.75·.25/3) = 0.25
  EXPECT_DOUBLE_EQ(c.top1, 0.75);
  EXPECT_NEAR(c.top1_se, 0.25, 1e-15);
  // KLD mean .015, median (.01 + .02)/2 = .015, max .03
  EXPECT_NEAR(c.kld.mean, 0.015, 1e-15);
  EXPECT_NEAR(c.kld.median, 0.015, 1e-15);
  EXPECT_DOUBLE_EQ(c.kld.max, 0.03);
}

TEST(EvalMetrics, PairedIntervalOfAConstantShiftIsExact) {
  // quant = base + 0.1 on every token → ln ratio 0.1 with zero paired error, ratio e^0.1,
  // ΔPPL = PPL_b (e^0.1 − 1); the unpaired error stays at sqrt(2)·se(base).
  std::vector<double> b, q;
  for (int i = 0; i < 200; ++i) {
    b.push_back(1.0 + 0.5 * std::sin(i * 0.7));
    q.push_back(b.back() + 0.1);
  }
  const PairedDelta d = PairPerplexities(b, q);
  EXPECT_NEAR(d.mean_diff, 0.1, 1e-12);
  EXPECT_NEAR(d.se_diff, 0.0, 1e-12);
  EXPECT_NEAR(d.ratio, std::exp(0.1), 1e-12);
  EXPECT_NEAR(d.ratio_lo, std::exp(0.1), 1e-9);
  EXPECT_NEAR(d.dppl, d.ppl_base * (std::exp(0.1) - 1), 1e-9);
  EXPECT_NEAR(d.se_diff_unpaired, std::sqrt(2.0) * MeanAndStdErr(b).se, 1e-12);
  EXPECT_NEAR(d.correlation, 1.0, 1e-12);
}

TEST(EvalMetrics, PairedIntervalShrinksOnCorrelatedNlls) {
  // Per-token NLLs vary a lot between tokens (spread ~1 nat) but the quantized run tracks the
  // baseline closely (its own noise ~0.05): pairing removes the shared variation.
  std::vector<double> b, q;
  uint32_t s = 7;
  auto uni = [&] {
    s = s * 1664525u + 1013904223u;
    return double(s >> 8) / double(1u << 24);
  };
  for (int i = 0; i < 2000; ++i) {
    const double base = 3.0 * uni();
    b.push_back(base);
    q.push_back(base + 0.02 + 0.1 * (uni() - 0.5));
  }
  const PairedDelta d = PairPerplexities(b, q);
  // se of the uniform(0,3) mean ≈ (3/√12)/√2000 = 0.0194; unpaired ≈ √2 × that ≈ 0.0274;
  // paired: uniform(−.05,.05) noise → (0.1/√12)/√2000 ≈ 0.00065.
  EXPECT_NEAR(d.se_diff_unpaired, 0.0274, 0.003);
  EXPECT_NEAR(d.se_diff, 0.000645, 0.0001);
  EXPECT_LT(d.se_diff * 20, d.se_diff_unpaired);
  EXPECT_NEAR(d.mean_diff, 0.02, 3 * d.se_diff);
  EXPECT_LT(d.ratio_lo, d.ratio);
  EXPECT_GT(d.ratio_hi, d.ratio);
  EXPECT_GT(d.dppl_lo, 0.0);  // the shift is detected
}

TEST(EvalMetrics, TensorErrorByHand) {
  // ref (1,2,3,4), test (1,2,3,5): Σe² = 1, Σref² = 30 → mse .25, rel 1/30, SQNR 10 log10 30
  const std::vector<float> ref = {1, 2, 3, 4}, test = {1, 2, 3, 5};
  const SignalError e = CompareTensors(ref, test);
  EXPECT_DOUBLE_EQ(e.mse, 0.25);
  EXPECT_NEAR(e.rel_mse, 1.0 / 30, 1e-15);
  EXPECT_NEAR(e.sqnr_db, 14.771212547196624, 1e-12);
  EXPECT_DOUBLE_EQ(e.max_abs, 1.0);
  // Accumulated over chunks = over the concatenation: add (0,0) vs (0,−2): Σe² 5, Σref² 30, n 6
  ErrorAccumulator acc;
  acc.Add(ref, test);
  const std::vector<float> r2 = {0, 0}, t2 = {0, -2};
  acc.Add(r2, t2);
  const SignalError a = acc.Result();
  EXPECT_NEAR(a.mse, 5.0 / 6, 1e-15);
  EXPECT_NEAR(a.sqnr_db, 10 * std::log10(6.0), 1e-12);
  EXPECT_DOUBLE_EQ(a.max_abs, 2.0);
  EXPECT_TRUE(std::isinf(CompareTensors(ref, ref).sqnr_db));
}

}  // namespace
}  // namespace ql
