// NF4 (bitsandbytes) against hand-derived values from docs/formats.md §1.3: codebook thresholds and ties, nibble
// order, partial blocks, the 8-bit dynamic map and double quantization, bits per weight.
#include "kernels/nf4.h"
#include "kernels/scheme.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ql {
namespace {

PackedBlocks Q(const std::vector<float>& x, int64_t rows, int64_t cols, int block_size = 0, bool dq = false) {
  BlockOptions o;
  o.block_size = block_size;
  o.nf4_double_quant = dq;
  auto r = Nf4BlockCodec().Quantize(x.data(), rows, cols, o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}
std::vector<float> DQ(const PackedBlocks& p) {
  std::vector<float> y(size_t(p.rows * p.cols), -12345.0f);
  Nf4BlockCodec().Dequantize(p, y.data());
  return y;
}

// bitsandbytes dQuantizeNF4 decision thresholds (csrc/kernels.cu), ascending.
const float kBnbThresholds[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

TEST(Nf4, ThresholdsAreBitsandbytesMidpoints) {
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(Nf4Thresholds()[i], kBnbThresholds[i]) << i;
    // Each is the midpoint of its two codebook neighbours to within one fp32 ulp.
    const double mid = (double(kNf4Codebook[i]) + double(kNf4Codebook[i + 1])) / 2;
    EXPECT_LE(std::fabs(double(kBnbThresholds[i]) - mid), std::ldexp(std::fabs(mid), -23)) << i;
  }
  // Index 14: the literal 0.8614784181118011f is 0x3F5C89D9, one ulp under the fp32 of the exact midpoint
  // (0.72295684 + 1)/2, which is a tie rounding up to 0x3F5C89DA. A value between them gets code 15.
  uint32_t bits;
  std::memcpy(&bits, &Nf4Thresholds()[14], 4);
  EXPECT_EQ(bits, 0x3F5C89D9u);
  float between;
  const uint32_t up = 0x3F5C89DAu;
  std::memcpy(&between, &up, 4);
  EXPECT_EQ(Nf4Code(between), 15u);
  // Codebook sanity: 16 sorted values, -1, 0 at index 7, +1.
  EXPECT_EQ(kNf4Codebook[0], -1.0f);
  EXPECT_EQ(kNf4Codebook[7], 0.0f);
  EXPECT_EQ(kNf4Codebook[15], 1.0f);
  for (int i = 0; i < 15; ++i) EXPECT_LT(kNf4Codebook[i], kNf4Codebook[i + 1]);
  EXPECT_EQ(Nf4Code(std::nanf("")), 0u);  // every `>` is false, as in the bitsandbytes decision tree
}

// Two rows of one block of 8 with absmax 2 (so x * (1/absmax) = x/2 exactly).
//  row 0: x/2 = 1, -1, 0, t7 (a tie: not > t7 -> lower code 7), 0.05 (t7 < . < t8 -> 8), 0.5 (< t12 -> 12),
//         0.502 (> t12 0.50166 -> 13), -0.5 (t1 < . <= t2 -> 2)          -> codes F 0 7 7 8 C D 2
//  row 1: x/2 = next float above t7 (-> 8), t6 (tie -> 6), above t6 (-> 7), t14 (tie -> 14),
//         above t14 (-> 15), t0 (tie -> 0), 1 (the absmax), -0.1 (t5 < . <= t6 -> 6) -> 8 6 7 E F 0 F 6
// Packing: byte = q[2j] << 4 | q[2j+1] (first element in the HIGH nibble).
std::vector<float> HandRows() {
  const float* t = kBnbThresholds;
  return {2.0f, -2.0f, 0.0f, 2 * t[7], 0.1f, 1.0f, 1.004f, -1.0f,
          2 * std::nextafter(t[7], 1.0f), 2 * t[6], 2 * std::nextafter(t[6], 1.0f), 2 * t[14],
          2 * std::nextafter(t[14], 2.0f), 2 * t[0], 2.0f, -0.2f};
}
const uint8_t kCodes[16] = {15, 0, 7, 7, 8, 12, 13, 2, 8, 6, 7, 14, 15, 0, 15, 6};

TEST(Nf4, HandBlockTiesAndHighNibbleFirst) {
  PackedBlocks p = Q(HandRows(), 2, 8, /*block_size=*/8);
  ASSERT_EQ(p.bytes.size(), 2u * (4 + 4));
  EXPECT_TRUE(p.extra.empty());
  const uint8_t want[16] = {0x00, 0x00, 0x00, 0x40, 0xF0, 0x77, 0x8C, 0xD2,   // fp32 2.0 LE, codes
                            0x00, 0x00, 0x00, 0x40, 0x86, 0x7E, 0xF0, 0xF6};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(p.bytes[i], want[i]) << i;
  const auto y = DQ(p);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(y[i], kNf4Codebook[kCodes[i]] * 2.0f) << i;
}

TEST(Nf4, PartialLastBlockAndZeroBlock) {
  // cols 10, block 8: block 1 = {0.5, -0.25} + 6 padding codes 7: absmax 0.5 (0x3F000000), x/0.5 = 1 -> F,
  // -0.5 -> 2; bytes F2 77 77 77. Row 1 is all zero: absmax 0 and codes 7 (0.0) -> y = 0.
  std::vector<float> x(20, 0.0f);
  const auto h = HandRows();
  std::copy(h.begin(), h.begin() + 8, x.begin());
  x[8] = 0.5f, x[9] = -0.25f;
  PackedBlocks p = Q(x, 2, 10, 8);
  ASSERT_EQ(p.bytes.size(), 4u * 8);
  const uint8_t blk1[8] = {0x00, 0x00, 0x00, 0x3F, 0xF2, 0x77, 0x77, 0x77};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p.bytes[8 + i], blk1[i]) << i;
  for (int b = 2; b < 4; ++b) {
    for (int i = 0; i < 4; ++i) EXPECT_EQ(p.bytes[b * 8 + i], 0) << b;
    for (int i = 4; i < 8; ++i) EXPECT_EQ(p.bytes[b * 8 + i], 0x77) << b;
  }
  const auto y = DQ(p);
  EXPECT_EQ(y[8], 0.5f);
  EXPECT_EQ(y[9], kNf4Codebook[2] * 0.5f);
  for (int i = 10; i < 20; ++i) EXPECT_EQ(y[i], 0.0f) << i;
  // Odd block size: 3 elements -> 2 code bytes, the 4th nibble is padding code 7.
  PackedBlocks o = Q({1.0f, -1.0f, 0.0f}, 1, 3, 3);
  ASSERT_EQ(o.bytes.size(), 6u);
  EXPECT_EQ(o.bytes[4], 0xF0);
  EXPECT_EQ(o.bytes[5], 0x77);
}

TEST(Nf4, DynamicMap) {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for i = 0..6, the 2^i midpoints
  // of linspace(0.1, 1, 2^i + 1) times 10^(i-6), both signs, plus 0 and 1. Largest below 1: i = 6, k = 63:
  // 0.1 + 0.9/64 * 63.5 = 0.99296875; next 0.97890625; smallest positive: i = 0: 0.55 * 1e-6.
  const auto& m = Nf4DynamicMap();
  EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_EQ(m[255], 1.0f);
  EXPECT_EQ(m[254], 0.99296875f);
  EXPECT_EQ(m[253], 0.97890625f);
  EXPECT_EQ(m[0], -0.99296875f);
  EXPECT_EQ(m[128], 5.5e-7f);
  EXPECT_EQ(m[126], -5.5e-7f);
  // Midpoint rule after the 7-step binary search (bitsandbytes dQuantize):
  EXPECT_EQ(DynamicMapCode(m, 1.0f), 255);
  EXPECT_EQ(DynamicMapCode(m, 0.0f), 127);
  EXPECT_EQ(DynamicMapCode(m, -1.0f), 0);       // -1 is not in the map: nearest is -0.99296875
  EXPECT_EQ(DynamicMapCode(m, 0.99f), 254);
  EXPECT_EQ(DynamicMapCode(m, 0.985f), 253);    // midpoint of 253/254 is 0.9859375
  EXPECT_EQ(DynamicMapCode(m, 3e-7f), 128);     // midpoint of 0 and 5.5e-7 is 2.75e-7
  EXPECT_EQ(DynamicMapCode(m, 2e-7f), 127);
}

// Random weights whose scale varies by row, so the block absmaxes spread around their mean.
std::vector<float> RandomWeights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float s = 0.01f * (1 + r % 7);
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = s * n(rng);
  }
  return x;
}

