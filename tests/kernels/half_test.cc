// FP16 / BF16 conversions against values derived by hand from IEEE binary16 and bfloat16 (docs/formats.md §1.2).
#include "kernels/half.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace ql {
namespace {

TEST(Half, F16KnownCodes) {
  EXPECT_EQ(F32ToF16(0.0f), 0x0000);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);              // max finite
  EXPECT_EQ(F32ToF16(65519.99f), 0x7BFF);             // below the rounding boundary
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);              // ties away to Inf (RNE: 0x7BFF is odd)
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14)), 0x0400); // min normal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001); // min subnormal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000); // tie to even (0)
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002); // 1.5 ulp -> 2 (even)
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even mantissa 0
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even mantissa 2
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(F32ToF16(std::nanf("")) & 0x7C00, 0x7C00);
  EXPECT_NE(F32ToF16(std::nanf("")) & 0x03FF, 0);
}

TEST(Half, F16AllCodesRoundTrip) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const uint16_t h = static_cast<uint16_t>(c);
    const float v = F16ToF32(h);
    if (std::isnan(v)) continue;
    ASSERT_EQ(F32ToF16(v), h) << "code " << c;
  }
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x3555), 0.333251953125f);
}

TEST(Half, Bf16KnownCodes) {
  EXPECT_EQ(F32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(F32ToBf16(-1.0f), 0xBF80);
  EXPECT_EQ(F32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie -> even
  EXPECT_EQ(F32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie -> even
  EXPECT_EQ(F32ToBf16(3.0e38f), 0x7F62);   // 3e38 = 1.7632...*2^127: mantissa 0x62 after RNE
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to Inf
  EXPECT_EQ(F32ToBf16(std::nanf("")), 0x7FC0);
  for (uint32_t c = 0; c < 65536; ++c) {
    const float v = Bf16ToF32(static_cast<uint16_t>(c));
    if (std::isnan(v)) continue;
    ASSERT_EQ(F32ToBf16(v), c);
  }
}

}  // namespace
}  // namespace ql
