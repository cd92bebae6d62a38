// The codebook formats lut<b> (kernels/lut.h) and vq2x8 (kernels/vq.h) and their k-means (kernels/kmeans.h):
// the 1-D fit equal to a brute-force optimum, the 2-D objective non-increasing, hand cases for weighted centroids and exact bytes, every stored code the nearest
// stored centroid, byte counts, and what a fitted codebook buys over a uniform grid at the same bits.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/half.h"
#include "kernels/kmeans.h"
#include "kernels/lut.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"
#include "kernels/vq.h"

namespace ql {
namespace {

std::vector<float> Gaussian(size_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void ExpectNonIncreasing(const std::vector<double>& obj) {
  ASSERT_GE(obj.size(), 2u);
  for (size_t i = 1; i < obj.size(); ++i) EXPECT_LE(obj[i], obj[i - 1] * (1 + 1e-12) + 1e-300) << i;
}

// The oracle: the least Σ w (x − c)² over every partition of the sorted x into k runs, by the plain O(k·n²)
// dynamic programme over elements (no merging of equal values, no shift, no divide-and-conquer).
double BruteForceOptimum(const std::vector<float>& x, const std::vector<float>& w, int k) {
  std::vector<size_t> o(x.size());
  for (size_t i = 0; i < o.size(); ++i) o[i] = i;
  std::sort(o.begin(), o.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  const size_t n = x.size();
  std::vector<double> s0(n + 1, 0.0), s1(s0), s2(s0);  // prefix sums of w, w·x, w·x² over the sorted x
  for (size_t i = 0; i < n; ++i) {
    const double xi = x[o[i]], wi = w[o[i]];
    s0[i + 1] = s0[i] + wi, s1[i + 1] = s1[i] + wi * xi, s2[i + 1] = s2[i] + wi * xi * xi;
  }
  auto C = [&](size_t a, size_t b) {  // sorted elements [a, b)
    const double W = s0[b] - s0[a], S = s1[b] - s1[a];
    return W > 0 ? std::max(0.0, s2[b] - s2[a] - S * S / W) : 0.0;
  };
  std::vector<double> D(n + 1);
  for (size_t i = 0; i <= n; ++i) D[i] = C(0, i);
  for (int j = 1; j < k; ++j) {
    std::vector<double> E(n + 1, INFINITY);
    for (size_t i = 1; i <= n; ++i)
      for (size_t a = 0; a < i; ++a) E[i] = std::min(E[i], D[a] + C(a, i));
    D = E;
  }
  return D[n];
}

// Σ w (x − nearest centroid)² of a returned codebook.
double Objective(const std::vector<float>& x, const std::vector<float>& w, const std::vector<double>& c) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double d = INFINITY;
    for (double cj : c) d = std::min(d, (x[i] - cj) * (x[i] - cj));
    s += w[i] * d;
  }
  return s;
}

// A row the way a Q4_1 checkpoint stores it: groups of 32 on their own 16-level grid d·q + m, with group
// scales spread over a decade and a few outlier groups, so many values repeat and the tails are heavy.
std::vector<float> Q41GridRow(int cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<float> x(static_cast<size_t>(cols));
  for (int g0 = 0; g0 < cols; g0 += 32) {
    const double d = 0.004 * std::pow(10.0, u(rng)) * (u(rng) < 0.1 ? 6.0 : 1.0), m = -8 * d + 0.002 * g(rng);
    for (int i = g0; i < std::min(cols, g0 + 32); ++i)
      x[size_t(i)] = float(d * std::clamp(std::round(8 + 2.5 * g(rng)), 0.0, 15.0) + m);
  }
  return x;
}

// Lloyd's iterations from the quantiles (the fit used before) reach fixed points 1.4–5.6× this optimum on
// SmolLM2-135M's rows; the Q4_1-grid rows of 576 and 1536 are that case.
TEST(KMeans, OneDimensionalIsTheExactOptimumOnGaussianAndQ41GridRows) {
  struct Case { std::vector<float> x; const char* what; };
  std::vector<Case> cases = {{Gaussian(300, 1), "gaussian 300"}, {Q41GridRow(576, 3), "q4_1 grid 576"},
                             {Q41GridRow(1536, 4), "q4_1 grid 1536"}, {Q41GridRow(45, 5), "q4_1 grid 45"}};
  for (const Case& c : cases) {
    const std::vector<float> ones(c.x.size(), 1.0f);
    std::vector<float> w(c.x.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = i % 7 == 3 ? 0.0f : 0.1f + float(i % 13);  // some weightless
    for (int k : {4, 8, 16}) {
      SCOPED_TRACE(testing::Message() << c.what << " k=" << k);
      const KMeans1DResult a = KMeans1D(c.x.data(), nullptr, int64_t(c.x.size()), k);
      const KMeans1DResult b = KMeans1D(c.x.data(), w.data(), int64_t(c.x.size()), k);
      const double opt_a = BruteForceOptimum(c.x, ones, k), opt_b = BruteForceOptimum(c.x, w, k);
      // Relative 1e-7, plus the oracle's cancellation in its prefix sums of w·x² (an exact 0 comes out ~1e-15).
      const double tol_a = 1e-7 * opt_a + 1e-12 * Objective(c.x, ones, {0.0});
      const double tol_b = 1e-7 * opt_b + 1e-12 * Objective(c.x, w, {0.0});
      EXPECT_NEAR(a.objective, opt_a, tol_a);
      EXPECT_NEAR(b.objective, opt_b, tol_b);
      EXPECT_NEAR(Objective(c.x, ones, a.centroids), opt_a, tol_a);  // the centroids reach it
      EXPECT_NEAR(Objective(c.x, w, b.centroids), opt_b, tol_b);
      EXPECT_TRUE(std::is_sorted(a.centroids.begin(), a.centroids.end()));
      EXPECT_TRUE(std::is_sorted(b.centroids.begin(), b.centroids.end()));
      EXPECT_EQ(KMeans1D(c.x.data(), w.data(), int64_t(c.x.size()), k).centroids, b.centroids);
    }
  }
}

TEST(KMeans, FewerDistinctValuesThanCentroidsIsExact) {
  const float x[6] = {2, 1, 2, 1, 5, 2};
  const KMeans1DResult r = KMeans1D(x, nullptr, 6, 4);
  EXPECT_EQ(r.centroids, (std::vector<double>{1, 2, 5, 5}));
  EXPECT_EQ(r.objective, 0.0);
}

TEST(KMeans, WeightedCentroidsByHand) {
  // x = 0, 1, 10, 11, k = 2: the best split is {0, 1}, {10, 11}.
  const float x[4] = {0, 1, 10, 11};
  EXPECT_EQ(KMeans1D(x, nullptr, 4, 2).centroids, (std::vector<double>{0.5, 10.5}));
  // Weights 1, 3, 1, 1: (0·1 + 1·3)/4 = 0.75. A weightless cluster member does not pull: 10·2/2.
  const float w[4] = {1, 3, 2, 0};
  EXPECT_EQ(KMeans1D(x, w, 4, 2).centroids, (std::vector<double>{0.75, 10.0}));
}

TEST(KMeans, TwoDimensionalObjectiveNonIncreasingAndDeterministic) {
  const auto p = Gaussian(2 * 4000, 2);
  const KMeans2DResult a = KMeans2D(p.data(), 4000, 256, 30, 0);
  ExpectNonIncreasing(a.objective);
  EXPECT_LT(a.objective.back(), 0.8 * a.objective.front());
  EXPECT_EQ(KMeans2D(p.data(), 4000, 256, 30, 0).centroids, a.centroids);
  EXPECT_NE(KMeans2D(p.data(), 4000, 256, 30, 1).centroids, a.centroids);  // the seed matters
}

PackedBlocks Pack(const BlockCodec& c, const std::vector<float>& x, int64_t rows, int64_t cols,
                  const float* importance = nullptr) {
  BlockOptions o;
  o.importance = importance;
  auto p = c.Quantize(x.data(), rows, cols, o);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return std::move(p).value();
}

TEST(Lut, ExactBytesByHand) {
  // One row of 4 distinct values on lut2: the quantile init puts the 4 centroids on them (sorted).
  // Row: [fp16 -1 = 0xBC00, 0.5 = 0x3800, 2 = 0x4000, 4 = 0x4400, little-endian]
  //      [codes in element order 2 -> 2, -1 -> 0, 4 -> 3, 0.5 -> 1: 2 | 0<<2 | 3<<4 | 1<<6 = 0x72].
  const std::vector<float> x = {2.0f, -1.0f, 4.0f, 0.5f};
  PackedBlocks p = Pack(Lut2Codec(), x, 1, 4);
  const std::vector<uint8_t> want = {0x00, 0xBC, 0x00, 0x38, 0x00, 0x40, 0x00, 0x44, 0x72};
  EXPECT_EQ(p.bytes, want);
  EXPECT_EQ(p.block_size, 4);
  std::vector<float> y(4);
  Lut2Codec().Dequantize(p, y.data());
  EXPECT_EQ(y, x);
}

TEST(Lut, CodesAreTheNearestStoredCentroidAndBytesExact) {
  const int64_t rows = 6, cols = 333;  // odd: the rows' bit streams end mid-byte
  const auto x = Gaussian(size_t(rows * cols), 3);
  std::vector<float> imp(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) imp[c] = float(1 + (c * 7919) % 50);
  for (const BlockCodec* c : {&Lut2Codec(), &Lut3Codec(), &Lut4Codec()}) {
    SCOPED_TRACE(c->name());
    const int b = c->element_bits(), k = 1 << b;
    for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(imp.data())}) {
      PackedBlocks p = Pack(*c, x, rows, cols, w);
      const int64_t rb = 2 * k + (cols * b + 7) / 8;
      ASSERT_EQ(int64_t(p.bytes.size()), rows * rb);
      EXPECT_TRUE(p.extra.empty());
      EXPECT_DOUBLE_EQ(p.bits_per_weight(), c->nominal_bits_per_weight(int(cols)));
      std::vector<float> y(x.size());
      c->Dequantize(p, y.data());
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<double> cent(static_cast<size_t>(k));
        for (int j = 0; j < k; ++j) cent[j] = F16ToF32(uint16_t(p.bytes[r * rb + 2 * j] | p.bytes[r * rb + 2 * j + 1] << 8));
        for (int64_t col = 0; col < cols; ++col) {
          const double xv = x[r * cols + col], yv = y[r * cols + col];
          for (int j = 0; j < k; ++j) ASSERT_LE(std::fabs(xv - yv), std::fabs(xv - cent[j])) << r << " " << col;
        }
      }
    }
  }
  EXPECT_FALSE(Lut4Codec().Quantize(x.data(), rows, cols, BlockOptions{.block_size = 64}).ok());
}

