// MX block codecs against values derived by hand from docs/formats.md §2 (OCP MX v1.0 / microxcaling rules).
// Every expected scale byte, code and value below is worked out in the comment beside it. The fast
// Quantize is also compared with the scalar QuantizeRef on every fp32 bucket and every dispatch target.
#include "kernels/mx.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "tests/kernels/hwy_targets.h"

namespace ql {
namespace {

PackedBlocks Q(const BlockCodec& c, const std::vector<float>& x, int64_t rows, int64_t cols,
               BlockOptions opt = {}) {
  auto r = c.Quantize(x.data(), rows, cols, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}
std::vector<float> DQ(const BlockCodec& c, const PackedBlocks& p) {
  std::vector<float> y(size_t(p.rows * p.cols), -12345.0f);
  c.Dequantize(p, y.data());
  return y;
}
std::vector<float> Block32(std::initializer_list<float> head) {
  std::vector<float> x(32, 0.0f);
  int i = 0;
  for (float v : head) x[i++] = v;
  return x;
}

const MxCodec& Mx(const BlockCodec& c) { return static_cast<const MxCodec&>(c); }

// docs/formats.md §2 `_quantize_elemwise_core` with round="even" and saturation, written out as a scalar oracle:
// e = max(floor(log2|a|), min_exp), a' = RNE(a / 2^e * 2^m) / 2^m * 2^e, clamp +-max_norm;
// MXINT8: RNE(64 a) / 64 clamped to +-127/64. Parameters typed in from docs/formats.md §1.1/§2, not from the code.
struct Sec2 {
  const BlockCodec* codec;
  int ebits, mbits;  // mbits: stored mantissa bits
  double max_norm;
};
double Sec2Round(const Sec2& e, double a) {
  if (e.ebits == 0) return std::clamp(std::nearbyint(a * 64.0) / 64.0, -e.max_norm, e.max_norm);
  if (a == 0.0) return 0.0;
  const int min_exp = 2 - (1 << (e.ebits - 1));
  int ex;
  std::frexp(a, &ex);
  const int p = std::max(ex - 1, min_exp);
  const double r = std::ldexp(std::nearbyint(std::ldexp(a, e.mbits - p)), p - e.mbits);
  return std::clamp(r, -e.max_norm, e.max_norm);
}
std::vector<Sec2> AllSec2() {
  return {{&MxFp8E4M3Codec(), 4, 3, 448.0},  {&MxFp8E5M2Codec(), 5, 2, 57344.0},
          {&MxFp6E2M3Codec(), 2, 3, 7.5},    {&MxFp6E3M2Codec(), 3, 2, 28.0},
          {&MxFp4Codec(), 2, 1, 6.0},        {&MxInt8Codec(), 0, 6, 127.0 / 64.0}};
}

TEST(Mx, ElementCodecsAreTheMxOnes) {  // docs/formats.md §1.1 table: the MX codecs are wired to the right elements
  EXPECT_EQ(Mx(MxFp8E4M3Codec()).DecodeElement(0x7E, 0), 448.0f);
  EXPECT_EQ(Mx(MxFp8E4M3Codec()).DecodeElement(0x01, 0), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(Mx(MxFp8E4M3Codec()).DecodeElement(0x7F, 0)));  // E4M3FN, not FNUZ
  EXPECT_EQ(Mx(MxFp8E5M2Codec()).DecodeElement(0x7B, 0), 57344.0f);
  EXPECT_EQ(Mx(MxFp8E5M2Codec()).DecodeElement(0x01, 0), std::ldexp(1.0f, -16));
  EXPECT_EQ(Mx(MxFp6E2M3Codec()).DecodeElement(0x1F, 0), 7.5f);
  EXPECT_EQ(Mx(MxFp6E2M3Codec()).DecodeElement(0x01, 0), 0.125f);
  EXPECT_EQ(Mx(MxFp6E3M2Codec()).DecodeElement(0x1F, 0), 28.0f);
  EXPECT_EQ(Mx(MxFp6E3M2Codec()).DecodeElement(0x01, 0), 0.0625f);
  const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (uint32_t c = 0; c < 16; ++c)
    EXPECT_EQ(Mx(MxFp4Codec()).DecodeElement(c, 0), (c & 8 ? -1 : 1) * e2m1[c & 7]) << c;
  EXPECT_EQ(Mx(MxInt8Codec()).DecodeElement(0x7F, 0), 127.0f / 64);
  EXPECT_EQ(Mx(MxInt8Codec()).DecodeElement(0x81, 0), -127.0f / 64);  // two's complement -127
  EXPECT_EQ(Mx(MxInt8Codec()).DecodeElement(0xFD, 3), -3.0f / 64 * 8);
  EXPECT_EQ(Mx(MxFp4Codec()).DecodeElement(0x7, -127), 6.0f * std::ldexp(1.0f, -127));
}

TEST(Mx, ElementRoundingIsRneAndSaturates) {
  // E2M1 decision points (docs/formats.md §1.1): 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4, >5->6.
  const float in[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 5.01f, 100.0f, -2.5f, 0.26f};
  const float out[] = {0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, 6.0f, 6.0f, -2.0f, 0.5f};
  const MxCodec& fp4 = Mx(MxFp4Codec());
  for (int i = 0; i < 11; ++i) EXPECT_EQ(fp4.DecodeElement(fp4.EncodeElement(in[i], 0), 0), out[i]) << in[i];
  const MxCodec& e4m3 = Mx(MxFp8E4M3Codec());
  auto r8 = [&](float v) { return e4m3.DecodeElement(e4m3.EncodeElement(v, 0), 0); };
  EXPECT_EQ(r8(1.0625f), 1.0f);   // tie -> even mantissa 000
  EXPECT_EQ(r8(1.1875f), 1.25f);  // tie -> even mantissa 010
  EXPECT_EQ(r8(464.0f), 448.0f);  // tie 448/480 -> 448
  EXPECT_EQ(r8(470.0f), 448.0f);  // RNE gives 480 (the NaN code), saturated to 448
  EXPECT_EQ(r8(-1e6f), -448.0f);
  EXPECT_EQ(r8(std::ldexp(3.0f, -11)), std::ldexp(1.0f, -9));  // 0.75 * 2^-9 -> 2^-9
  EXPECT_EQ(r8(std::ldexp(1.0f, -10)), 0.0f);                   // half the min subnormal: tie -> 0
  const MxCodec& e5m2 = Mx(MxFp8E5M2Codec());
  EXPECT_EQ(e5m2.DecodeElement(e5m2.EncodeElement(61440.0f, 0), 0), 57344.0f);  // tie 57344/65536 -> sat
  // MXINT8: k = RNE(64a), clamp +-127: 2.5/64 -> 2/64, 3.5/64 -> 4/64, 1.999 -> 127/64, -5 -> -127/64.
  const MxCodec& i8 = Mx(MxInt8Codec());
  auto ri = [&](float v) { return i8.DecodeElement(i8.EncodeElement(v, 0), 0); };
  EXPECT_EQ(ri(2.5f / 64), 2.0f / 64);
  EXPECT_EQ(ri(3.5f / 64), 4.0f / 64);
  EXPECT_EQ(ri(1.999f), 127.0f / 64);
  EXPECT_EQ(ri(-5.0f), -127.0f / 64);
}

TEST(Mx, ElementCodecsMatchSection2Oracle) {
  // Every representable value, every midpoint between neighbours (the ties), points a quarter step
  // either side, and values past max_norm, both signs, at shared exponents 0 and -3.
  for (const Sec2& e : AllSec2()) {
    const MxCodec& c = Mx(*e.codec);
    std::vector<double> vals;
    for (uint32_t code = 0; code < (1u << e.codec->element_bits()); ++code) {
      const double v = c.DecodeElement(code, 0);
      if (std::isfinite(v) && v >= 0.0 && v <= e.max_norm) vals.push_back(v);
    }
    std::sort(vals.begin(), vals.end());
    vals.erase(std::unique(vals.begin(), vals.end()), vals.end());
    std::vector<double> probes = vals;
    for (size_t i = 0; i + 1 < vals.size(); ++i) {
      const double lo = vals[i], hi = vals[i + 1];
      probes.insert(probes.end(), {(lo + hi) / 2, lo + (hi - lo) / 4, hi - (hi - lo) / 4});
    }
    probes.insert(probes.end(), {e.max_norm * 1.03125, e.max_norm * 1.25, e.max_norm * 5});
    int checked = 0;
    for (double p : probes) {
      for (double a : {p, -p}) {
        for (int shared : {0, -3}) {
          const float x = float(std::ldexp(a, shared));
          ASSERT_EQ(double(x), std::ldexp(a, shared));  // the probe is exact in fp32
          const double got = c.DecodeElement(c.EncodeElement(x, shared), shared);
          EXPECT_EQ(got, std::ldexp(Sec2Round(e, a), shared)) << e.codec->name() << " a=" << a;
          ++checked;
        }
      }
    }
    EXPECT_GT(checked, 16) << e.codec->name();
  }
}

TEST(Mx, ScaleBytes) {
  // floor(log2 amax) - emax + 127, clamped at -127 (0x00).
  EXPECT_EQ(MxScaleByte(kMxE4M3, 100.0f, MxScaleRounding::kFloor), 127 + 6 - 8);
  EXPECT_EQ(MxScaleByte(kMxE4M3, 0.0f, MxScaleRounding::kFloor), 0x00);
  EXPECT_EQ(MxScaleByte(kMxE4M3, std::ldexp(1.0f, -119), MxScaleRounding::kFloor), 0x00);  // -119-8 = -127
  EXPECT_EQ(MxScaleByte(kMxE4M3, std::ldexp(1.0f, -118), MxScaleRounding::kFloor), 0x01);
  EXPECT_EQ(MxScaleByte(kMxE5M2, std::ldexp(1.0f, -126), MxScaleRounding::kFloor), 0x00);  // -141 clamped
  EXPECT_EQ(MxScaleByte(kMxE2M1, std::numeric_limits<float>::max(), MxScaleRounding::kFloor), 127 + 125);
  EXPECT_EQ(MxScaleByte(kMxInt8, std::numeric_limits<float>::max(), MxScaleRounding::kFloor), 0xFE);  // 127
  EXPECT_EQ(MxScaleByte(kMxInt8, std::numeric_limits<float>::max(), MxScaleRounding::kCeil), 0xFF);   // 128
  EXPECT_EQ(MxScaleByte(kMxE4M3, std::numeric_limits<float>::infinity(), MxScaleRounding::kFloor), 0xFF);
  EXPECT_EQ(MxScaleByte(kMxE4M3, std::nanf(""), MxScaleRounding::kFloor), 0xFF);
}

TEST(Mx, AllZeroBlockEveryFormat) {
  const std::vector<float> x(32, 0.0f);
  for (const BlockCodec* c : {&MxFp8E4M3Codec(), &MxFp8E5M2Codec(), &MxFp6E2M3Codec(), &MxFp6E3M2Codec(),
                              &MxFp4Codec(), &MxInt8Codec()}) {
    PackedBlocks p = Q(*c, x, 1, 32);
    ASSERT_EQ(p.bytes.size(), size_t(1 + 32 * c->element_bits() / 8)) << c->name();
    for (uint8_t b : p.bytes) EXPECT_EQ(b, 0) << c->name();  // scale 0x00 and all codes 0
    for (float v : DQ(*c, p)) EXPECT_EQ(v, 0.0f) << c->name();
  }
}

TEST(Mx, Fp8E4M3OneOutlier) {
  // amax = 100: floor(log2 100) = 6, shared = 6 - 8 = -2 -> E8M0 125 = 0x7D; a = 4x.
  //  100  -> a=400: e=8, 400/256*8 = 12.5 -> RNE 12 -> 1.5*2^8 = 384 -> S.1111.100 = 0x7C; y = 96
  //  1    -> a=4 = 1.0*2^2 -> exp 9 -> 0x48; y = 1
  //  -0.3 -> a=-1.2: e=0, 9.6 -> 10 -> 1.25 -> 1.0111.010 = 0xBA; y = -0.3125
  //  0.01 -> a=0.04 = 1.28*2^-5 -> 10.24 -> 10 -> 1.25*2^-5 -> exp 2 -> 0x12; y = 0.0390625/4
  //  0.001-> a=0.004 < 2^-6: subnormal, 0.004*2^9 = 2.048 -> 2 -> 0x02; y = 2^-8/4 = 2^-10
  //  -1e-4-> a=-4e-4: 0.2048 -> 0 -> -0 = 0x80; y = -0
  const auto x = Block32({100.0f, 1.0f, -0.3f, 0.01f, 0.001f, -1e-4f});
  PackedBlocks p = Q(MxFp8E4M3Codec(), x, 1, 32);
  ASSERT_EQ(p.bytes.size(), 33u);
  EXPECT_EQ(p.bytes[0], 0x7D);
  const uint8_t codes[6] = {0x7C, 0x48, 0xBA, 0x12, 0x02, 0x80};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(p.bytes[1 + i], codes[i]) << i;
  for (int i = 6; i < 32; ++i) EXPECT_EQ(p.bytes[1 + i], 0) << i;
  const auto y = DQ(MxFp8E4M3Codec(), p);
  const float want[6] = {96.0f, 1.0f, -0.3125f, 0.0390625f / 4, std::ldexp(1.0f, -10), 0.0f};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]) << i;
  EXPECT_TRUE(std::signbit(y[5]));
}

TEST(Mx, Fp8E5M2OutlierSaturatesUnderFloor) {
  // amax = 1000 = 1.953125*2^9: shared = 9 - 15 = -6 -> 0x79; a = 64x.
  //  1000 -> 64000: e=15, 64000/2^15*4 = 7.8125 -> 8 -> 2^16 > 57344 -> saturate 0x7B; y = 57344/64 = 896
  //  3    -> 192 = 1.5*2^7 -> exp 22, mant 2 -> 0.10110.10 = 0x5A; y = 3
  const auto x = Block32({1000.0f, 3.0f});
  PackedBlocks p = Q(MxFp8E5M2Codec(), x, 1, 32);
  EXPECT_EQ(p.bytes[0], 0x79);
  EXPECT_EQ(p.bytes[1], 0x7B);
  EXPECT_EQ(p.bytes[2], 0x5A);
  const auto y = DQ(MxFp8E5M2Codec(), p);
  EXPECT_EQ(y[0], 896.0f);
  EXPECT_EQ(y[1], 3.0f);
}

TEST(Mx, Fp6E2M3OutlierAndSixBitPacking) {
  // amax = 10: floor(log2) = 3, shared = 3 - 2 = 1 -> 0x80; a = x/2.
  //  -10 -> -5 = -1.25*2^2 -> 1.11.010 = 0x3A; y = -10
  //  0.7 -> 0.35 (subnormal, e = min_exp 0): 0.35*8 = 2.8 -> 3 -> 0.375 -> 0.00.011 = 0x03; y = 0.75
  //  3.3 -> 1.65: 1.65*8 = 13.2 -> 13 -> 1.625 -> 0.01.101 = 0x0D; y = 3.25
  // LSB-first 6-bit packing: byte0 = c0 | c1<<6 = 0x3A | 0xC0 = 0xFA; byte1 = c1>>2 | c2<<4 = 0xD0;
  // byte2 = c2>>4 | c3<<2 = 0x00.
  const auto x = Block32({-10.0f, 0.7f, 3.3f});
  PackedBlocks p = Q(MxFp6E2M3Codec(), x, 1, 32);
  ASSERT_EQ(p.bytes.size(), 25u);  // 1 + 32*6/8
  EXPECT_EQ(p.bytes[0], 0x80);
  EXPECT_EQ(p.bytes[1], 0xFA);
  EXPECT_EQ(p.bytes[2], 0xD0);
  EXPECT_EQ(p.bytes[3], 0x00);
  const auto y = DQ(MxFp6E2M3Codec(), p);
  EXPECT_EQ(y[0], -10.0f);
  EXPECT_EQ(y[1], 0.75f);
  EXPECT_EQ(y[2], 3.25f);
  EXPECT_EQ(y[3], 0.0f);
}

TEST(Mx, Fp6E3M2Outlier) {
  // amax = 50: floor(log2) = 5, shared = 5 - 4 = 1 -> 0x80; a = x/2.
  //  50 -> 25: e=4, 25/16*4 = 6.25 -> 6 -> 1.5*16 = 24 -> 0.111.10 = 0x1E; y = 48
  //  -1 -> -0.5 = 2^-1 -> exp 2 -> 1.010.00 = 0x28; y = -1
  const auto x = Block32({50.0f, -1.0f});
  PackedBlocks p = Q(MxFp6E3M2Codec(), x, 1, 32);
  EXPECT_EQ(p.bytes[0], 0x80);
  EXPECT_EQ(p.bytes[1], uint8_t(0x1E | (0x28 << 6)));  // 0x1E | 0x00 (0x28<<6 keeps bits 6,7 = 0b00)
  EXPECT_EQ(p.bytes[2], uint8_t(0x28 >> 2));           // 0x0A
  const auto y = DQ(MxFp6E3M2Codec(), p);
  EXPECT_EQ(y[0], 48.0f);
  EXPECT_EQ(y[1], -1.0f);
}

TEST(Mx, Fp4OutlierTieAndNibbleOrder) {
  // amax = 100: floor(log2) = 6, shared = 6 - 2 = 4 -> 0x83; a = x/16.
  //  100 -> 6.25 -> 6 (code 0x7);  1 -> 0.0625 -> 0 (0x0);  -13 -> -0.8125 -> -1 (0xA);
  //  20 -> 1.25: tie between 1 and 1.5 -> 1 (RNE; half-away would give 1.5) (0x2);  7 -> 0.4375 -> 0.5 (0x1)
  // Nibbles: element 2j low, 2j+1 high: 0x07, 0x2A, 0x01.
  const auto x = Block32({100.0f, 1.0f, -13.0f, 20.0f, 7.0f});
  PackedBlocks p = Q(MxFp4Codec(), x, 1, 32);
  ASSERT_EQ(p.bytes.size(), 17u);
  EXPECT_EQ(p.bytes[0], 0x83);
  EXPECT_EQ(p.bytes[1], 0x07);
  EXPECT_EQ(p.bytes[2], 0x2A);
  EXPECT_EQ(p.bytes[3], 0x01);
  const auto y = DQ(MxFp4Codec(), p);
  const float want[5] = {96.0f, 0.0f, -16.0f, 16.0f, 8.0f};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(y[i], want[i]) << i;
}

TEST(Mx, Int8OutlierAndTies) {
  // amax = 3: floor(log2) = 1, shared = 1 - 0 = 1 -> 0x80; a = x/2, k = RNE(64a).
  //  3 -> 1.5 -> 96 (0x60); -0.1 -> -0.05 -> -3.2 -> -3 (0xFD, y = -0.09375); 1 -> 32 (0x20);
  //  0.078125 -> 2.5 -> 2 (tie to even; 0x02, y = 0.0625)
  const auto x = Block32({3.0f, -0.1f, 1.0f, 0.078125f});
  PackedBlocks p = Q(MxInt8Codec(), x, 1, 32);
  EXPECT_EQ(p.bytes[0], 0x80);
  EXPECT_EQ(p.bytes[1], 0x60);
  EXPECT_EQ(p.bytes[2], 0xFD);
  EXPECT_EQ(p.bytes[3], 0x20);
  EXPECT_EQ(p.bytes[4], 0x02);
  const auto y = DQ(MxInt8Codec(), p);
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[1], -0.09375f);
  EXPECT_EQ(y[2], 1.0f);
  EXPECT_EQ(y[3], 0.0625f);
  // Saturation: amax 1.999 -> shared 0 -> 127.936 -> 128 -> clamp 127 (0x7F) -> 1.984375.
  PackedBlocks s = Q(MxInt8Codec(), Block32({1.999f}), 1, 32);
  EXPECT_EQ(s.bytes[0], 0x7F);
  EXPECT_EQ(s.bytes[1], 0x7F);
  EXPECT_EQ(DQ(MxInt8Codec(), s)[0], 1.984375f);
}

