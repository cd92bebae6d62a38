// Tests of the tensor quantizer: hand-computed codes, scales and packed bytes; error bounds against a
// step size computed here from the data (not by the quantizer); granularity and clipping orderings;
// FakeQuantize == Dequantize(Quantize); exact Bytes(); edge cases (zeros, NaN, partial groups).
#include "kernels/quantizer.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/half.h"

namespace ql {
namespace {

Scheme S(const std::string& text) {
  StatusOr<Scheme> s = ParseScheme(text);
  QL_CHECK(s.ok(), "{}", s.status().message());
  return *s;
}

QuantizedTensor Q(const std::string& scheme, const std::vector<float>& x, int64_t rows) {
  StatusOr<QuantizedTensor> q = Quantize(S(scheme), x.data(), rows, int64_t(x.size()) / rows);
  QL_CHECK(q.ok(), "{}", q.status().message());
  return std::move(q).value();
}

std::vector<float> Deq(const QuantizedTensor& q) {
  std::vector<float> y(size_t(q.rows * q.cols));
  q.Dequantize(y.data());
  return y;
}

double Mse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s / double(a.size());
}

double RoundTripMse(const std::string& scheme, const std::vector<float>& x, int64_t rows) {
  std::vector<float> y(x.size());
  const Status st = FakeQuantize(S(scheme), x.data(), rows, int64_t(x.size()) / rows, y.data());
  QL_CHECK(st.ok(), "{}", st.message());
  return Mse(x, y);
}

// [rows, cols] Gaussian with a per-row scale exp(N(0, 1)) (channels of different magnitude), plus a
// per-column factor, like real weight matrices.
std::vector<float> Weights(int64_t rows, int64_t cols, uint32_t seed, float shift = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  std::vector<float> col_scale(cols);
  for (auto& c : col_scale) c = std::exp(0.5f * n(rng));
  std::vector<float> x(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float rs = 0.05f * std::exp(n(rng));
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = shift + rs * col_scale[c] * n(rng);
  }
  return x;
}

// Laplace-distributed values (heavy tails relative to a Gaussian).
std::vector<float> Laplace(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::exponential_distribution<float> e(1.0f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> x(n);
  for (auto& v : x) v = (sign(rng) ? 1.0f : -1.0f) * e(rng);
  return x;
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases
// ---------------------------------------------------------------------------------------------

TEST(QuantizerTest, Int4GroupOf8SeedExample) {
  // Restricted symmetric: s = 0.93 / 7; codes round(x / s).
  const std::vector<float> x = {0.12f, -0.41f, 0.93f, -0.05f, 0.55f, -0.88f, 0.27f, 0.02f};
  QuantizedTensor q = Q("int4:g8", x, 1);
  const int expected[] = {1, -3, 7, 0, 4, -7, 2, 0};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(q.Code(i), expected[i]) << i;
  ASSERT_EQ(q.num_scales(), 1);
  EXPECT_FLOAT_EQ(q.Scale(0), 0.93f / 7.0f);
  // Two's complement nibbles, element 0 in the low nibble: 1,-3 -> 0xD1; 7,0 -> 0x07; 4,-7 -> 0x94;
  // 2,0 -> 0x02.
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{0xD1, 0x07, 0x94, 0x02}));
  EXPECT_EQ(q.Bytes(), 4u + 4u);
  const std::vector<float> y = Deq(q);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(y[i], float(expected[i]) * (0.93f / 7.0f));
}

TEST(QuantizerTest, Int8TensorSeedExample) {
  // s = 4/127: -3 -> -95.25 -> -95, 1 -> 31.75 -> 32, 2 -> 63.5 -> 64 (ties to even), 4 -> 127.
  QuantizedTensor q = Q("int8:tensor", {-3, 1, 2, 4}, 1);
  EXPECT_EQ(q.Code(0), -95);
  EXPECT_EQ(q.Code(1), 32);
  EXPECT_EQ(q.Code(2), 64);
  EXPECT_EQ(q.Code(3), 127);
}

TEST(QuantizerTest, Fp8NoScaleCast) {
  // E4M3 spacing in [4, 8) is 0.5; 6.625 is nearer 6.5 than 7.
  QuantizedTensor q = Q("fp8_e4m3:noscale", {6.625f, 448.0f, 1000.0f, -0.0f}, 1);
  const std::vector<float> y = Deq(q);
  EXPECT_EQ(y[0], 6.5f);
  EXPECT_EQ(y[1], 448.0f);
  EXPECT_EQ(y[2], 448.0f);  // saturating cast
  EXPECT_EQ(q.Bytes(), 4u);  // no scales
  EXPECT_EQ(q.RawCode(0), 0x4Du);  // 0.1001.101: 2^(9-7) * 1.625
}

TEST(QuantizerTest, Bf16IsADirectCast) {
  const std::vector<float> x = {1.0f, 3.14159265f, -1e-3f, 65504.0f, 1e30f};
  QuantizedTensor q = Q("bf16", x, 1);
  const std::vector<float> y = Deq(q);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], Bf16ToF32(F32ToBf16(x[i]))) << i;
  EXPECT_EQ(q.Bytes(), 2 * x.size());
}

