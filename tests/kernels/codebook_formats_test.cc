// The codebook formats lut<b> (kernels/lut.h) and vq2x8 (kernels/vq.h) and their k-means (kernels/kmeans.h):
// objectives non-increasing, hand cases for weighted centroids and exact bytes, every stored code the nearest
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

TEST(KMeans, OneDimensionalObjectiveNonIncreasingAndDeterministic) {
  const auto x = Gaussian(3000, 1);
  std::vector<float> w(x.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f + float(i % 13);
  for (int k : {4, 8, 16}) {
    const KMeans1DResult a = KMeans1D(x.data(), nullptr, int64_t(x.size()), k, 100);
    const KMeans1DResult b = KMeans1D(x.data(), w.data(), int64_t(x.size()), k, 100);
    ExpectNonIncreasing(a.objective);
    ExpectNonIncreasing(b.objective);
    EXPECT_LT(a.objective.back(), a.objective.front());
    EXPECT_TRUE(std::is_sorted(a.centroids.begin(), a.centroids.end()));
    EXPECT_EQ(KMeans1D(x.data(), w.data(), int64_t(x.size()), k, 100).centroids, b.centroids);
  }
}

TEST(KMeans, WeightedCentroidsByHand) {
  // x = 0, 1, 10, 11, k = 2: quantile init x[1], x[3] (the 1/4 and 3/4 quantiles); clusters {0, 1}, {10, 11}.
  const float x[4] = {0, 1, 10, 11};
  EXPECT_EQ(KMeans1D(x, nullptr, 4, 2, 10).centroids, (std::vector<double>{0.5, 10.5}));
  // Weights 1, 3, 1, 1: (0·1 + 1·3)/4 = 0.75. A weightless cluster member does not pull: 10·2/2.
  const float w[4] = {1, 3, 2, 0};
  EXPECT_EQ(KMeans1D(x, w, 4, 2, 10).centroids, (std::vector<double>{0.75, 10.0}));
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