TEST(Nf4, DoubleQuantScalesWithinMapError) {
  // 40 x 512 at block 64: 320 blocks -> two second-level groups (256 + 64).
  const int64_t rows = 40, cols = 512, nb = 8;
  const auto x = RandomWeights(rows, cols, 7);
  PackedBlocks plain = Q(x, rows, cols);
  PackedBlocks dq = Q(x, rows, cols, 0, true);
  ASSERT_EQ(dq.bytes.size(), size_t(rows * nb * 33));
  ASSERT_EQ(dq.extra.size(), 4u + 2 * 4);
  // Independent statistics: absmax per block, their mean, the absmax of (absmax - mean) per group of 256.
  std::vector<double> amax(rows * nb, 0.0);
  for (int64_t i = 0; i < rows * cols; ++i) {
    double& a = amax[(i / cols) * nb + (i % cols) / 64];
    a = std::max(a, double(std::fabs(x[i])));
  }
  double mean = 0;
  for (double a : amax) mean += a;
  mean /= double(amax.size());
  float offset;
  std::memcpy(&offset, dq.extra.data(), 4);
  EXPECT_NEAR(offset, mean, 1e-6 * mean);
  const auto y = DQ(dq);
  for (int64_t b = 0; b < rows * nb; ++b) {
    const int64_t g0 = (b / 256) * 256, g1 = std::min<int64_t>(g0 + 256, rows * nb);
    double amax2 = 0;
    for (int64_t k = g0; k < g1; ++k) amax2 = std::max(amax2, std::fabs(amax[k] - mean));
    // The block's absmax element has code 0 or 15 (+-1), so max |y| over the block is the decoded absmax.
    double decoded = 0;
    const int64_t r = b / nb, c0 = (b % nb) * 64;
    for (int64_t c = c0; c < c0 + 64; ++c) decoded = std::max(decoded, double(std::fabs(y[r * cols + c])));
    // Largest half-gap of the dynamic map: 0.9/64/2 = 0.00703125 (also the distance of -1 to -0.99296875).
    EXPECT_LE(std::fabs(decoded - amax[b]), 0.00703125 * amax2 * (1 + 1e-5) + 1e-6 * amax[b]) << b;
    // The 4-bit codes do not depend on double quantization (bitsandbytes quantizes with the fp32 absmax).
    EXPECT_EQ(0, std::memcmp(dq.bytes.data() + b * 33 + 1, plain.bytes.data() + b * 36 + 4, 32)) << b;
  }
}