TEST(QuantizerTest, SymFullInt4) {
  // amax 7.5 -> s = 7.5/7.5 = 1: -7.5 -> -8 (even), 3.2 -> 3, 7.5 -> 8 -> clamped 7, -6.5 -> -6 (even).
  QuantizedTensor q = Q("int4:tensor:symfull", {-7.5f, 3.2f, 7.5f, -6.5f}, 1);
  EXPECT_EQ(q.Scale(0), 1.0f);
  EXPECT_EQ(q.Code(0), -8);
  EXPECT_EQ(q.Code(1), 3);
  EXPECT_EQ(q.Code(2), 7);
  EXPECT_EQ(q.Code(3), -6);
}

TEST(QuantizerTest, AsymHandCase) {
  // min -1, max 2: s = 3/15 = 0.2, z = round(1/0.2) = 5; q = round(x/s) + 5:
  // -1 -> 0, 0 -> 5, 0.5 -> round(2.5) = 2 (+5 = 7), 2 -> 15.
  QuantizedTensor q = Q("int4:tensor:asym", {-1.0f, 0.0f, 0.5f, 2.0f}, 1);
  EXPECT_FLOAT_EQ(q.Scale(0), 0.2f);
  EXPECT_EQ(q.ZeroPoint(0), 5);
  EXPECT_EQ(q.Code(0), 0);
  EXPECT_EQ(q.Code(1), 5);
  EXPECT_EQ(q.Code(2), 7);
  EXPECT_EQ(q.Code(3), 15);
  EXPECT_EQ(q.Bytes(), 2u + 4u + 1u);  // 4 nibbles + fp32 scale + one 4-bit zero point (1 byte)
  const std::vector<float> y = Deq(q);
  EXPECT_EQ(y[1], 0.0f);  // zero is exact with a zero point
  EXPECT_FLOAT_EQ(y[3], 10 * 0.2f);
  // All-positive data: the range is widened to include 0 (GPTQ), so z = 0 and nothing is clipped.
  QuantizedTensor p = Q("int4:tensor:asym", {1.0f, 2.0f, 3.0f}, 1);
  EXPECT_EQ(p.ZeroPoint(0), 0);
  EXPECT_FLOAT_EQ(p.Scale(0), 3.0f / 15.0f);
  EXPECT_EQ(p.Code(2), 15);
}

TEST(QuantizerTest, Int3PackingOf11Values) {
  // 3-bit two's complement, LSB-first stream, hand-packed:
  // codes 1,2,3,-1,-2,-3,-4,0,1,2,3 = 001 010 011 111 110 101 100 000 001 010 011
  // -> bytes 0xD1 0xEE 0x12 0xD1 0x00 (33 bits in 5 bytes).
  const std::vector<float> x = {1, 2, 3, -1, -2, -3, -4, 0, 1, 2, 3};
  QuantizedTensor q = Q("int3:noscale", x, 1);
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{0xD1, 0xEE, 0x12, 0xD1, 0x00}));
  EXPECT_EQ(q.Bytes(), 5u);
  EXPECT_EQ(Deq(q), x);
  for (int i = 0; i < 11; ++i) EXPECT_EQ(q.Code(i), int(x[i]));
  // With a per-tensor fp32 scale: 5 bytes of codes + 4 of scale.
  EXPECT_EQ(Q("int3:tensor", x, 1).Bytes(), 9u);
  // Asym int3 on 11 values in 1 row of groups of 4: 3 groups -> 3 zero points of 3 bits (2 bytes).
  EXPECT_EQ(Q("int3:g4:asym", x, 1).Bytes(), 5u + 3 * 4u + 2u);
}

