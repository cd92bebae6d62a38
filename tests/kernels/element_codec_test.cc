// Element codecs (kernels/int_codec.h, minifloat.h, e8m0.h) against values derived by hand from the
// bit layouts of docs/formats.md §1.1/§1.2/§1.4: every code of every <= 8-bit float format, ties, saturation,
// NaN/Inf/-0 policies, generic ExMy names, fp16/bf16 against kernels/half.h, the registry lookups.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/format.h"
#include "kernels/half.h"

namespace ql {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

const ElementCodec* Get(std::string_view name) {
  StatusOr<const ElementCodec*> c = FindElementCodec(name);
  EXPECT_TRUE(c.ok()) << name << ": " << c.status().message();
  return c.ok() ? *c : nullptr;
}

uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }
bool SameFloat(float a, float b) { return (std::isnan(a) && std::isnan(b)) || Bits(a) == Bits(b); }

// ---- The hand-written facts of docs/formats.md §1.1 for the <= 8-bit float formats ----
struct FloatFacts {
  const char* name;
  int e, m, bias;
  bool subnormals;
  double max, min_normal, min_sub;
  std::vector<uint32_t> nan_codes, inf_codes;
  bool neg_zero;
};

const std::vector<FloatFacts>& SmallFloatFacts() {
  static const std::vector<FloatFacts> k = {
      {"fp8_e4m3", 4, 3, 7, true, 448, 1.0 / 64, 1.0 / 512, {0x7F, 0xFF}, {}, true},
      {"fp8_e4m3fnuz", 4, 3, 8, true, 240, 1.0 / 128, 1.0 / 1024, {0x80}, {}, false},
      {"fp8_e5m2", 5, 2, 15, true, 57344, 1.0 / 16384, 1.0 / 65536, {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF},
       {0x7C, 0xFC}, true},
      {"fp8_e5m2fnuz", 5, 2, 16, true, 57344, 1.0 / 32768, 1.0 / 131072, {0x80}, {}, false},
      {"fp6_e2m3", 2, 3, 1, true, 7.5, 1.0, 0.125, {}, {}, true},
      {"fp6_e3m2", 3, 2, 3, true, 28, 0.25, 0.0625, {}, {}, true},
      {"fp4_e2m1", 2, 1, 1, true, 6, 1.0, 0.5, {}, {}, true},
  };
  return k;
}

// Value of a code straight from sign / exponent / mantissa: (-1)^s * 2^(e-bias) * (1 + m/2^M), or
// (-1)^s * 2^(1-bias) * m/2^M for e = 0. Written independently of the codec (std::pow, doubles).
double RefValue(uint32_t code, int e_bits, int m_bits, int bias, bool subnormals) {
  const uint32_t s = (code >> (e_bits + m_bits)) & 1u;
  const uint32_t e = (code >> m_bits) & ((1u << e_bits) - 1u);
  const uint32_t m = code & ((1u << m_bits) - 1u);
  const double frac = double(m) / std::pow(2.0, m_bits);
  double v;
  if (e == 0)
    v = subnormals ? std::pow(2.0, 1 - bias) * frac : 0.0;
  else
    v = std::pow(2.0, int(e) - bias) * (1.0 + frac);
  return s ? -v : v;
}

bool Contains(const std::vector<uint32_t>& v, uint32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

TEST(SmallFloats, EveryCodeDecodesToTheHandDerivedValue) {
  for (const FloatFacts& f : SmallFloatFacts()) {
    SCOPED_TRACE(f.name);
    const ElementCodec* c = Get(f.name);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->kind(), FormatKind::kFloat);
    EXPECT_EQ(c->bits(), 1 + f.e + f.m);
    EXPECT_EQ(double(c->max_finite()), f.max);
    EXPECT_EQ(double(c->min_value()), -f.max);
    EXPECT_EQ(double(c->Decode(1u << f.m)), f.min_normal);
    EXPECT_EQ(double(c->Decode(1u)), f.min_sub);
    double max_seen = 0;
    int finite = 0;
    for (uint32_t code = 0; code < (1u << c->bits()); ++code) {
      const float got = c->Decode(code);
      if (Contains(f.nan_codes, code)) {
        EXPECT_TRUE(std::isnan(got)) << "code " << code;
        continue;
      }
      if (Contains(f.inf_codes, code)) {
        EXPECT_TRUE(std::isinf(got)) << "code " << code;
        EXPECT_EQ(std::signbit(got), (code >> (f.e + f.m)) != 0);
        continue;
      }
      ++finite;
      const double want = RefValue(code, f.e, f.m, f.bias, f.subnormals);
      EXPECT_EQ(double(got), want) << "code " << code;
      EXPECT_EQ(std::signbit(got), (code >> (f.e + f.m)) != 0) << "code " << code;
      max_seen = std::max(max_seen, std::fabs(want));
    }
    EXPECT_EQ(max_seen, f.max);
    EXPECT_EQ(finite, (1 << c->bits()) - int(f.nan_codes.size() + f.inf_codes.size()));
  }
}

