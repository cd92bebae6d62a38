// int<b> / uint<b> element codecs (kernels/int_codec.h) against hand-written ranges and RNE (docs/formats.md §1.4).
#include "kernels/int_codec.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "kernels/format.h"

namespace ql {
namespace {

struct IntCase {
  int bits;
  bool is_signed;
  int qmin, qmax;  // written out by hand
};
constexpr IntCase kCases[] = {
    {2, true, -2, 1},    {3, true, -4, 3},    {4, true, -8, 7},     {5, true, -16, 15},   {6, true, -32, 31},
    {7, true, -64, 63},  {8, true, -128, 127}, {2, false, 0, 3},    {3, false, 0, 7},     {4, false, 0, 15},
    {5, false, 0, 31},   {6, false, 0, 63},   {7, false, 0, 127},   {8, false, 0, 255},
};

std::string NameOf(const IntCase& k) { return (k.is_signed ? "int" : "uint") + std::to_string(k.bits); }

const ElementCodec* Get(const std::string& name) {
  StatusOr<const ElementCodec*> c = FindElementCodec(name);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? *c : nullptr;
}

TEST(IntCodec, RangesAndTraits) {
  for (const IntCase& k : kCases) {
    SCOPED_TRACE(NameOf(k));
    const ElementCodec* c = Get(NameOf(k));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->name(), NameOf(k));
    EXPECT_EQ(c->kind(), FormatKind::kInt);
    EXPECT_EQ(c->bits(), k.bits);
    EXPECT_EQ(c->max_finite(), float(k.qmax));
    EXPECT_EQ(c->min_value(), float(k.qmin));
    EXPECT_EQ(IntQmin(k.bits, k.is_signed), k.qmin);
    EXPECT_EQ(IntQmax(k.bits, k.is_signed), k.qmax);
    if (k.is_signed) {
      EXPECT_EQ(RestrictedMax(k.bits), k.qmax);  // symmetric grid [-qmax, qmax]
    }
  }
  EXPECT_EQ(RestrictedMax(8), 127);
  EXPECT_EQ(RestrictedMax(4), 7);
}

TEST(IntCodec, EveryCodeRoundTripsWithTwosComplementCodes) {
  for (const IntCase& k : kCases) {
    SCOPED_TRACE(NameOf(k));
    const ElementCodec* c = Get(NameOf(k));
    const int n = 1 << k.bits;
    for (int code = 0; code < n; ++code) {
      // Hand formula: unsigned = the code; signed = code, minus 2^b when the top bit is set.
      const int want = (k.is_signed && code >= n / 2) ? code - n : code;
      EXPECT_EQ(c->Decode(uint32_t(code)), float(want)) << code;
      EXPECT_EQ(c->Encode(float(want)), uint32_t(code)) << want;
    }
    if (k.is_signed) {
      EXPECT_EQ(c->Encode(-1.0f), uint32_t(n - 1));  // all ones
      EXPECT_EQ(c->Encode(float(k.qmin)), uint32_t(n / 2));
    }
  }
}

TEST(IntCodec, RoundsHalfToEvenAndClamps) {
  for (const IntCase& k : kCases) {
    SCOPED_TRACE(NameOf(k));
    const ElementCodec* c = Get(NameOf(k));
    for (int q = k.qmin; q < k.qmax; ++q) {
      const int even = (q % 2 == 0) ? q : q + 1;
      EXPECT_EQ(c->Round(float(q) + 0.5f), float(even)) << q << ".5";
      EXPECT_EQ(c->Round(float(q) + 0.49f), float(q));
      EXPECT_EQ(c->Round(float(q) + 0.51f), float(q + 1));
      EXPECT_EQ(c->Round(std::nextafter(float(q) + 0.5f, 0.0f)), float(q >= 0 ? q : q + 1))
          << "just toward zero of " << q << ".5";
    }
    EXPECT_EQ(c->Round(float(k.qmax) + 0.5f), float(k.qmax));
    EXPECT_EQ(c->Round(float(k.qmax) + 0.7f), float(k.qmax));
    EXPECT_EQ(c->Round(1e9f), float(k.qmax));
    EXPECT_EQ(c->Round(float(k.qmin) - 0.5f), float(k.qmin));
    EXPECT_EQ(c->Round(-1e9f), float(k.qmin));
    EXPECT_EQ(c->Round(std::numeric_limits<float>::infinity()), float(k.qmax));
    EXPECT_EQ(c->Round(-std::numeric_limits<float>::infinity()), float(k.qmin));
    EXPECT_EQ(c->Encode(std::numeric_limits<float>::quiet_NaN()), 0u);  // nan_policy: NaN -> code 0
    EXPECT_EQ(c->Encode(-0.0f), 0u);
    EXPECT_NE(c->nan_policy().find("NaN -> code 0"), std::string::npos);
  }
}

TEST(IntCodec, SeedTieExamples) {
  const ElementCodec* i4 = Get("int4");
  EXPECT_EQ(i4->Round(2.5f), 2.0f);
  EXPECT_EQ(i4->Round(3.5f), 4.0f);
  EXPECT_EQ(i4->Round(-2.5f), -2.0f);
  EXPECT_EQ(i4->Round(-3.5f), -4.0f);
  EXPECT_EQ(i4->Round(-0.5f), 0.0f);
  EXPECT_EQ(i4->Round(0.5f), 0.0f);
  EXPECT_EQ(i4->Round(1.5f), 2.0f);
  EXPECT_EQ(i4->Round(7.5f), 7.0f);   // 8 is out of range: clamp
  EXPECT_EQ(i4->Round(-8.5f), -8.0f);  // tie to -8 (even) and in range
  EXPECT_EQ(i4->Encode(-8.6f), 0x8u);
  const ElementCodec* u4 = Get("uint4");
  EXPECT_EQ(u4->Round(-0.4f), 0.0f);
  EXPECT_EQ(u4->Round(14.5f), 14.0f);
  EXPECT_EQ(u4->Round(15.49f), 15.0f);
  EXPECT_EQ(u4->Round(16.0f), 15.0f);
  EXPECT_EQ(RoundHalfEven(-0.5), 0.0);
  EXPECT_EQ(RoundHalfEven(-1.5), -2.0);
  EXPECT_EQ(RoundHalfEven(4503599627370495.5), 4503599627370496.0);
}

}  // namespace
}  // namespace ql