TEST(QuantizerTest, BytesForInt4G128Fp16Scales) {
  const int64_t rows = 4096, cols = 4096;
  std::vector<float> x(size_t(rows * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 97) - 48) * 0.01f;
  StatusOr<QuantizedTensor> q = Quantize(S("int4:g128:s=fp16"), x.data(), rows, cols);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->Bytes(), size_t(4096 * 4096 / 2 + 4096 * 32 * 2));
  EXPECT_DOUBLE_EQ(q->BitsPerWeight(), 4.0 + 16.0 / 128.0);
}

TEST(QuantizerTest, PartialLastGroup) {
  // [3, 172] with g128: groups are cols [0,128) and [128,172) (44 wide).
  const int64_t rows = 3, cols = 172;
  const std::vector<float> x = Weights(rows, cols, 7);
  QuantizedTensor q = Q("int4:g128", x, rows);
  ASSERT_EQ(q.num_scales(), rows * 2);
  for (int64_t r = 0; r < rows; ++r) {
    for (int g = 0; g < 2; ++g) {
      float amax = 0;
      for (int64_t c = g * 128; c < std::min<int64_t>(cols, (g + 1) * 128); ++c)
        amax = std::max(amax, std::fabs(x[r * cols + c]));
      EXPECT_FLOAT_EQ(q.Scale(r * 2 + g), amax / 7.0f) << r << " " << g;
    }
  }
  EXPECT_EQ(q.Bytes(), size_t((rows * cols * 4 + 7) / 8 + rows * 2 * 4));
}

TEST(QuantizerTest, TwoDimensionalTiles) {
  // [5, 10] with b2x4: tiles [3, 3], edge tiles partial.
  const int64_t rows = 5, cols = 10;
  const std::vector<float> x = Weights(rows, cols, 11);
  QuantizedTensor q = Q("int8:b2x4", x, rows);
  ASSERT_EQ(q.tiles.grid_rows, 3);
  ASSERT_EQ(q.tiles.grid_cols, 3);
  for (int tr = 0; tr < 3; ++tr)
    for (int tc = 0; tc < 3; ++tc) {
      float amax = 0;
      for (int64_t r = tr * 2; r < std::min<int64_t>(rows, tr * 2 + 2); ++r)
        for (int64_t c = tc * 4; c < std::min<int64_t>(cols, tc * 4 + 4); ++c)
          amax = std::max(amax, std::fabs(x[r * cols + c]));
      EXPECT_FLOAT_EQ(q.Scale(tr * 3 + tc), amax / 127.0f);
    }
}

TEST(QuantizerTest, ChannelAxes) {
  const int64_t rows = 6, cols = 9;
  const std::vector<float> x = Weights(rows, cols, 13);
  QuantizedTensor out = Q("int8:channel", x, rows);
  QuantizedTensor in = Q("int8:channel_in", x, rows);
  QuantizedTensor tok = Q("int8:token", x, rows);
  ASSERT_EQ(out.num_scales(), rows);
  ASSERT_EQ(in.num_scales(), cols);
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
    EXPECT_FLOAT_EQ(out.Scale(r), amax / 127.0f);
    EXPECT_FLOAT_EQ(tok.Scale(r), amax / 127.0f);
  }
  for (int64_t c = 0; c < cols; ++c) {
    float amax = 0;
    for (int64_t r = 0; r < rows; ++r) amax = std::max(amax, std::fabs(x[r * cols + c]));
    EXPECT_FLOAT_EQ(in.Scale(c), amax / 127.0f);
  }
}

