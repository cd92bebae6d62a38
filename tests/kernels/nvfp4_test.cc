// NVFP4 in the ModelOpt and compressed-tensors conventions against values derived from docs/formats.md §3.
// The fp32 intermediate values were worked out with a plain float32 calculator (Python floats rounded
// through struct 'f' after each operation, following the reference formulas step by step), not by this code.
#include "kernels/nvfp4.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace ql {
namespace {

PackedBlocks Q(const std::vector<float>& x, int64_t rows, int64_t cols, NvFp4Convention conv,
               int block_size = 0) {
  BlockOptions o;
  o.nvfp4 = conv;
  o.block_size = block_size;
  auto r = NvFp4BlockCodec().Quantize(x.data(), rows, cols, o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}
std::vector<float> DQ(const PackedBlocks& p) {
  std::vector<float> y(size_t(p.rows * p.cols), -12345.0f);
  NvFp4BlockCodec().Dequantize(p, y.data());
  return y;
}
float F(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float TensorScale(const PackedBlocks& p) {
  float f;
  std::memcpy(&f, p.extra.data(), 4);
  return f;
}

// One row of 32 = two blocks. Block 0 holds the tensor amax 3 and exercises every E2M1 decision point;
// block 1 has amax 0.0636160671710968 (fp32 0x3D824924), where the two conventions pick different E4M3
// block scales.
//   ModelOpt: scale_2 = fl(3/2688) = 0x3A924925; block 0: bs = 3/fl(6*scale_2) = 447.99997 -> E4M3 448
//     (0x7E); eff = fl(448*scale_2) = 0.5 exactly. Block 1: bs = 9.499999 -> E4M3 9.0 (0x51).
//   compressed-tensors: gs = fl(2688/3) = 896 exactly; block 0: s = 896*fl(3/6) = 448 (0x7E); eff = 448/896
//     = 0.5. Block 1: s = fl(896*fl(amax_b/6)) = 9.5 exactly -> tie between 9 (mantissa 001) and 10
//     (mantissa 010) -> even -> 10.0 (0x52).
const std::vector<float> kBlock0 = {3.0f, -1.5f, 0.25f, 0.75f, 1.25f, 0.375f, 2.75f, 2.5f,
                                    -0.1f, 0.0f, 1.75f, 0.625f, 0.875f, -3.0f, 2.0f, 0.5f};
// x/0.5 = 6, -3, 0.5, 1.5, 2.5 (tie -> 2), 0.75 (tie -> 1), 5.5 (-> 6), 5 (tie -> 4), -0.2 (-> -0),
// 0, 3.5 (tie -> 4), 1.25 (tie -> 1), 1.75 (tie -> 2), -6, 4, 1.
// Codes S.EE.M: 6=7, -3=D, 0.5=1, 1.5=3, 2=4, 1=2, 6=7, 4=6, -0=8 (ModelOpt: sign = x<0) / 0 (CT), 0=0,
// 4=6, 1=2, 2=4, -6=F, 4=6, 1=2.
const uint8_t kCodesModelOpt[16] = {0x7, 0xD, 0x1, 0x3, 0x4, 0x2, 0x7, 0x6, 0x8, 0x0, 0x6, 0x2, 0x4, 0xF, 0x6, 0x2};
const float kDeq0[16] = {3.0f, -1.5f, 0.25f, 0.75f, 1.0f, 0.5f, 3.0f, 2.0f,
                         0.0f, 0.0f, 2.0f, 0.5f, 1.0f, -3.0f, 2.0f, 0.5f};

std::vector<float> TwoBlockRow() {
  std::vector<float> x = kBlock0;
  x.resize(32, 0.0f);
  x[16] = F(0x3D824924);  // 0.0636160671710968
  return x;
}

TEST(NvFp4, HandBlockModelOpt) {
  PackedBlocks p = Q(TwoBlockRow(), 1, 32, NvFp4Convention::kModelOpt);
  ASSERT_EQ(p.bytes.size(), 18u);  // 2 x (1 + 8)
  ASSERT_EQ(p.extra.size(), 5u);
  EXPECT_EQ(TensorScale(p), F(0x3A924925));
  EXPECT_EQ(p.extra[4], 0);
  EXPECT_EQ(p.bytes[0], 0x7E);
  for (int j = 0; j < 8; ++j)  // even element in the low nibble
    EXPECT_EQ(p.bytes[1 + j], kCodesModelOpt[2 * j] | kCodesModelOpt[2 * j + 1] << 4) << j;
  EXPECT_EQ(p.bytes[1], 0xD7);
  EXPECT_EQ(p.bytes[5], 0x08);  // (-0.1 -> -0 code 0x8, 0.0 -> 0x0)
  EXPECT_EQ(p.bytes[9], 0x51);  // block 1 scale 9.0
  // Block 1: eff = fl(9 * scale_2) = 0.01004464365541935 (0x3C24924A); 0.06361607/eff = 6.33 -> 6 (0x7).
  EXPECT_EQ(p.bytes[10], 0x07);
  for (int j = 11; j < 18; ++j) EXPECT_EQ(p.bytes[j], 0) << j;
  const auto y = DQ(p);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(y[i], kDeq0[i]) << i;
  EXPECT_EQ(y[16], 6.0f * F(0x3C24924A));  // 0.0602678619325161
  EXPECT_EQ(y[16], 0.0602678619325161f);
}

TEST(NvFp4, HandBlockCompressedTensors) {
  PackedBlocks p = Q(TwoBlockRow(), 1, 32, NvFp4Convention::kCompressedTensors);
  ASSERT_EQ(p.bytes.size(), 18u);
  EXPECT_EQ(TensorScale(p), 896.0f);  // a divisor: 2688 / 3
  EXPECT_EQ(p.extra[4], 1);
  EXPECT_EQ(p.bytes[0], 0x7E);
  for (int j = 0; j < 8; ++j) {
    const uint8_t lo = kCodesModelOpt[2 * j] == 0x8 ? 0x0 : kCodesModelOpt[2 * j];  // -0 -> code 0
    EXPECT_EQ(p.bytes[1 + j], lo | kCodesModelOpt[2 * j + 1] << 4) << j;
  }
  EXPECT_EQ(p.bytes[5], 0x00);
  EXPECT_EQ(p.bytes[9], 0x52);  // block 1 scale 10.0: differs from ModelOpt's 9.0
  // eff = fl(10 / 896) = 0.01116071455180645 (0x3C36DB6E); 0.0636/eff = 5.7 -> 6.
  EXPECT_EQ(p.bytes[10], 0x07);
  const auto y = DQ(p);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(y[i], kDeq0[i]) << i;
  EXPECT_EQ(y[16], 6.0f * F(0x3C36DB6E));
  EXPECT_EQ(y[16], 0.0669642835855484f);
}

TEST(NvFp4, OneOutlierConventionsDifferInLastBit) {
  // 16 elements: 100 then fifteen 1.0. Both block scales are 448 (0x7E).
  //  ModelOpt: scale_2 = fl(100/2688) = 0x3D186186; eff = fl(448*scale_2) = 16.666666 (0x41855555);
  //            100/eff = 6.0000002 -> 6; 1/eff = 0.06 -> 0; y0 = 6*eff = 100 exactly.
  //  CT:       gs = fl(2688/100) = 26.88 (0x41D70A3D); s = fl(gs*fl(100/6)) = 447.99997 -> 448;
  //            eff = fl(448/gs) = 16.666668 (0x41855556); y0 = 100.00000762939453.
  std::vector<float> x(16, 1.0f);
  x[0] = 100.0f;
  PackedBlocks m = Q(x, 1, 16, NvFp4Convention::kModelOpt);
  PackedBlocks c = Q(x, 1, 16, NvFp4Convention::kCompressedTensors);
  EXPECT_EQ(TensorScale(m), F(0x3D186186));
  EXPECT_EQ(TensorScale(c), F(0x41D70A3D));
  for (const PackedBlocks* p : {&m, &c}) {
    EXPECT_EQ(p->bytes[0], 0x7E);
    EXPECT_EQ(p->bytes[1], 0x07);
    for (int j = 2; j < 9; ++j) EXPECT_EQ(p->bytes[j], 0x00) << j;
  }
  const auto ym = DQ(m), yc = DQ(c);
  EXPECT_EQ(ym[0], 100.0f);
  EXPECT_EQ(yc[0], 100.00000762939453f);
  for (int i = 1; i < 16; ++i) {
    EXPECT_EQ(ym[i], 0.0f);
    EXPECT_EQ(yc[i], 0.0f);
  }
}

TEST(NvFp4, AllZeroTensorAndZeroBlock) {
  // All-zero tensor: tensor scale stored as 1.0 (both references would divide by zero); ModelOpt's zero
  // block scale is 1.0 (E4M3 0x38), compressed-tensors' is 0.125 (0x20); every code 0; y = 0.
  const std::vector<float> z(32, 0.0f);
  PackedBlocks m = Q(z, 1, 32, NvFp4Convention::kModelOpt);
  PackedBlocks c = Q(z, 1, 32, NvFp4Convention::kCompressedTensors);
  EXPECT_EQ(TensorScale(m), 1.0f);
  EXPECT_EQ(TensorScale(c), 1.0f);
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(m.bytes[b * 9], 0x38);
    EXPECT_EQ(c.bytes[b * 9], 0x20);
    for (int j = 1; j < 9; ++j) {
      EXPECT_EQ(m.bytes[b * 9 + j], 0);
      EXPECT_EQ(c.bytes[b * 9 + j], 0);
    }
  }
  for (float v : DQ(m)) EXPECT_EQ(v, 0.0f);
  for (float v : DQ(c)) EXPECT_EQ(v, 0.0f);
  // A zero block inside a non-zero tensor gets the same per-convention scale byte.
  std::vector<float> x(32, 0.0f);
  x[0] = 5.0f;
  EXPECT_EQ(Q(x, 1, 32, NvFp4Convention::kModelOpt).bytes[9], 0x38);
  EXPECT_EQ(Q(x, 1, 32, NvFp4Convention::kCompressedTensors).bytes[9], 0x20);
}

TEST(NvFp4, PartialLastBlock) {
  // compressed-tensors, rows of 20 with block 16: block 1 has 4 real elements {0.5, -1, 0.25, 0.75}.
  // Tensor amax 6 (block 0 = 6, 0, ...): gs = 2688/6 = 448. Block 0: s = 448 -> eff = 1.
  // Block 1: s = fl(448*fl(1/6)) = 74.66667 -> E4M3: 74.67/64 = 1.1667 -> mantissa 1.33 -> 1 -> 72
  // (exp 13, mant 1: 0x69); eff = fl(72/448) = 0.16071428 (0x3E249249).
  //   0.5/eff = 3.111 -> 3 (0x5); -1/eff = -6.22 -> clamp -6 (0xF); 0.25/eff = 1.556 -> 1.5 (0x3);
  //   0.75/eff = 4.667 -> 4 (0x6). Bytes: 0xF5, 0x63, then zero padding.
  std::vector<float> x(20, 0.0f);
  x[0] = 6.0f;
  x[16] = 0.5f, x[17] = -1.0f, x[18] = 0.25f, x[19] = 0.75f;
  PackedBlocks p = Q(x, 1, 20, NvFp4Convention::kCompressedTensors);
  ASSERT_EQ(p.bytes.size(), 18u);
  EXPECT_EQ(TensorScale(p), 448.0f);
  EXPECT_EQ(p.bytes[0], 0x7E);
  EXPECT_EQ(p.bytes[1], 0x07);
  EXPECT_EQ(p.bytes[9], 0x69);
  EXPECT_EQ(p.bytes[10], 0xF5);
  EXPECT_EQ(p.bytes[11], 0x63);
  for (int j = 12; j < 18; ++j) EXPECT_EQ(p.bytes[j], 0) << j;
  const auto y = DQ(p);
  const float eff = F(0x3E249249);
  EXPECT_EQ(y[0], 6.0f);
  EXPECT_EQ(y[16], 3.0f * eff);   // 0.4821428656578064
  EXPECT_EQ(y[17], -6.0f * eff);  // -0.9642857313156128
  EXPECT_EQ(y[18], 1.5f * eff);
  EXPECT_EQ(y[19], 4.0f * eff);
  EXPECT_EQ(y[16], 0.4821428656578064f);
}

TEST(NvFp4, BitsPerWeightAndErrors) {
  EXPECT_DOUBLE_EQ(NvFp4BlockCodec().nominal_bits_per_weight(16), 4.5);
  const std::vector<float> x(4 * 64, 1.0f);
  PackedBlocks p = Q(x, 4, 64, NvFp4Convention::kModelOpt);
  EXPECT_EQ(p.bytes.size(), 4u * 4 * 9);
  EXPECT_DOUBLE_EQ(p.bits_per_weight(), (4.0 * 4 * 9 + 5) * 8 / 256);  // 4.5 + 40 bits per tensor
  std::vector<float> bad(16, 1.0f);
  bad[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(NvFp4BlockCodec().Quantize(bad.data(), 1, 16, {}).ok());
}

}  // namespace
}  // namespace ql
