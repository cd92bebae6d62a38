// Tests for the GGUF types of kernels/gguf_kquants.cc (Q2_K, Q3_K, Q5_K, Q8_K, IQ4_NL, IQ4_XS): field
// offsets from ggml-common.h, hand-packed blocks (packed here from the layout in docs/gguf.md, independently
// of the code) that must dequantize to the layout's formula, and importance weighting that must lower the
// importance-weighted error. Byte identity with ggml itself is the interop test's job (tests/interop).
#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/gguf_blocks.h"
#include "kernels/half.h"

namespace ql {
namespace {

using gguf::BlockIq4Nl;
using gguf::BlockIq4Xs;
using gguf::BlockQ2_K;
using gguf::BlockQ3_K;
using gguf::BlockQ5_K;
using gguf::BlockQ8_K;

TEST(GgufKquantsLayout, FieldOffsetsMatchGgmlCommon) {
  EXPECT_EQ(offsetof(BlockQ2_K, qs), 16u);
  EXPECT_EQ(offsetof(BlockQ2_K, d), 80u);  // d, dmin last
  EXPECT_EQ(offsetof(BlockQ3_K, qs), 32u);
  EXPECT_EQ(offsetof(BlockQ3_K, scales), 96u);
  EXPECT_EQ(offsetof(BlockQ3_K, d), 108u);
  EXPECT_EQ(offsetof(BlockQ5_K, scales), 4u);
  EXPECT_EQ(offsetof(BlockQ5_K, qh), 16u);
  EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);
  EXPECT_EQ(offsetof(BlockQ8_K, qs), 4u);
  EXPECT_EQ(offsetof(BlockQ8_K, bsums), 260u);
  EXPECT_EQ(offsetof(BlockIq4Nl, qs), 2u);
  EXPECT_EQ(offsetof(BlockIq4Xs, scales_h), 2u);
  EXPECT_EQ(offsetof(BlockIq4Xs, scales_l), 4u);
  EXPECT_EQ(offsetof(BlockIq4Xs, qs), 8u);
}

TEST(GgufKquantsHand, Q2_K) {
  // d = 0.5, dmin = 0.25; sub-block s: scale s % 16, min 15 - s; code of element e: (3e) mod 4.
  BlockQ2_K b{};
  for (int s = 0; s < 16; ++s) b.scales[s] = uint8_t((s % 16) | ((15 - s) << 4));
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    b.qs[32 * h + l] |= uint8_t(((3 * e) % 4) << (2 * k));
  }
  b.d = F32ToF16(0.5f);
  b.dmin = F32ToF16(0.25f);
  float y[256];
  gguf::DequantizeBlockQ2_K(b, y);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 16;
    EXPECT_EQ(y[e], 0.5f * float(s) * float((3 * e) % 4) - 0.25f * float(15 - s)) << e;
  }
  EXPECT_EQ(y[255], 0.5f * 15 * 1 - 0.f);  // s 15, code 765 mod 4 = 1, min 0
}

TEST(GgufKquantsHand, Q3_K) {
  // d = 0.125; signed scales sc(s) = 3s - 24 (stored +32); 3-bit code (5e) mod 8 -> value code - 4.
  BlockQ3_K b{};
  for (int s = 0; s < 16; ++s) {
    const int v = 3 * s - 24 + 32;  // 0..63
    b.scales[s % 8] |= uint8_t((v & 0xF) << (4 * (s / 8)));
    b.scales[8 + s % 4] |= uint8_t((v >> 4) << (2 * (s / 4)));
  }
  for (int e = 0; e < 256; ++e) {
    const int code = (5 * e) % 8, h = e / 128, k = (e % 128) / 32, l = e % 32;
    b.qs[32 * h + l] |= uint8_t((code & 3) << (2 * k));
    if (code & 4) b.hmask[e % 32] |= uint8_t(1 << (e / 32));
  }
  b.d = F32ToF16(0.125f);
  float y[256];
  gguf::DequantizeBlockQ3_K(b, y);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], 0.125f * float(3 * (e / 16) - 24) * float((5 * e) % 8 - 4)) << e;
  }
}

TEST(GgufKquantsHand, Q5_K) {
  // d = 0.5, dmin = 1; 6-bit scales/mins as Q4_K (PackScaleMinK4); 5-bit code (7e) mod 32.
  const uint8_t sc[8] = {1, 10, 33, 63, 5, 40, 17, 60}, m[8] = {0, 63, 2, 31, 48, 7, 33, 1};
  BlockQ5_K b{};
  gguf::PackScaleMinK4(sc, m, b.scales);
  for (int e = 0; e < 256; ++e) {
    const int code = (7 * e) % 32, c = e / 64, hi = (e % 64) / 32, l = e % 32;
    b.qs[32 * c + l] |= uint8_t((code & 15) << (4 * hi));
    if (code & 16) b.qh[l] |= uint8_t(1 << (2 * c + hi));
  }
  b.d = F32ToF16(0.5f);
  b.dmin = F32ToF16(1.f);
  float y[256];
  gguf::DequantizeBlockQ5_K(b, y);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32;
    EXPECT_EQ(y[e], 0.5f * float(sc[s]) * float((7 * e) % 32) - 1.f * float(m[s])) << e;
  }
}