TEST(QuantizerTest, ScaleDtypes) {
  const std::vector<float> x = {0.12f, -0.41f, 0.93f, -0.05f, 0.55f, -0.88f, 0.27f, 0.02f};
  const float s = 0.93f / 7.0f;
  // e8m0: rounded up to a power of two: 0.1329 -> 0.25 = 2^-2, byte 125.
  QuantizedTensor e = Q("int4:g8:s=e8m0", x, 1);
  EXPECT_EQ(e.Scale(0), 0.25f);
  EXPECT_EQ(e.scales, std::vector<uint8_t>{125});
  EXPECT_EQ(e.Code(2), 4);  // 0.93/0.25 = 3.72
  EXPECT_EQ(e.Bytes(), 4u + 1u);
  QuantizedTensor h = Q("int4:g8:s=fp16", x, 1);
  EXPECT_EQ(h.Scale(0), F16ToF32(F32ToF16(s)));
  EXPECT_EQ(h.Bytes(), 4u + 2u);
  QuantizedTensor b = Q("int4:g8:s=bf16", x, 1);
  EXPECT_EQ(b.Scale(0), Bf16ToF32(F32ToBf16(s)));
  QuantizedTensor f8 = Q("int4:g8:s=e4m3", x, 1);
  const ElementCodec* e4m3 = *FindElementCodec("fp8_e4m3");
  EXPECT_EQ(f8.Scale(0), e4m3->Round(s));
  EXPECT_EQ(f8.Bytes(), 4u + 1u);
  // Codes always use the stored scale.
  for (const QuantizedTensor* q : {&e, &h, &b, &f8}) {
    const std::vector<float> y = Deq(*q);
    for (int i = 0; i < 8; ++i) {
      const float expect = float(std::clamp(std::nearbyint(x[i] / q->Scale(0)), -7.0f, 7.0f));
      EXPECT_EQ(float(q->Code(i)), expect) << ToString(q->scheme) << " " << i;
      EXPECT_EQ(y[i], expect * q->Scale(0));
    }
  }
}

TEST(QuantizerTest, FloatFormatWithTensorScale) {
  // fp8_e4m3:tensor maps amax onto 448: 4 -> 448, 2 -> 224, 1 -> 112, all exact E4M3 values.
  QuantizedTensor q = Q("fp8_e4m3:tensor", {1.0f, 2.0f, -4.0f}, 1);
  EXPECT_FLOAT_EQ(q.Scale(0), 4.0f / 448.0f);
  const std::vector<float> y = Deq(q);
  EXPECT_NEAR(y[0], 1.0f, 1e-6);
  EXPECT_NEAR(y[1], 2.0f, 1e-6);
  EXPECT_NEAR(y[2], -4.0f, 1e-6);
  // fp4 with a g2 scale: [0.3, 1.2] -> s = 1.2/6 = 0.2; 0.3/0.2 = 1.5 -> E2M1 1.5 exactly.
  QuantizedTensor f4 = Q("fp4_e2m1:g2", {0.3f, 1.2f, -5.0f, 0.1f}, 1);
  const std::vector<float> z = Deq(f4);
  EXPECT_NEAR(z[0], 0.3f, 1e-6);
  EXPECT_NEAR(z[1], 1.2f, 1e-6);
  EXPECT_NEAR(z[2], -5.0f, 1e-6);
  EXPECT_EQ(z[3], 0.0f);  // 0.1/(5/6) = 0.12 < 0.25 -> 0
  EXPECT_EQ(f4.Bytes(), 2u + 2 * 4u);
}

TEST(QuantizerTest, AllZeroGroupsGiveZerosNotNaN) {
  std::vector<float> x(64, 0.0f);
  for (int i = 32; i < 64; ++i) x[i] = float(i - 48) * 0.1f;  // second group nonzero
  for (const char* s : {"int4:g32", "int4:g32:asym", "int4:g32:symfull", "int8:g32:s=e8m0",
                        "int4:g32:s=e4m3", "fp8_e4m3:g32", "fp4_e2m1:g32:s=e8m0", "int4:g32:mse",
                        "int4:g32:asym:pct99", "int4:tensor", "nvfp4", "mxfp4", "nf4", "q4_k"}) {
    std::vector<float> zeros(64, 0.0f), y(64, 1.0f);
    ASSERT_TRUE(FakeQuantize(S(s), zeros.data(), 2, 32, y.data()).ok()) << s;
    for (float v : y) EXPECT_EQ(v, 0.0f) << s;
    StatusOr<QuantizedTensor> q = Quantize(S(s), x.data(), 2, 32);
    ASSERT_TRUE(q.ok()) << s;
    std::vector<float> d = Deq(*q);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(d[i], 0.0f) << s;
    for (float v : d) EXPECT_FALSE(std::isnan(v)) << s;
  }
}