TEST(Mx, TinyAmaxClampsAtMinus127) {
  // x = 71362 * 2^-149 (the fp32 subnormal nearest 1e-40): floor(log2) = -133, -133 - 8 < -127 -> 0x00.
  // a = x * 2^127 = 71362 * 2^-22 = 0.017014...: e = -6, a * 2^9 = 71362/8192 = 8.711 -> 9 -> 9 * 2^-9
  // = 1.125 * 2^-6 -> exp 1, mant 1 -> 0x09; y = 9 * 2^-136 (exact fp32 subnormal).
  const float tiny = std::ldexp(71362.0f, -149);
  PackedBlocks p = Q(MxFp8E4M3Codec(), Block32({tiny}), 1, 32);
  EXPECT_EQ(p.bytes[0], 0x00);
  EXPECT_EQ(p.bytes[1], 0x09);
  EXPECT_EQ(DQ(MxFp8E4M3Codec(), p)[0], std::ldexp(9.0f, -136));
  // MXFP4, amax = 2^-126 (fp32 min normal): -126 - 2 = -128 -> clamp 0x00; a = 2 -> 0x4; y = 2^-126.
  PackedBlocks q = Q(MxFp4Codec(), Block32({std::ldexp(1.0f, -126)}), 1, 32);
  EXPECT_EQ(q.bytes[0], 0x00);
  EXPECT_EQ(q.bytes[1], 0x04);
  EXPECT_EQ(DQ(MxFp4Codec(), q)[0], std::ldexp(1.0f, -126));
}