TEST(GgufKquantsHand, Iq4NlAndXs) {
  // IQ4_NL: d = 2, index of element j: j mod 16 -> 2·K[j mod 16].
  BlockIq4Nl nl{};
  nl.d = F32ToF16(2.f);
  for (int j = 0; j < 16; ++j) nl.qs[j] = uint8_t((j % 16) | (((j + 16) % 16) << 4));
  float y[256];
  gguf::DequantizeBlockIq4Nl(nl, y);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 2.f * float(gguf::kIq4NlValues[j % 16])) << j;
  EXPECT_EQ(y[0], -254.f);
  EXPECT_EQ(y[15], 226.f);
  // IQ4_XS: d = 0.25, sub-block scale ls(s) = 32 + 4s - 14 (6 bits split 4 + 2), index (3e) mod 16.
  BlockIq4Xs xs{};
  xs.d = F32ToF16(0.25f);
  for (int s = 0; s < 8; ++s) {
    const int ls = 32 + 4 * s - 14;
    xs.scales_l[s / 2] |= uint8_t((ls & 15) << (4 * (s % 2)));
    xs.scales_h = uint16_t(xs.scales_h | ((ls >> 4) << (2 * s)));
  }
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, j = e % 32;
    xs.qs[16 * s + j % 16] |= uint8_t(((3 * e) % 16) << (4 * (j / 16)));
  }
  gguf::DequantizeBlockIq4Xs(xs, y);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], 0.25f * float(4 * (e / 32) - 14) * float(gguf::kIq4NlValues[(3 * e) % 16])) << e;
  }
}

TEST(GgufKquantsHand, Q8_KQuantizesToMinus127OverTheSignedMax) {
  float x[256];
  for (int j = 0; j < 256; ++j) x[j] = float(j - 100) / 8.f;  // max |x| at j = 255: +19.375
  BlockQ8_K b;
  gguf::QuantizeBlockQ8_K(x, &b);
  EXPECT_EQ(b.d, 19.375f / -127.f);
  EXPECT_EQ(b.qs[255], -127);
  EXPECT_EQ(b.qs[100], 0);
  int sum = 0;
  for (int j = 0; j < 16; ++j) sum += b.qs[j];
  EXPECT_EQ(b.bsums[0], sum);
  float y[256];
  gguf::DequantizeBlockQ8_K(b, y);
  for (int j = 0; j < 256; ++j) EXPECT_NEAR(y[j], x[j], 0.5f * std::fabs(b.d) * 1.0001f) << j;
}

TEST(GgufKquantsImportance, WeightedQuantizationLowersTheWeightedError) {
  // Rows of N(0, 1) with importance 100 on every 7th column and 1 elsewhere: ggml's weighted fits must
  // lower sum q·(x - y)² against the unweighted reference for every type that has a weighted path.
  const int64_t rows = 64, cols = 512;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(rows * cols)), qw(static_cast<size_t>(cols));
  for (float& v : x) v = nd(rng);
  for (int64_t j = 0; j < cols; ++j) qw[size_t(j)] = j % 7 == 0 ? 100.f : 1.f;
  for (const BlockCodec* c : GgufBlockCodecs()) {
    if (c->name() == "q8_0" || c->name() == "q8_k") continue;  // ggml ignores the weights for these
    SCOPED_TRACE(c->name());
    BlockOptions plain, weighted;
    weighted.importance = qw.data();
    StatusOr<PackedBlocks> p = c->Quantize(x.data(), rows, cols, plain);
    StatusOr<PackedBlocks> w = c->Quantize(x.data(), rows, cols, weighted);
    ASSERT_TRUE(p.ok() && w.ok()) << w.status().message();
    EXPECT_NE(p->bytes, w->bytes);
    std::vector<float> yp(x.size()), yw(x.size());
    c->Dequantize(*p, yp.data());
    c->Dequantize(*w, yw.data());
    double ep = 0, ew = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double q = qw[i % size_t(cols)];
      ep += q * (x[i] - yp[i]) * (x[i] - yp[i]);
      ew += q * (x[i] - yw[i]) * (x[i] - yw[i]);
    }
    EXPECT_LT(ew, 0.95 * ep) << "weighted " << ew << " vs plain " << ep;
  }
}

TEST(GgufKquantsImportance, BadImportanceIsAnError) {
  std::vector<float> x(2 * 256, 0.5f), qw(256, 1.f);
  BlockOptions opt;
  opt.importance = qw.data();
  StatusOr<PackedBlocks> partial = GgufQ4_KCodec()->Quantize(x.data(), 2, 200, opt);
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("whole 256-blocks"), std::string::npos) << partial.status().message();
  qw[3] = -1.f;
  StatusOr<PackedBlocks> neg = GgufQ4_KCodec()->Quantize(x.data(), 2, 256, opt);
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("column 3"), std::string::npos) << neg.status().message();
  StatusOr<const BlockCodec*> mx = FindBlockCodec("mxfp4");
  ASSERT_TRUE(mx.ok());
  qw[3] = 1.f;
  EXPECT_FALSE((*mx)->Quantize(x.data(), 2, 256, opt).ok());
}

}  // namespace
}  // namespace ql