TEST(QuantizerTest, NaNAndInfInputsAreErrors) {
  std::vector<float> x(40, 0.5f);
  x[23] = std::nanf("");
  for (const char* s : {"int4:g8", "fp8_e4m3:noscale", "bf16", "mxfp4"}) {
    StatusOr<QuantizedTensor> q = Quantize(S(s), x.data(), 4, 10);
    ASSERT_FALSE(q.ok()) << s;
    EXPECT_NE(q.status().message().find("NaN at flat index 23"), std::string::npos) << q.status().message();
    std::vector<float> y(40);
    EXPECT_FALSE(FakeQuantize(S(s), x.data(), 4, 10, y.data()).ok());
  }
  x[23] = INFINITY;
  StatusOr<QuantizedTensor> q = Quantize(S("int8:channel"), x.data(), 4, 10);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("index 23"), std::string::npos) << q.status().message();
  // A direct cast passes Inf to the format (bf16 keeps it).
  StatusOr<QuantizedTensor> c = Quantize(S("bf16"), x.data(), 4, 10);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Deq(*c)[23], INFINITY);
}

TEST(QuantizerTest, ErrorStatsByHand) {
  const float ref[] = {1, 2, 3}, approx[] = {1, 2.5f, 2};
  const ErrorStats e = ComputeErrorStats(ref, approx, 3);
  EXPECT_DOUBLE_EQ(e.mse, 1.25 / 3);
  EXPECT_DOUBLE_EQ(e.max_abs, 1.0);
  EXPECT_EQ(e.max_abs_index, 2);
  EXPECT_NEAR(e.sqnr_db, 10 * std::log10(14 / 1.25), 1e-12);
  EXPECT_TRUE(std::isinf(ComputeErrorStats(ref, ref, 3).sqnr_db));
}

// ---------------------------------------------------------------------------------------------
// Properties over random data, for every integer and float scheme family
// ---------------------------------------------------------------------------------------------

const char* kGrans[] = {"tensor", "channel", "channel_in", "g32", "g48", "b4x16", "token"};

// The tile of element (r, c) as [r0, r1) x [c0, c1), from the granularity name (independent of
// TilesFor).
void TileOf(const std::string& g, int64_t rows, int64_t cols, int64_t r, int64_t c, int64_t* r0,
            int64_t* r1, int64_t* c0, int64_t* c1) {
  int64_t tr = rows, tc = cols;
  if (g == "channel" || g == "token") tr = 1;
  if (g == "channel_in") tc = 1;
  if (g == "g32") tr = 1, tc = 32;
  if (g == "g48") tr = 1, tc = 48;
  if (g == "b4x16") tr = 4, tc = 16;
  *r0 = r / tr * tr, *r1 = std::min(rows, *r0 + tr);
  *c0 = c / tc * tc, *c1 = std::min(cols, *c0 + tc);
}

TEST(QuantizerPropertyTest, IntegerErrorIsAtMostHalfAStep) {
  const int64_t rows = 12, cols = 100;
  const std::vector<float> x = Weights(rows, cols, 21, 0.01f);
  for (int bits = 2; bits <= 8; ++bits)
    for (const char* mode : {"sym", "symfull", "asym"})
      for (const char* g : kGrans) {
        const std::string name = fmt::format("int{}:{}:{}", bits, g, mode);
        QuantizedTensor q = Q(name, x, rows);
        const std::vector<float> y = Deq(q);
        const double qmax = (1 << (bits - 1)) - 1;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            int64_t r0, r1, c0, c1;
            TileOf(g, rows, cols, r, c, &r0, &r1, &c0, &c1);
            double mn = 0, mx = 0;  // the range always includes 0
            for (int64_t i = r0; i < r1; ++i)
              for (int64_t j = c0; j < c1; ++j) {
                mn = std::min(mn, double(x[i * cols + j]));
                mx = std::max(mx, double(x[i * cols + j]));
              }
            const double amax = std::max(-mn, mx);
            const double step = std::string(mode) == "sym"       ? amax / qmax
                                : std::string(mode) == "symfull" ? amax / (qmax + 0.5)
                                                                 : (mx - mn) / (2 * qmax + 1);
            const double err = std::fabs(double(x[r * cols + c]) - y[r * cols + c]);
            // fp32 rounding of the dequantized value adds up to ~1e-7 * amax.
            ASSERT_LE(err, 0.5 * step * (1 + 1e-5) + 1e-6 * amax) << name << " at " << r << "," << c;
          }
      }
}