TEST(Mx, TinyAmaxEveryFormat) {
  // x = 2^-130 (an fp32 subnormal): floor(log2) - emax < -127 for every format -> 0x00; a = x * 2^127 =
  // 2^-3 = 0.125: E4M3 normal exp 4 (0x20); E5M2 exp 12 (0x30); E2M3 min subnormal 1/8 (0x01);
  // E3M2 subnormal 2 * 1/16 (0x02); E2M1 below half of 0.5 -> 0 (0x0); INT8 k = 8 (0x08).
  // y = 0.125 * 2^-127 = 2^-130 (exact), 0 for MXFP4.
  const float x = std::ldexp(1.0f, -130);
  const std::pair<const BlockCodec*, uint8_t> cases[] = {
      {&MxFp8E4M3Codec(), 0x20}, {&MxFp8E5M2Codec(), 0x30}, {&MxFp6E2M3Codec(), 0x01},
      {&MxFp6E3M2Codec(), 0x02}, {&MxFp4Codec(), 0x00},     {&MxInt8Codec(), 0x08}};
  for (auto [c, code] : cases) {
    PackedBlocks p = Q(*c, Block32({x}), 1, 32);
    EXPECT_EQ(p.bytes[0], 0x00) << c->name();
    EXPECT_EQ(p.bytes[1], code) << c->name();
    EXPECT_EQ(DQ(*c, p)[0], c == &MxFp4Codec() ? 0.0f : x) << c->name();
  }
}