// Nearest codebook entry in exact (double) arithmetic, the lower index on an exact tie: the rule the
// torch/CPU argmin approximates in fp32. Independent of kernels/nf4.cc.
uint32_t ExactNearest(float x) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < 16; ++i)
    if (std::fabs(double(x) - double(kNf4Codebook[i])) < std::fabs(double(x) - double(kNf4Codebook[best]))) best = i;
  return best;
}

// Both rules at every threshold t_i and 1..2 ulp either side. Tree (the published dQuantizeNF4): code i for
// x <= t_i, i + 1 above. Argmin: the exact nearest code, except where fp32 |x - c| ties (none in these
// windows). They part exactly at x = t_i for i in {1, 3, 4, 8}: those literals round to the fp32 just
// below the exact midpoint, so the tree gives i while the nearest code is i + 1.
TEST(Nf4, TreeAndArgminAtEveryThresholdPlusMinusTwoUlp) {
  const std::vector<int> kPart = {1, 3, 4, 8};
  int differ = 0;
  for (int i = 0; i < 15; ++i) {
    float x = kBnbThresholds[i];
    x = std::nextafter(std::nextafter(x, -2.0f), -2.0f);
    for (int k = -2; k <= 2; ++k, x = std::nextafter(x, 2.0f)) {
      SCOPED_TRACE("threshold " + std::to_string(i) + " ulp " + std::to_string(k));
      const uint32_t tree = uint32_t(i + (k > 0 ? 1 : 0));
      EXPECT_EQ(Nf4Code(x), tree);
      const bool part = k == 0 && std::find(kPart.begin(), kPart.end(), i) != kPart.end();
      EXPECT_EQ(Nf4CodeArgmin(x), part ? tree + 1 : tree);
      EXPECT_EQ(Nf4CodeArgmin(x), ExactNearest(x));
      differ += Nf4Code(x) != Nf4CodeArgmin(x);
    }
  }
  EXPECT_EQ(differ, 4);
  // Away from thresholds the two rules agree (a coarse scan of [-1, 1]).
  for (int k = -1000; k <= 1000; ++k) {
    const float x = float(k) / 1000.0f + 1e-4f;
    EXPECT_EQ(Nf4Code(x), Nf4CodeArgmin(x)) << x;
  }
}