double WeightedSse(const std::vector<float>& x, const std::vector<float>& y, int64_t cols, const float* w) {
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) e += (w ? w[i % cols] : 1.0) * std::pow(double(x[i]) - y[i], 2);
  return e;
}

TEST(Lut, WeightsLowerTheWeightedErrorAndCodebooksBeatTheUniformGrid) {
  const int64_t rows = 32, cols = 256;
  const auto x = Gaussian(size_t(rows * cols), 4, 0.02f);
  std::vector<float> imp(size_t(cols), 0.01f);
  for (int64_t c = 0; c < cols; c += 8) imp[c] = 100.0f;  // a few sensitive input columns
  for (int b : {2, 3, 4}) {
    SCOPED_TRACE(b);
    const BlockCodec& c = b == 2 ? Lut2Codec() : b == 3 ? Lut3Codec() : Lut4Codec();
    std::vector<float> plain(x.size()), weighted(x.size()), uniform(x.size());
    c.Dequantize(Pack(c, x, rows, cols), plain.data());
    c.Dequantize(Pack(c, x, rows, cols, imp.data()), weighted.data());
    EXPECT_LT(WeightedSse(x, weighted, cols, imp.data()), WeightedSse(x, plain, cols, imp.data()));
    // Same rows on the uniform int<b>:channel:asym grid: more error than the fitted codebook.
    auto s = ParseScheme("int" + std::to_string(b) + ":channel:asym");
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(FakeQuantize(*s, x.data(), rows, cols, uniform.data()).ok());
    EXPECT_LT(WeightedSse(x, plain, cols, nullptr), WeightedSse(x, uniform, cols, nullptr));
  }
}