TEST(Mx, PartialLastBlockEveryFormat) {
  // Row of 40, block 32: x[0..31] = 1 (scale 2^-emax: a = 2^emax), x[32] = 3 and x[33..39] = 0.25
  // (amax 3: scale 2^(1-emax): a = 1.5 * 2^emax and 2^(emax-3)); all of these are on every element grid,
  // so y == x. Scale bytes 127 - emax and 128 - emax; 24 zero-padded codes in block 1.
  std::vector<float> x(40, 1.0f);
  x[32] = 3.0f;
  for (int i = 33; i < 40; ++i) x[i] = 0.25f;
  const std::pair<const BlockCodec*, int> cases[] = {{&MxFp8E4M3Codec(), 8}, {&MxFp8E5M2Codec(), 15},
                                                     {&MxFp6E2M3Codec(), 2}, {&MxFp6E3M2Codec(), 4},
                                                     {&MxFp4Codec(), 2},     {&MxInt8Codec(), 0}};
  for (auto [c, emax] : cases) {
    const int w = c->element_bits(), bb = 1 + 32 * w / 8;
    PackedBlocks p = Q(*c, x, 1, 40);
    ASSERT_EQ(int(p.bytes.size()), 2 * bb) << c->name();
    EXPECT_EQ(p.bytes[0], 127 - emax) << c->name();
    EXPECT_EQ(p.bytes[bb], 128 - emax) << c->name();
    for (int j = bb + 1 + w; j < 2 * bb; ++j) EXPECT_EQ(p.bytes[j], 0) << c->name() << " " << j;  // 8 codes = w bytes
    const auto y = DQ(*c, p);
    for (int i = 0; i < 40; ++i) EXPECT_EQ(y[i], x[i]) << c->name() << " " << i;
  }
}