TEST(Nf4, ArgminOptionThroughTheSchemeAndCodec) {
  auto s = ParseScheme("NF4-argmin");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(s->block.nf4_argmin);
  EXPECT_EQ(ToString(*s), "nf4:argmin");
  EXPECT_EQ(ToString(*ParseScheme("nf4:argmin:dq:g32")), "nf4:g32:dq:argmin");
  EXPECT_NE(*ParseScheme("nf4"), *s);
  EXPECT_FALSE(ParseScheme("nf4:argmin:argmin").ok());
  EXPECT_FALSE(ParseScheme("mxfp4:argmin").ok());
  // One block with absmax 1 holding t1 (x * 1 = x exactly): code 1 by the tree, 2 by argmin.
  const std::vector<float> x = {1.0f, kBnbThresholds[1]};
  BlockOptions tree, am;
  am.nf4_argmin = true;
  auto pt = Nf4BlockCodec().Quantize(x.data(), 1, 2, tree);
  auto pa = Nf4BlockCodec().Quantize(x.data(), 1, 2, am);
  ASSERT_TRUE(pt.ok() && pa.ok());
  EXPECT_EQ(pt->bytes[4], 0xF1);
  EXPECT_EQ(pa->bytes[4], 0xF2);
}

// Double quantization, exact bytes by hand. Rows of one block of 4: absmaxes 1, 3 (flattened order).
// offset = mean = 2; c = -1, +1; absmax2 = 1; 8-bit codes: -1 -> 0 (map[0] = -(0.9859375 + 1)/2 =
// -0.99296875: the signed map has +1 but no -1), +1 -> 255 (map[255] = 1). Decoded absmaxes: 2 - 0.99296875
// = 1.00703125 and 1 + 2 = 3, both exact in fp32. Layout per block: [u8 code][2 code bytes];
// extra = [fp32 offset 2.0][fp32 absmax2 1.0].
TEST(Nf4, DoubleQuantExactBytesByHand) {
  const std::vector<float> x = {1.0f, -1.0f, 0.0f, 0.5f, 3.0f, 1.5f, -3.0f, 0.0f};
  PackedBlocks p = Q(x, 2, 4, 4, /*dq=*/true);
  // Codes: row 0 x/1 = 1, -1, 0, 0.5 -> F 0 7 C (0.5 in (t11, t12]); row 1 x/3 = 1, 0.5, -1, 0 -> F C 0 7.
  const std::vector<uint8_t> want = {0x00, 0xF0, 0x7C, 0xFF, 0xFC, 0x07};
  EXPECT_EQ(p.bytes, want);
  const std::vector<uint8_t> extra = {0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x80, 0x3F};
  EXPECT_EQ(p.extra, extra);
  EXPECT_EQ(p.total_bytes(), 14u);
  const auto y = DQ(p);
  const float a0 = 1.00703125f;
  const std::vector<float> back = {a0, -a0, 0.0f, kNf4Codebook[12] * a0, 3.0f, kNf4Codebook[12] * 3.0f, -3.0f, 0.0f};
  EXPECT_EQ(y, back);
}

TEST(Nf4, BitsPerWeight) {
  EXPECT_DOUBLE_EQ(Nf4BlockCodec().nominal_bits_per_weight(64), 4.5);
  EXPECT_DOUBLE_EQ(Nf4BlockCodec().nominal_bits_per_weight(32), 5.0);
  const auto x = RandomWeights(1024, 64, 3);
  EXPECT_DOUBLE_EQ(Q(x, 1024, 64).bits_per_weight(), 4.5);
  // DQ: 1024 blocks x 33 B + offset + 4 group absmaxes = 33812 B over 65536 weights.
  EXPECT_DOUBLE_EQ(Q(x, 1024, 64, 0, true).bits_per_weight(), 33812.0 * 8 / 65536);  // 4.12744...
  EXPECT_NEAR(Q(x, 1024, 64, 0, true).bits_per_weight(), 4.127, 0.001);
  std::vector<float> bad(64, 1.0f);
  bad[5] = INFINITY;
  EXPECT_FALSE(Nf4BlockCodec().Quantize(bad.data(), 1, 64, {}).ok());
}

}  // namespace
}  // namespace ql