TEST(SmallFloats, Fp4E2m1AllSixteenCodes) {
  // docs/formats.md §1.1: code -> |value| 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 is the sign.
  const float kMag[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  const ElementCodec* c = Get("fp4_e2m1");
  for (uint32_t code = 0; code < 16; ++code) {
    const float want = code < 8 ? kMag[code] : -kMag[code - 8];
    EXPECT_TRUE(SameFloat(c->Decode(code), want)) << code;
  }
  EXPECT_TRUE(SameFloat(c->Decode(8), -0.0f));
  // RNE decision points of ModelOpt _cast_fp4 (docs/formats.md §1.1).
  const std::pair<float, float> kCases[] = {{0.25f, 0},   {0.2499f, 0}, {0.2501f, 0.5f}, {0.75f, 1},
                                            {1.25f, 1},   {1.75f, 2},   {2.5f, 2},       {3.5f, 4},
                                            {5.0f, 4},    {5.01f, 6},   {6.5f, 6},       {100.f, 6},
                                            {-2.5f, -2},  {-5.0f, -4},  {-7.f, -6}};
  for (auto [x, want] : kCases) EXPECT_EQ(c->Round(x), want) << x;
}

std::vector<double> PositiveValues(const ElementCodec* c) {
  std::set<double> s;
  for (uint32_t code = 0; code < (1u << c->bits()); ++code) {
    const float v = c->Decode(code);
    if (std::isfinite(v) && v >= 0) s.insert(v);
  }
  return {s.begin(), s.end()};
}

TEST(SmallFloats, Fp6ValueSets) {
  // docs/formats.md §1.1: E2M3 = m/8 (m = 0..7) U 2^(e-1)(1+m/8), e = 1..3. E3M2 = m/16 (m = 0..3) U 2^(e-3)(1+m/4), e = 1..7.
  std::set<double> e2m3, e3m2;
  for (int m = 0; m < 8; ++m) e2m3.insert(m / 8.0);
  for (int e = 1; e <= 3; ++e)
    for (int m = 0; m < 8; ++m) e2m3.insert(std::ldexp(1.0 + m / 8.0, e - 1));
  for (int m = 0; m < 4; ++m) e3m2.insert(m / 16.0);
  for (int e = 1; e <= 7; ++e)
    for (int m = 0; m < 4; ++m) e3m2.insert(std::ldexp(1.0 + m / 4.0, e - 3));
  EXPECT_EQ(PositiveValues(Get("fp6_e2m3")), std::vector<double>(e2m3.begin(), e2m3.end()));
  EXPECT_EQ(PositiveValues(Get("fp6_e3m2")), std::vector<double>(e3m2.begin(), e3m2.end()));
  EXPECT_EQ(e2m3.size(), 32u);
  EXPECT_EQ(*e2m3.rbegin(), 7.5);
  EXPECT_EQ(*e3m2.rbegin(), 28.0);
}

TEST(SmallFloats, Fp8SpotValues) {
  const ElementCodec* e4m3 = Get("fp8_e4m3");
  EXPECT_EQ(e4m3->Decode(0x7E), 448.0f);
  EXPECT_TRUE(std::isnan(e4m3->Decode(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3->Decode(0xFF)));
  EXPECT_EQ(e4m3->Decode(0xFE), -448.0f);
  EXPECT_EQ(e4m3->Decode(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3->Decode(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3->Decode(0x38), 1.0f);  // 0.0111.000
  EXPECT_EQ(e4m3->Decode(0x78), 256.0f);
  EXPECT_TRUE(SameFloat(e4m3->Decode(0x80), -0.0f));

  const ElementCodec* fnuz = Get("fp8_e4m3fnuz");
  EXPECT_EQ(fnuz->Decode(0x7F), 240.0f);
  EXPECT_TRUE(std::isnan(fnuz->Decode(0x80)));
  EXPECT_EQ(fnuz->Decode(0x01), std::ldexp(1.0f, -10));
  EXPECT_EQ(fnuz->Decode(0x40), 1.0f);  // 0.1000.000 with bias 8
  EXPECT_EQ(fnuz->Decode(0xFF), -240.0f);

  const ElementCodec* e5m2 = Get("fp8_e5m2");
  EXPECT_EQ(e5m2->Decode(0x7B), 57344.0f);
  EXPECT_EQ(e5m2->Decode(0x7C), kInf);
  EXPECT_EQ(e5m2->Decode(0xFC), -kInf);
  EXPECT_EQ(e5m2->Decode(0x3C), 1.0f);
  EXPECT_EQ(e5m2->Decode(0x01), std::ldexp(1.0f, -16));

  const ElementCodec* e5fnuz = Get("fp8_e5m2fnuz");
  EXPECT_EQ(e5fnuz->Decode(0x7F), 57344.0f);
  EXPECT_EQ(e5fnuz->Decode(0x40), 1.0f);
  EXPECT_EQ(e5fnuz->Decode(0x01), std::ldexp(1.0f, -17));
  EXPECT_TRUE(std::isnan(e5fnuz->Decode(0x80)));
}

// ---- Encode against a brute-force nearest-value oracle over the decoded code table ----
// Nearest finite value to min(max(x, -max), max); a tie goes to the code whose mantissa LSB (= code
// LSB) is 0, and for M = 0 formats (no mantissa bit) to the larger magnitude (the integer significand
// 1 vs 2: 2 is even). A result of 0 takes the sign of x when the format has -0.
uint32_t OracleEncode(const ElementCodec* c, bool neg_zero, bool m0, float xf) {
  const double x = std::clamp(double(xf), -double(c->max_finite()), double(c->max_finite()));
  const uint32_t sign_bit = 1u << (c->bits() - 1);
  uint32_t best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (uint32_t code = 0; code < (1u << c->bits()); ++code) {
    const float v = c->Decode(code);
    if (!std::isfinite(v) || (v == 0 && code != 0)) continue;
    const double d = std::fabs(double(v) - x);
    const bool tie_wins = m0 ? (std::fabs(v) > std::fabs(c->Decode(best)) && c->Decode(best) != 0) : ((code & 1u) == 0 && (best & 1u) == 1);
    if (d < best_d || (d == best_d && tie_wins)) {
      best = code;
      best_d = d;
    }
  }
  if (best == 0 && neg_zero && std::signbit(xf)) best = sign_bit;
  return best;
}

// The named <= 8-bit formats plus generic ones (name, has -0, canonical codes ordered by value).
struct OracleFormat {
  std::string name;
  bool neg_zero;
  bool ordered_codes;  // false for _nosub: exponent-0 codes with m != 0 are extra zeros
  bool m0() const { return name.find("m0") != std::string::npos; }  // no mantissa bits
};
std::vector<OracleFormat> OracleFormats() {
  std::vector<OracleFormat> v;
  for (const FloatFacts& f : SmallFloatFacts()) v.push_back({f.name, f.neg_zero, true});
  for (const char* g : {"e3m4", "e3m4_fn", "e3m4_ieee", "e3m4_b5", "e2m2", "e6m1", "e1m3", "e4m3_none",
                        "e5m2_none", "e2m5_fn", "e4m0_fn", "e3m3_ieee", "e6m2_b40"})
    v.push_back({g, true, true});
  for (const char* g : {"e3m4_fnuz", "e5m1_fnuz", "e4m3_fnuz_b5"}) v.push_back({g, false, true});
  for (const char* g : {"e3m4_nosub", "e2m1_nosub", "e4m3_fn_nosub"}) v.push_back({g, true, false});
  return v;
}

TEST(SmallFloats, EncodeMatchesNearestEvenOracleDense) {
  std::mt19937 rng(1234);
  for (const OracleFormat& f : OracleFormats()) {
    SCOPED_TRACE(f.name);
    const ElementCodec* c = Get(f.name);
    ASSERT_NE(c, nullptr);
    std::vector<float> xs = {0.0f, -0.0f, 1e-30f, -1e-30f, std::numeric_limits<float>::denorm_min(), 1e30f,
                             -1e30f, std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()};
    // Around every adjacent pair of values: the values, midpoints, one fp32 ulp either side, fractions.
    const std::vector<double> pos = PositiveValues(c);
    for (size_t i = 0; i + 1 < pos.size(); ++i) {
      const double lo = pos[i], hi = pos[i + 1], mid = 0.5 * (lo + hi);
      for (double y : {lo, mid, lo + (hi - lo) * 0.3, lo + (hi - lo) * 0.7, hi}) {
        const float yf = float(y);
        for (float z : {yf, std::nextafter(yf, 0.0f), std::nextafter(yf, kInf)}) {
          xs.push_back(z);
          xs.push_back(-z);
        }
      }
    }
    std::uniform_real_distribution<double> lg(std::log2(pos[1]) - 4, 2.0 + std::log2(c->max_finite()));
    for (int i = 0; i < 4000; ++i) {
      const float x = float(std::exp2(lg(rng)));
      xs.push_back((i & 1) ? -x : x);
    }
    int mismatches = 0;
    for (float x : xs) {
      const uint32_t want = OracleEncode(c, f.neg_zero, f.m0(), x);
      const uint32_t got = c->Encode(x);
      if (got != want && ++mismatches < 10) ADD_FAILURE() << "x=" << x << " got " << got << " want " << want;
    }
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(SmallFloats, TiesToEvenAtEveryMidpoint) {
  for (const OracleFormat& f : OracleFormats()) {
    if (!f.ordered_codes) continue;
    SCOPED_TRACE(f.name);
    const ElementCodec* c = Get(f.name);
    ASSERT_NE(c, nullptr);
    const uint32_t sign_bit = 1u << (c->bits() - 1);
    // Positive codes 0 .. (max code) are ordered by value; walk adjacent pairs.
    uint32_t max_code = 0;
    for (uint32_t code = 0; code < sign_bit; ++code)
      if (std::isfinite(c->Decode(code))) max_code = code;
    for (uint32_t lo = 0; lo < max_code; ++lo) {
      const double a = c->Decode(lo), b = c->Decode(lo + 1);
      ASSERT_LT(a, b);
      const float mid = float(0.5 * (a + b));
      ASSERT_EQ(double(mid), 0.5 * (a + b));  // exact in fp32 for these small formats
      const uint32_t even = f.m0() ? (lo == 0 ? 0 : lo + 1) : ((lo & 1u) ? lo + 1 : lo);
      EXPECT_EQ(c->Encode(mid), even) << "mid " << mid;
      EXPECT_EQ(c->Encode(std::nextafter(mid, 0.0f)), lo) << "below mid " << mid;
      EXPECT_EQ(c->Encode(std::nextafter(mid, kInf)), lo + 1) << "above mid " << mid;
      // Negative side: same magnitude codes with the sign bit (FNUZ: -0 does not exist, lo = 0 -> +0).
      const uint32_t neg_even = (even == 0 && !f.neg_zero) ? 0 : (even | sign_bit);
      EXPECT_EQ(c->Encode(-mid), neg_even) << "-mid " << mid;
      const uint32_t neg_lo = (lo == 0 && !f.neg_zero) ? 0 : (lo | sign_bit);
      EXPECT_EQ(c->Encode(std::nextafter(-mid, 0.0f)), neg_lo);
      EXPECT_EQ(c->Encode(std::nextafter(-mid, -kInf)), (lo + 1) | sign_bit);
    }
  }
}

TEST(SmallFloats, SaturationZerosAndNaN) {
  struct Case {
    const char* name;
    uint32_t max_code, inf_in, ninf_in, nan_in, neg_nan_in, neg_zero_in;
  };
  // Per docs/formats.md §1.1 and the policies of minifloat.h: Inf saturates except in E5M2 (has Inf).
  const Case kCases[] = {
      {"fp8_e4m3", 0x7E, 0x7E, 0xFE, 0x7F, 0xFF, 0x80},     {"fp8_e4m3fnuz", 0x7F, 0x7F, 0xFF, 0x80, 0x80, 0x00},
      {"fp8_e5m2", 0x7B, 0x7C, 0xFC, 0x7E, 0xFE, 0x80},     {"fp8_e5m2fnuz", 0x7F, 0x7F, 0xFF, 0x80, 0x80, 0x00},
      {"fp6_e2m3", 0x1F, 0x1F, 0x3F, 0x00, 0x00, 0x20},     {"fp6_e3m2", 0x1F, 0x1F, 0x3F, 0x00, 0x00, 0x20},
      {"fp4_e2m1", 0x7, 0x7, 0xF, 0x0, 0x0, 0x8},
  };
  for (const Case& k : kCases) {
    SCOPED_TRACE(k.name);
    const ElementCodec* c = Get(k.name);
    const uint32_t sign_bit = 1u << (c->bits() - 1);
    const float mx = c->max_finite();
    EXPECT_EQ(c->Encode(mx), k.max_code);
    EXPECT_EQ(c->Encode(mx * 1.03f), k.max_code);
    EXPECT_EQ(c->Encode(mx * 2), k.max_code);
    EXPECT_EQ(c->Encode(-mx * 2), k.max_code | sign_bit);
    EXPECT_EQ(c->Encode(std::numeric_limits<float>::max()), k.max_code);
    EXPECT_EQ(c->Encode(kInf), k.inf_in);
    EXPECT_EQ(c->Encode(-kInf), k.ninf_in);
    EXPECT_EQ(c->Encode(kNaN), k.nan_in);
    EXPECT_EQ(c->Encode(-kNaN), k.neg_nan_in);
    EXPECT_EQ(c->Encode(0.0f), 0u);
    EXPECT_EQ(c->Encode(-0.0f), k.neg_zero_in);
    EXPECT_EQ(c->Encode(-1e-30f), k.neg_zero_in);  // rounds to zero, keeps the sign where -0 exists
    EXPECT_FALSE(c->nan_policy().empty());
  }
}

TEST(SmallFloats, E4m3SeedExamplesAndSubnormalRounding) {
  const ElementCodec* c = Get("fp8_e4m3");
  // [4, 8) has quantum 0.5: 6.5 = 0.1001.101 (0x4D), 7.0 = 0.1001.110 (0x4E).
  EXPECT_EQ(c->Round(6.625f), 6.5f);  // nearer to 6.5
  EXPECT_EQ(c->Encode(6.625f), 0x4Du);
  EXPECT_EQ(c->Round(6.75f), 7.0f);   // exact midpoint -> the even mantissa 110
  EXPECT_EQ(c->Round(6.25f), 6.0f);   // midpoint of 6.0 (m=100) and 6.5 (m=101) -> 6.0
  EXPECT_EQ(c->Round(464.0f), 448.0f);  // saturating cast (PyTorch's raw cast: ties to 448 as well)
  EXPECT_EQ(c->Round(470.0f), 448.0f);  // PyTorch raw cast would give NaN here (docs/formats.md §1.1)
  EXPECT_EQ(c->Round(480.0f), 448.0f);
  EXPECT_EQ(c->Round(500.0f), 448.0f);
  EXPECT_EQ(c->Round(-500.0f), -448.0f);
  // [256, 512) has quantum 32: 416 = 1.625*256 (m=101), 448 = 1.75*256 (m=110).
  EXPECT_EQ(c->Round(416.0f), 416.0f);
  EXPECT_EQ(c->Round(424.0f), 416.0f);
  EXPECT_EQ(c->Round(432.0f), 448.0f);  // midpoint -> even mantissa 110
  EXPECT_EQ(c->Round(431.9f), 416.0f);
  // Subnormals: quantum 2^-9. 2^-10 ties 0 / 2^-9 -> 0; 3*2^-10 ties 2^-9 / 2*2^-9 -> 2*2^-9 (even).
  EXPECT_EQ(c->Encode(std::ldexp(1.0f, -10)), 0x00u);
  EXPECT_EQ(c->Encode(std::ldexp(1.0f, -10) * 1.001f), 0x01u);
  EXPECT_EQ(c->Encode(std::ldexp(3.0f, -10)), 0x02u);
  EXPECT_EQ(c->Encode(std::ldexp(5.0f, -10)), 0x02u);
  EXPECT_EQ(c->Encode(std::ldexp(7.0f, -10)), 0x04u);
  EXPECT_EQ(c->Encode(std::ldexp(15.0f, -10)), 0x08u);  // 7.5 quanta -> 8 = min normal 2^-6
  EXPECT_EQ(c->Encode(-std::ldexp(3.0f, -10)), 0x82u);
}

}  // namespace
}  // namespace ql