TEST(Mx, PartialLastBlockTwoRows) {
  // Rows of 40 with block 32: block 0 = 32 elements, block 1 = 8 real elements + 24 zero-padded codes.
  // Row 0: x[0..31] = 1 -> shared = 0 - 2 = -2 (0x7D), a = 4 -> 0x6 each -> bytes 0x66.
  //        x[32] = 3, x[33..39] = 0.25 -> amax 3 -> shared = 1 - 2 = -1 (0x7E); a = 6 -> 0x7, 0.5 -> 0x1.
  // Row 1 = -row 0: same scales, sign bit set: 0xE, 0xF, 0x9.
  std::vector<float> x(80);
  for (int r = 0; r < 2; ++r) {
    const float s = r ? -1.0f : 1.0f;
    for (int i = 0; i < 32; ++i) x[r * 40 + i] = s;
    x[r * 40 + 32] = 3.0f * s;
    for (int i = 33; i < 40; ++i) x[r * 40 + i] = 0.25f * s;
  }
  PackedBlocks p = Q(MxFp4Codec(), x, 2, 40);
  ASSERT_EQ(p.bytes.size(), 4u * 17u);
  for (int r = 0; r < 2; ++r) {
    const uint8_t* row = p.bytes.data() + r * 34;
    const uint8_t one = r ? 0xEE : 0x66, lo3 = r ? 0x9F : 0x17, q = r ? 0x99 : 0x11;
    EXPECT_EQ(row[0], 0x7D);
    for (int j = 1; j <= 16; ++j) EXPECT_EQ(row[j], one) << r << " " << j;
    EXPECT_EQ(row[17], 0x7E);
    EXPECT_EQ(row[18], lo3);
    for (int j = 19; j <= 21; ++j) EXPECT_EQ(row[j], q) << j;
    for (int j = 22; j <= 33; ++j) EXPECT_EQ(row[j], 0) << j;  // padding codes
  }
  const auto y = DQ(MxFp4Codec(), p);
  for (int i = 0; i < 80; ++i) EXPECT_EQ(y[i], x[i]) << i;  // every value here is on the grid
}

