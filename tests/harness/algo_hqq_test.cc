// HQQ (harness/quant/hqq.h): the shrinkage and the closed-form zero step against hand values, the per-iteration
// error non-increasing until the early stop, weight error below round-to-nearest, the result on the
// scheme's own grid, and the schemes it cannot serve.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "harness/quant/hqq.h"
#include "kernels/quantizer.h"

namespace ql {
namespace {

std::vector<float> Weights(int64_t n, uint64_t seed) {  // Gaussian with a few 6-sigma outliers
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n));
  for (size_t i = 0; i < w.size(); ++i) w[i] = d(rng) * (i % 97 == 0 ? 6.0f : 1.0f);
  return w;
}

double Lp(const std::vector<float>& a, const std::vector<float>& b, double p) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e += std::pow(std::fabs(double(a[i]) - b[i]), p);
  return e;
}

TEST(AlgoHqq, ShrinkAgainstHandValues) {
  // sign(x)·max(0, |x| − |x|^(p−1)/beta), beta 10, p 0.7:
  //   0.5: 0.5^-0.3 = 2^0.3 = 1.2311444, 0.5 − 0.12311444 = 0.37688556;  2: 2 − 2^-0.3/10 = 1.9187748.
  //   Zero below |x|^1.3 = 0.1, i.e. |x| <= 0.1^(1/1.3) = 0.170125; 0 itself (|1e-8|^-0.3/10 = 25) -> 0.
  EXPECT_NEAR(HqqShrink(0.5f, 10.0f, 0.7f), 0.37688556f, 1e-6);
  EXPECT_NEAR(HqqShrink(-0.5f, 10.0f, 0.7f), -0.37688556f, 1e-6);
  EXPECT_NEAR(HqqShrink(2.0f, 10.0f, 0.7f), 1.9187748f, 1e-6);
  EXPECT_EQ(HqqShrink(0.17f, 10.0f, 0.7f), 0.0f);
  EXPECT_GT(HqqShrink(0.1705f, 10.0f, 0.7f), 0.0f);
  EXPECT_EQ(HqqShrink(-0.05f, 10.0f, 0.7f), 0.0f);
  EXPECT_EQ(HqqShrink(0.0f, 10.0f, 0.7f), 0.0f);
  // p = 1: plain soft threshold at 1/beta.
  EXPECT_NEAR(HqqShrink(0.5f, 10.0f, 1.0f), 0.4f, 1e-6);
}

TEST(AlgoHqq, ZeroStepAgainstHandCase) {
  // x = 0, 1, 2, 3.3 on 2 bits (qmax 3), s = 3.3/3 = 1.1, z = 0: W_q = 0, 1, 2, 3; x − W_r = 0, −0.1, −0.2, 0;
  // shrink: only −0.2 survives, −(0.2 − 0.2^-0.3/10) = −0.0379343; z' = mean(W_q − (x − W_e)/s)
  // = (0 + (1 − 1/1.1) + (2 − 2.0379343/1.1) + 0)/4 = 0.0595604.
  const float x[4] = {0.0f, 1.0f, 2.0f, 3.3f};
  EXPECT_NEAR(HqqZeroStep(x, 4, 3.3f / 3.0f, 3, 0.0f, 10.0f, 0.7f), 0.0595604f, 2e-6);
}

TEST(AlgoHqq, ErrorNonIncreasingAndBelowRoundToNearest) {
  const int64_t rows = 64, cols = 256;
  const auto w = Weights(rows * cols, 3);
  for (const char* text : {"int4:g32:asym", "int3:g32:asym", "int2:g32:asym", "int4:g64:asym", "int3:channel:asym"}) {
    SCOPED_TRACE(text);
    auto scheme = ParseScheme(text);
    ASSERT_TRUE(scheme.ok());
    std::vector<float> rtn(w.size()), h = w;
    ASSERT_TRUE(FakeQuantize(*scheme, w.data(), rows, cols, rtn.data()).ok());
    std::vector<double> trace;
    ASSERT_TRUE(HqqQuantizeWeight(*scheme, h.data(), rows, cols, HqqOptions{}, &trace).ok());
    // The first group's mean |W − W_r| per iteration: strictly decreasing until the stop (the last entry
    // is the first that did not decrease).
    ASSERT_GE(trace.size(), 2u);
    for (size_t i = 1; i + 1 < trace.size(); ++i) EXPECT_LT(trace[i], trace[i - 1]) << i;
    // On the scheme's scale: in every group, values (q − z)·s with the scheme's scale s, so the steps from the
    // group's smallest value are integer multiples of s, at most 2^b − 1 of them.
    auto qt = Quantize(*scheme, w.data(), rows, cols);
    ASSERT_TRUE(qt.ok());
    const int64_t gc = qt->tiles.grid_cols, tc = qt->tiles.tile_cols;
    const int qmax = (1 << qt->code_bits) - 1;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < gc; ++t) {
        const float sc = qt->Scale(r * gc + t);
        float lo = INFINITY;
        for (int64_t c = t * tc; c < (t + 1) * tc; ++c) lo = std::min(lo, h[r * cols + c]);
        for (int64_t c = t * tc; c < (t + 1) * tc; ++c) {
          const double k = (double(h[r * cols + c]) - lo) / sc;
          ASSERT_NEAR(k, std::round(k), 1e-4) << r << " " << c;
          ASSERT_LE(std::round(k), qmax);
        }
      }
    // Weight error: HQQ's own objective (p = 0.7) and the mean absolute error are below RTN's.
    EXPECT_LT(Lp(w, h, 0.7), Lp(w, rtn, 0.7));
    EXPECT_LT(Lp(w, h, 1.0), Lp(w, rtn, 1.0));
    // With the scheme's integer zero the result is never worse than RTN in the mean |error| (the start is
    // kept when the rounded optimum is not better).
    HqqOptions integer;
    integer.fp16_zero = false;
    std::vector<float> hi = w;
    ASSERT_TRUE(HqqQuantizeWeight(*scheme, hi.data(), rows, cols, integer).ok());
    EXPECT_LE(Lp(w, hi, 1.0), Lp(w, rtn, 1.0) * (1 + 1e-12));
  }
}

TEST(AlgoHqq, SchemesWithoutAZeroPointAreErrors) {
  const auto w = Weights(8 * 32, 1);
  for (const char* text : {"int4:g32", "int4:g32:symfull", "nf4", "fp4:g16", "int4:tensor:asym", "int4:g32:asym:mse"}) {
    auto scheme = ParseScheme(text);
    ASSERT_TRUE(scheme.ok()) << text;
    std::vector<float> h = w;
    Status s = HqqQuantizeWeight(*scheme, h.data(), 8, 32, HqqOptions{});
    EXPECT_FALSE(s.ok()) << text;
  }
}

}  // namespace
}  // namespace ql