struct FloatFmt {
  const char* name;
  int mbits;
  int emin;  // exponent of the smallest normal
};
const FloatFmt kFloats[] = {{"fp8_e4m3", 3, -6}, {"fp8_e5m2", 2, -14}, {"fp6_e2m3", 3, 0},
                            {"fp6_e3m2", 2, -2},  {"fp4_e2m1", 1, 0},   {"fp16", 10, -14},
                            {"bf16", 7, -126}};

// Spacing of an ExMy grid around v: 2^(max(floor(log2 |v|), emin) - M).
double Ulp(const FloatFmt& f, double v) {
  const int e = v == 0 ? f.emin : std::max(int(std::floor(std::log2(std::fabs(v)))), f.emin);
  return std::ldexp(1.0, e - f.mbits);
}

TEST(QuantizerPropertyTest, FloatErrorIsAtMostHalfAnUlp) {
  const int64_t rows = 12, cols = 100;
  const std::vector<float> x = Weights(rows, cols, 22);
  for (const FloatFmt& f : kFloats) {
    const float maxf = (*FindElementCodec(f.name))->max_finite();
    for (const char* g : kGrans) {
      const std::string name = fmt::format("{}:{}", f.name, g);
      QuantizedTensor q = Q(name, x, rows);
      const std::vector<float> y = Deq(q);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          int64_t r0, r1, c0, c1;
          TileOf(g, rows, cols, r, c, &r0, &r1, &c0, &c1);
          double amax = 0;
          for (int64_t i = r0; i < r1; ++i)
            for (int64_t j = c0; j < c1; ++j) amax = std::max(amax, std::fabs(double(x[i * cols + j])));
          const double s = amax / maxf;
          const double v = x[r * cols + c] / s;  // in format units
          const double err = std::fabs(double(x[r * cols + c]) - y[r * cols + c]) / s;
          ASSERT_LE(err, 0.5 * Ulp(f, v) * (1 + 1e-4) + 1e-6 * std::fabs(v)) << name << " " << r << "," << c;
        }
    }
    // The direct cast, on values inside the format's range.
    std::vector<float> v(x);
    for (float& a : v) a = std::clamp(a * 40.0f, -maxf, maxf);
    QuantizedTensor c = Q(fmt::format("{}:noscale", f.name), v, rows);
    const std::vector<float> y = Deq(c);
    for (size_t i = 0; i < v.size(); ++i)
      ASSERT_LE(std::fabs(double(v[i]) - y[i]), 0.5 * Ulp(f, v[i])) << f.name << " " << v[i];
  }
}