TEST(Vq2x8, ExactBytesCodesNearestAndSmallTensorsExact) {
  // Fewer pairs than centroids: the init takes every pair, so fp16-exact pairs come back exactly.
  const std::vector<float> small = {0.5f, -1.0f, 2.0f, 0.25f, -3.0f, 8.0f};  // [2, 3]: pairs (0.5,-1) (2,0) / (0.25,-3) (8,0)
  PackedBlocks ps = Pack(Vq2x8BlockCodec(), small, 2, 3);
  ASSERT_EQ(ps.bytes.size(), 4u);
  ASSERT_EQ(ps.extra.size(), 1024u);
  std::vector<float> ys(6);
  Vq2x8BlockCodec().Dequantize(ps, ys.data());
  EXPECT_EQ(ys, small);

  const int64_t rows = 40, cols = 97;
  const auto x = Gaussian(size_t(rows * cols), 5);
  PackedBlocks p = Pack(Vq2x8BlockCodec(), x, rows, cols);
  ASSERT_EQ(int64_t(p.bytes.size()), rows * 49);
  EXPECT_DOUBLE_EQ(p.bits_per_weight(), 8.0 * double(rows * 49 + 1024) / double(rows * cols));
  std::vector<double> cent(512);
  for (int j = 0; j < 512; ++j) cent[j] = F16ToF32(uint16_t(p.extra[2 * j] | p.extra[2 * j + 1] << 8));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < 49; ++q) {
      const double a = x[r * cols + 2 * q], b = 2 * q + 1 < cols ? double(x[r * cols + 2 * q + 1]) : 0.0;
      const int code = p.bytes[r * 49 + q];
      const double d = std::pow(a - cent[2 * code], 2) + std::pow(b - cent[2 * code + 1], 2);
      for (int j = 0; j < 256; ++j) ASSERT_LE(d, std::pow(a - cent[2 * j], 2) + std::pow(b - cent[2 * j + 1], 2));
    }
  const float w = 1.0f;
  EXPECT_FALSE(Vq2x8BlockCodec().Quantize(x.data(), rows, cols, BlockOptions{.importance = &w}).ok());
}

TEST(CodebookSchemes, NamesAndCanonicalForms) {
  for (const char* t : {"lut2", "lut3:channel", "LUT4-channel", "vq2x8", "vq2x8:tensor"}) {
    auto s = ParseScheme(t);
    ASSERT_TRUE(s.ok()) << t << ": " << s.status().message();
    EXPECT_TRUE(s->is_block);
  }
  EXPECT_EQ(ToString(*ParseScheme("lut4")), "lut4:channel");
  EXPECT_EQ(ToString(*ParseScheme("vq2x8")), "vq2x8:tensor");
  EXPECT_FALSE(ParseScheme("lut4:g128").ok());
  EXPECT_FALSE(ParseScheme("lut5:channel").ok());
  EXPECT_FALSE(ParseScheme("vq2x8:channel").ok());
}

}  // namespace
}  // namespace ql