TEST(Mx, ThreeScaleRoundingsDiffer) {
  // E4M3, block {1.96875, 0.75}: floor(log2 1.96875) = 0, ceil = 1; EVEN: 1.96875 + 2^-4 (half an
  // element ulp at 3 mantissa bits) = 2.03125 -> truncated 2 -> floor 1.
  //  kFloor: shared -8 (0x77): a = 504 -> 15.75 -> 16 -> 512 -> saturate 448 (0x7E), y = 1.75;
  //          0.75 -> 192 = 1.5*2^7 -> 0x74
  //  kCeil/kEven: shared -7 (0x78): a = 252 -> 2^8 exactly after rounding -> 0x78, y = 2.0;
  //          0.75 -> 96 = 1.5*2^6 -> 0x6C
  const auto x = Block32({1.96875f, 0.75f});
  struct Case { MxScaleRounding r; uint8_t scale, c0, c1; float y0; };
  const Case cases[] = {{MxScaleRounding::kFloor, 0x77, 0x7E, 0x74, 1.75f},
                        {MxScaleRounding::kCeil, 0x78, 0x78, 0x6C, 2.0f},
                        {MxScaleRounding::kEven, 0x78, 0x78, 0x6C, 2.0f}};
  for (const Case& c : cases) {
    BlockOptions o;
    o.mx_rounding = c.r;
    PackedBlocks p = Q(MxFp8E4M3Codec(), x, 1, 32, o);
    EXPECT_EQ(p.bytes[0], c.scale);
    EXPECT_EQ(p.bytes[1], c.c0);
    EXPECT_EQ(p.bytes[2], c.c1);
    const auto y = DQ(MxFp8E4M3Codec(), p);
    EXPECT_EQ(y[0], c.y0);
    EXPECT_EQ(y[1], 0.75f);
  }
  // amax = 1.5: floor = even = -8 (1.5 + 2^-4 truncates to 1), ceil = -7.
  for (auto [r, want] : {std::pair{MxScaleRounding::kFloor, 0x77}, std::pair{MxScaleRounding::kCeil, 0x78},
                         std::pair{MxScaleRounding::kEven, 0x77}}) {
    EXPECT_EQ(MxScaleByte(kMxE4M3, 1.5f, r), want);
  }
  // amax = 1 (a power of two): all three give -8.
  for (auto r : {MxScaleRounding::kFloor, MxScaleRounding::kCeil, MxScaleRounding::kEven})
    EXPECT_EQ(MxScaleByte(kMxE4M3, 1.0f, r), 0x77);
  // MXFP4, amax 7 = 1.75*2^2: kFloor shared 0 (0x7F): 7 -> 3.5*2 = 7 -> RNE... a = 7: e = 2, 7/4*2 = 3.5
  // -> 4 -> 8 -> saturate 6 (0x7), y = 6. kCeil: ceil(log2 7) = 3 -> 1 (0x80); a = 3.5 -> 1.75*2 = 3.5
  // -> 4 -> 4.0 (0x6), y = 8. kEven: 1.75 + 2^-2 = 2 -> carries -> same as kCeil.
  for (auto [r, scale, code, y0] : {std::tuple{MxScaleRounding::kFloor, 0x7F, 0x7, 6.0f},
                                    std::tuple{MxScaleRounding::kCeil, 0x80, 0x6, 8.0f},
                                    std::tuple{MxScaleRounding::kEven, 0x80, 0x6, 8.0f}}) {
    BlockOptions o;
    o.mx_rounding = r;
    PackedBlocks p = Q(MxFp4Codec(), Block32({7.0f}), 1, 32, o);
    EXPECT_EQ(p.bytes[0], scale);
    EXPECT_EQ(p.bytes[1], code);
    EXPECT_EQ(DQ(MxFp4Codec(), p)[0], y0);
  }
}