// The quantizer's table-driven encoding must give exactly the codec's own rounding: on every
// representable value, every midpoint between neighbours (ties), one fp32 ulp either side of each,
// subnormal fp32 inputs, and random values.
TEST(QuantizerPropertyTest, ElementCastsMatchTheCodecBitForBit) {
  std::vector<const ElementCodec*> codecs;
  for (const ElementCodec* c : ElementCodecs())
    if (c->kind() == FormatKind::kFloat || c->kind() == FormatKind::kCodebook) codecs.push_back(c);
  for (const char* extra : {"e3m4", "e2m2", "e5m1"})
    if (auto c = FindElementCodec(extra); c.ok()) codecs.push_back(*c);
  std::mt19937 rng(31);
  for (const ElementCodec* c : codecs) {
    std::vector<float> grid;
    for (uint32_t code = 0; code < (1u << std::min(c->bits(), 12)); ++code) {
      const float v = c->Decode(code);
      if (std::isfinite(v)) grid.push_back(v);
    }
    std::sort(grid.begin(), grid.end());
    std::vector<float> x;
    for (size_t i = 0; i < grid.size(); ++i) {
      x.push_back(grid[i]);
      if (i + 1 < grid.size()) {
        const float mid = grid[i] + (grid[i + 1] - grid[i]) / 2;
        x.push_back(mid);
        x.push_back(std::nextafter(mid, -INFINITY));
        x.push_back(std::nextafter(mid, INFINITY));
      }
    }
    x.push_back(1e-40f);
    x.push_back(-1e-40f);
    x.push_back(-0.0f);
    std::uniform_real_distribution<float> u(c->min_value(), c->max_finite());
    for (int i = 0; i < 2000; ++i) x.push_back(u(rng));
    std::uniform_real_distribution<float> e(-20, 5);
    for (int i = 0; i < 2000; ++i) x.push_back((i % 2 ? 1 : -1) * std::exp2(e(rng)));
    std::vector<float> y(x.size());
    const std::string scheme = c->name() + ":noscale";
    ASSERT_TRUE(FakeQuantize(S(scheme), x.data(), 1, int64_t(x.size()), y.data()).ok()) << scheme;
    StatusOr<QuantizedTensor> q = Quantize(S(scheme), x.data(), 1, int64_t(x.size()));
    ASSERT_TRUE(q.ok());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(F32Bits(y[i]), F32Bits(c->Round(x[i]))) << c->name() << " x=" << x[i];
      ASSERT_EQ(q->RawCode(int64_t(i)), c->Encode(x[i])) << c->name() << " x=" << x[i];
    }
  }
}

TEST(QuantizerPropertyTest, FinerGranularityHasLessError) {
  const int64_t rows = 32, cols = 256;
  const std::vector<float> x = Weights(rows, cols, 23);
  for (const char* f : {"int2", "int3", "int4", "int8", "fp8_e4m3", "fp4_e2m1", "fp6_e3m2"}) {
    const double tensor = RoundTripMse(std::string(f) + ":tensor", x, rows);
    const double channel = RoundTripMse(std::string(f) + ":channel", x, rows);
    const double channel_in = RoundTripMse(std::string(f) + ":channel_in", x, rows);
    const double g64 = RoundTripMse(std::string(f) + ":g64", x, rows);
    const double g16 = RoundTripMse(std::string(f) + ":g16", x, rows);
    EXPECT_LE(channel, tensor) << f;
    EXPECT_LE(channel_in, tensor) << f;
    EXPECT_LE(g64, channel) << f;
    EXPECT_LE(g16, g64) << f;
  }
}

TEST(QuantizerPropertyTest, AsymBeatsSymOnShiftedData) {
  const int64_t rows = 16, cols = 256;
  const std::vector<float> x = Weights(rows, cols, 24, /*shift=*/0.2f);  // mostly positive
  for (int bits : {2, 3, 4, 8})
    for (const char* g : {"tensor", "channel", "g64"}) {
      const double sym = RoundTripMse(fmt::format("int{}:{}", bits, g), x, rows);
      const double asym = RoundTripMse(fmt::format("int{}:{}:asym", bits, g), x, rows);
      EXPECT_LT(asym, sym) << bits << " " << g;
    }
}

TEST(QuantizerPropertyTest, ClippingHelpsOnHeavyTails) {
  const int64_t rows = 16, cols = 1024;
  const std::vector<float> x = Laplace(size_t(rows * cols), 25);
  for (const char* base : {"int4:tensor", "int4:channel", "int3:g256", "int4:tensor:asym", "fp4_e2m1:channel"}) {
    const double absmax = RoundTripMse(base, x, rows);
    const double pct = RoundTripMse(std::string(base) + ":pct99.9", x, rows);
    const double mse = RoundTripMse(std::string(base) + ":mse", x, rows);
    EXPECT_LT(pct, absmax) << base;
    EXPECT_LT(mse, absmax) << base;
    EXPECT_LE(mse, pct * 1.05) << base;  // the search should be about as good as a fixed percentile
  }
}

TEST(QuantizerPropertyTest, MseSearchNeverWorseThanAbsmaxPerTile) {
  const int64_t rows = 8, cols = 96;
  const std::vector<float> x = Weights(rows, cols, 26);
  for (const char* base : {"int4:g32", "int2:g32:asym", "fp8_e4m3:g32", "int4:g32:s=fp16"}) {
    std::vector<float> a(x.size()), m(x.size());
    ASSERT_TRUE(FakeQuantize(S(base), x.data(), rows, cols, a.data()).ok());
    ASSERT_TRUE(FakeQuantize(S(std::string(base) + ":mse"), x.data(), rows, cols, m.data()).ok());
    for (int64_t t = 0; t < rows * cols / 32; ++t) {
      double ea = 0, em = 0;
      for (int64_t i = t * 32; i < t * 32 + 32; ++i) {
        ea += (double(x[i]) - a[i]) * (double(x[i]) - a[i]);
        em += (double(x[i]) - m[i]) * (double(x[i]) - m[i]);
      }
      EXPECT_LE(em, ea * (1 + 1e-12)) << base << " tile " << t;
    }
  }
}

TEST(QuantizerPropertyTest, FakeQuantizeEqualsDequantizeOfQuantize) {
  const int64_t rows = 9, cols = 70;
  const std::vector<float> x = Weights(rows, cols, 27, 0.003f);
  std::vector<std::string> schemes = {"bf16", "fp16", "fp8_e4m3:noscale", "int8:noscale"};
  for (const char* g : kGrans)
    for (const char* tail : {"", ":asym", ":symfull", ":pct99", ":mse", ":s=fp16", ":s=e8m0", ":s=e4m3",
                             ":asym:mse:s=bf16"})
      for (const char* f : {"int2", "int3", "int4", "int5", "int8"})
        schemes.push_back(fmt::format("{}:{}{}", f, g, tail));
  for (const char* g : kGrans)
    for (const char* f : {"fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp4_e2m1", "bf16", "e3m4"})
      for (const char* tail : {"", ":mse", ":s=e8m0"}) schemes.push_back(fmt::format("{}:{}{}", f, g, tail));
  for (const BlockCodec* b : BlockCodecs()) schemes.push_back(b->name());
  for (const std::string& s : schemes) {
    const Scheme sch = S(s);
    StatusOr<QuantizedTensor> q = Quantize(sch, x.data(), rows, cols);
    ASSERT_TRUE(q.ok()) << s << ": " << q.status().message();
    const std::vector<float> d = Deq(*q);
    std::vector<float> f(x.size());
    ASSERT_TRUE(FakeQuantize(sch, x.data(), rows, cols, f.data()).ok()) << s;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(F32Bits(d[i]), F32Bits(f[i])) << s << " at " << i;
    // In place too.
    std::vector<float> inplace(x);
    ASSERT_TRUE(FakeQuantize(sch, inplace.data(), rows, cols, inplace.data()).ok());
    ASSERT_EQ(inplace, f) << s;
  }
}

TEST(QuantizerPropertyTest, BlockSchemesDelegateToTheCodec) {
  const int64_t rows = 4, cols = 512;
  const std::vector<float> x = Weights(rows, cols, 28);
  int n = 0;
  for (const BlockCodec* b : BlockCodecs()) {
    StatusOr<QuantizedTensor> q = Quantize(S(b->name()), x.data(), rows, cols);
    ASSERT_TRUE(q.ok()) << b->name() << ": " << q.status().message();
    StatusOr<PackedBlocks> p = b->Quantize(x.data(), rows, cols, BlockOptions{});
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(q->blocks.bytes, p->bytes) << b->name();
    EXPECT_EQ(q->Bytes(), p->total_bytes()) << b->name();
    EXPECT_DOUBLE_EQ(q->BitsPerWeight(), p->bits_per_weight());
    std::vector<float> y1(x.size()), y2(x.size());
    q->Dequantize(y1.data());
    b->Dequantize(*p, y2.data());
    EXPECT_EQ(y1, y2) << b->name();
    ++n;
  }
  EXPECT_EQ(n, int(BlockCodecs().size()));
  // Options reach the codec: a non-default block size changes the storage.
  if (FindBlockCodec("mxfp4").ok()) {
    StatusOr<QuantizedTensor> a = Quantize(S("mxfp4"), x.data(), rows, cols);
    StatusOr<QuantizedTensor> b = Quantize(S("mxfp4:g16"), x.data(), rows, cols);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->Bytes(), size_t(rows * cols / 2 + rows * cols / 32));
    EXPECT_EQ(b->Bytes(), size_t(rows * cols / 2 + rows * cols / 16));
  }
}

}  // namespace
}  // namespace ql