TEST(Mx, ThreeScaleRoundingsEveryFormat) {
  // kEven adds half an element ulp, 2^-(m+1), to amax's mantissa: amax = 2 - 2^-(m+1) carries to 2 (so
  // kEven = kCeil = kFloor + 1) while 2 - 2^-(m+1) - 2^-20 does not (kEven = kFloor); for amax = 1.5
  // kFloor = kEven and kCeil is one more. Bytes: floor -> 127 - emax, ceil -> 128 - emax.
  const std::tuple<const BlockCodec*, int, int> cases[] = {  // codec, emax, stored mantissa bits m
      {&MxFp8E4M3Codec(), 8, 3}, {&MxFp8E5M2Codec(), 15, 2}, {&MxFp6E2M3Codec(), 2, 3},
      {&MxFp6E3M2Codec(), 4, 2}, {&MxFp4Codec(), 2, 1},      {&MxInt8Codec(), 0, 6}};
  for (auto [c, emax, m] : cases) {
    const float carry = 2.0f - std::ldexp(1.0f, -(m + 1));
    const float below = carry - std::ldexp(1.0f, -20);
    const int lo = 127 - emax, hi = 128 - emax;
    // {amax, floor, ceil, even}
    const std::tuple<float, int, int, int> rows[] = {{carry, lo, hi, hi}, {below, lo, hi, lo}, {1.5f, lo, hi, lo},
                                                     {1.0f, lo, lo, lo}};
    for (auto [amax, f, ce, ev] : rows) {
      for (auto [r, want] : {std::pair{MxScaleRounding::kFloor, f}, std::pair{MxScaleRounding::kCeil, ce},
                             std::pair{MxScaleRounding::kEven, ev}}) {
        BlockOptions o;
        o.mx_rounding = r;
        EXPECT_EQ(Q(*c, Block32({-amax}), 1, 32, o).bytes[0], want) << c->name() << " amax " << amax;
      }
    }
  }
}

TEST(Mx, FloorSaturatesWhenAmaxMantissaExceedsMaxNorm) {
  // E4M3 max_norm = 1.75*2^8; amax = 1.9*2^k has a larger mantissa. amax = 1.9 * 2^3 = 15.2:
  // shared = 3 - 8 = -5 (0x7A); a = 15.2 * 32 = 486.4 -> e = 8: 15.2 -> 15 -> 480 -> saturate 448 (0x7E);
  // y = 448 / 32 = 14 (error 1.2), the spec rule (kCeil never saturates: a <= 2^emax <= max_norm).
  PackedBlocks p = Q(MxFp8E4M3Codec(), Block32({15.2f, -15.2f}), 1, 32);
  EXPECT_EQ(p.bytes[0], 0x7A);
  EXPECT_EQ(p.bytes[1], 0x7E);
  EXPECT_EQ(p.bytes[2], 0xFE);
  const auto y = DQ(MxFp8E4M3Codec(), p);
  EXPECT_EQ(y[0], 14.0f);
  EXPECT_EQ(y[1], -14.0f);
  BlockOptions ceil;
  ceil.mx_rounding = MxScaleRounding::kCeil;
  // kCeil: shared = 4 - 8 = -4 (0x7B); a = 243.2 -> e = 7: 1.9*8 = 15.2 -> 15 -> 240 (0x77); y = 15.
  PackedBlocks c = Q(MxFp8E4M3Codec(), Block32({15.2f}), 1, 32, ceil);
  EXPECT_EQ(c.bytes[0], 0x7B);
  EXPECT_EQ(c.bytes[1], 0x77);
  EXPECT_EQ(DQ(MxFp8E4M3Codec(), c)[0], 15.0f);
}

TEST(Mx, NonFiniteBlockIsNaN) {
  auto x = Block32({1.0f, std::numeric_limits<float>::infinity()});
  PackedBlocks p = Q(MxFp8E4M3Codec(), x, 1, 32);
  EXPECT_EQ(p.bytes[0], 0xFF);
  for (float v : DQ(MxFp8E4M3Codec(), p)) EXPECT_TRUE(std::isnan(v));
  // A NaN anywhere in the block (here first, followed by larger finite values) poisons only its block.
  std::vector<float> y(64, 2.0f);
  y[0] = std::nanf("");
  PackedBlocks q = Q(MxFp4Codec(), y, 1, 64);
  EXPECT_EQ(q.bytes[0], 0xFF);
  EXPECT_EQ(q.bytes[17], 0x7E);  // block 1: amax 2 -> shared 1 - 2 = -1 -> 126
  const auto d = DQ(MxFp4Codec(), q);
  for (int i = 0; i < 32; ++i) EXPECT_TRUE(std::isnan(d[i])) << i;
  for (int i = 32; i < 64; ++i) EXPECT_EQ(d[i], 2.0f) << i;
}

TEST(Mx, BitsPerWeight) {
  EXPECT_DOUBLE_EQ(MxFp4Codec().nominal_bits_per_weight(32), 4.25);
  EXPECT_DOUBLE_EQ(MxFp6E2M3Codec().nominal_bits_per_weight(32), 6.25);
  EXPECT_DOUBLE_EQ(MxFp6E3M2Codec().nominal_bits_per_weight(32), 6.25);
  EXPECT_DOUBLE_EQ(MxFp8E4M3Codec().nominal_bits_per_weight(32), 8.25);
  EXPECT_DOUBLE_EQ(MxFp8E5M2Codec().nominal_bits_per_weight(32), 8.25);
  EXPECT_DOUBLE_EQ(MxInt8Codec().nominal_bits_per_weight(32), 8.25);
  EXPECT_DOUBLE_EQ(MxFp4Codec().nominal_bits_per_weight(16), 4.5);       // (8 + 64) / 16
  EXPECT_DOUBLE_EQ(MxFp6E2M3Codec().nominal_bits_per_weight(6), 8.0);  // 1 + ceil(36/8) = 6 B per 6
  const std::vector<float> x(4 * 64, 1.0f);
  EXPECT_DOUBLE_EQ(Q(MxFp4Codec(), x, 4, 64).bits_per_weight(), 4.25);
  EXPECT_DOUBLE_EQ(Q(MxFp6E3M2Codec(), x, 4, 64).bits_per_weight(), 6.25);
  BlockOptions o;
  o.block_size = -1;
  EXPECT_FALSE(MxFp4Codec().Quantize(x.data(), 4, 64, o).ok());
}

// Quantize (rows on threads, SIMD E2M1, table-driven elements) against QuantizeRef (EncodeElement on every
// element) byte for byte, on every dispatch target: every fp32 bucket of 2^16 values at its first, second,
// middle and last value in blocks of neighbouring buckets (so each block's elements span its grid), the
// same shifted by half a block, random blocks at exponents -150 .. 127 with -0, zeros, subnormals, Inf and
// NaN blocks; block sizes 32 and 7 (partial last blocks); all three scale roundings.
std::vector<float> BucketValues() {
  std::vector<float> x;
  for (uint32_t b = 0; b < 65536; ++b)
    for (uint32_t low : {0u, 1u, 0x7FFFu, 0xFFFFu}) {
      const float v = std::bit_cast<float>((b << 16) | low);
      if (std::isfinite(v)) x.push_back(v);
    }
  return x;
}
std::vector<float> RandomBlocks() {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-150, 127), pick(0, 40);
  std::vector<float> x;
  for (int b = 0; b < 3000; ++b) {
    const int e = expo(rng);
    for (int i = 0; i < 32; ++i) {
      const int k = pick(rng);
      float v = float(std::ldexp(double(normal(rng)), e));
      if (k == 0) v = -0.0f;
      if (k == 1) v = 0.0f;
      if (k == 2 && b % 97 == 0) v = std::numeric_limits<float>::infinity();
      if (k == 3 && b % 89 == 0) v = std::nanf("");
      x.push_back(v);
    }
  }
  return x;
}

TEST(Mx, QuantizeEqualsScalarReferenceEverywhere) {
  std::vector<float> buckets = BucketValues();
  std::vector<float> shifted(buckets.begin() + 16, buckets.end());
  const std::vector<std::vector<float>> inputs = {buckets, shifted, RandomBlocks()};
  const MxScaleRounding roundings[] = {MxScaleRounding::kFloor, MxScaleRounding::kCeil, MxScaleRounding::kEven};
  ForEachTarget([&] {
    for (const Sec2& e : AllSec2()) {
      const MxCodec& c = Mx(*e.codec);
      for (const auto& in : inputs)
        for (const int bs : {32, 7})
          for (const MxScaleRounding rounding : roundings) {
            const int64_t cols = 32 * 9 + 5, rows = int64_t(in.size()) / cols;
            BlockOptions opt;
            opt.block_size = bs;
            opt.mx_rounding = rounding;
            auto got = c.Quantize(in.data(), rows, cols, opt);
            auto want = c.QuantizeRef(in.data(), rows, cols, opt);
            ASSERT_EQ(got.ok(), want.ok()) << c.name();
            if (!want.ok()) {
              EXPECT_EQ(got.status().message(), want.status().message());
              continue;
            }
            ASSERT_EQ(got->bytes, want->bytes) << c.name() << " block " << bs << " rounding " << int(rounding);
          }
    }
  });
}

TEST(Mx, QuantizeOverflowErrorIsTheReferences) {
  // amax = FLT_MAX (just below 2^128) in row 2, block 1: kCeil rounds its exponent up to 128, so for the
  // float elements max_norm x 2^(128 - emax) overflows fp32 (MXFP4: 6 x 2^126) and both quantizers must
  // fail with the same message; floor fits; even carries to Inf (a NaN block). Both agree everywhere.
  int errors = 0;
  std::vector<float> x(3 * 64, 1.0f);
  x[2 * 64 + 40] = std::numeric_limits<float>::max();
  for (const Sec2& e : AllSec2()) {
    const MxCodec& c = Mx(*e.codec);
    for (const MxScaleRounding r : {MxScaleRounding::kFloor, MxScaleRounding::kCeil, MxScaleRounding::kEven}) {
      BlockOptions opt;
      opt.mx_rounding = r;
      auto got = c.Quantize(x.data(), 3, 64, opt);
      auto want = c.QuantizeRef(x.data(), 3, 64, opt);
      ASSERT_EQ(got.ok(), want.ok()) << c.name() << " " << int(r);
      if (!got.ok()) {
        EXPECT_EQ(got.status().message(), want.status().message());
        EXPECT_NE(got.status().message().find("row 2 block 1"), std::string::npos) << got.status().message();
        ++errors;
      } else {
        EXPECT_EQ(got->bytes, want->bytes) << c.name() << " " << int(r);
      }
    }
  }
  EXPECT_EQ(errors, 5);  // kCeil on the five float formats
}

}  // namespace
}  // namespace ql
