// E8M0 scale codec (kernels/e8m0.h) against docs/formats.md §1.1: all 256 codes, and the round-up encode rule.
#include "kernels/e8m0.h"

#include <bit>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "kernels/format.h"

namespace ql {
namespace {

const ElementCodec* E8m0() {
  StatusOr<const ElementCodec*> c = FindElementCodec("e8m0");
  EXPECT_TRUE(c.ok());
  return *c;
}

TEST(E8m0, AllCodesDecode) {
  const ElementCodec* c = E8m0();
  EXPECT_EQ(c->kind(), FormatKind::kScale);
  EXPECT_EQ(c->bits(), 8);
  EXPECT_EQ(std::bit_cast<uint32_t>(c->Decode(0x00)), 0x00400000u);  // 2^-127, torch's fp32 bits
  EXPECT_TRUE(std::isnan(c->Decode(0xFF)));
  EXPECT_EQ(c->Decode(127), 1.0f);
  EXPECT_EQ(c->Decode(0xFE), 1.7014118346046923e38f);  // 2^127
  for (uint32_t code = 0; code < 255; ++code) {
    double want = 1.0;  // 2^(code-127) by repeated exact doubling / halving
    for (int i = 127; i < int(code); ++i) want *= 2;
    for (int i = int(code); i < 127; ++i) want /= 2;
    EXPECT_EQ(double(c->Decode(code)), want) << code;
    EXPECT_EQ(c->Encode(c->Decode(code)), code) << code;  // powers of two are kept
  }
  EXPECT_EQ(c->max_finite(), c->Decode(0xFE));
  EXPECT_EQ(c->min_value(), c->Decode(0x00));
}

TEST(E8m0, EncodeRoundsUpToAPowerOfTwoAndSaturates) {
  const ElementCodec* c = E8m0();
  EXPECT_EQ(c->Encode(1.0f), 127u);
  EXPECT_EQ(c->Encode(1.0000001f), 128u);  // just above 1 -> 2
  EXPECT_EQ(c->Encode(1.5f), 128u);
  EXPECT_EQ(c->Encode(0.75f), 127u);
  EXPECT_EQ(c->Encode(0.5f), 126u);
  EXPECT_EQ(c->Encode(3.0f), 129u);
  EXPECT_EQ(c->Encode(448.0f), 127u + 9);  // 448 -> 512
  EXPECT_EQ(c->Encode(std::ldexp(1.0f, -127)), 0x00u);
  EXPECT_EQ(c->Encode(std::ldexp(1.0f, -130)), 0x00u);          // below the range: the smallest scale
  EXPECT_EQ(c->Encode(std::numeric_limits<float>::denorm_min()), 0x00u);
  EXPECT_EQ(c->Encode(std::ldexp(1.5f, -127)), 0x01u);          // 1.5*2^-127 -> 2^-126
  EXPECT_EQ(c->Encode(std::ldexp(1.1f, -126)), 0x02u);
  EXPECT_EQ(c->Encode(std::ldexp(1.0f, 127)), 0xFEu);
  EXPECT_EQ(c->Encode(std::ldexp(1.5f, 127)), 0xFEu);           // satfinite
  EXPECT_EQ(c->Encode(std::numeric_limits<float>::max()), 0xFEu);
  EXPECT_EQ(c->Encode(std::numeric_limits<float>::infinity()), 0xFEu);
  EXPECT_EQ(c->Encode(std::numeric_limits<float>::quiet_NaN()), 0xFFu);
  EXPECT_EQ(c->Encode(0.0f), 0x00u);
  EXPECT_EQ(c->Encode(-0.0f), 0x00u);
  EXPECT_EQ(c->Encode(-4.0f), 0x00u);
  // Never rounds a scale down: v <= Decode(Encode(v)) < 2v for normal v in range.
  for (uint32_t code = 1; code < 254; ++code) {
    const float p = c->Decode(code);
    EXPECT_EQ(c->Encode(std::nextafter(p, 0.0f)), code) << code;
    EXPECT_EQ(c->Encode(std::nextafter(p, std::numeric_limits<float>::infinity())), code + 1) << code;
    EXPECT_EQ(c->Encode(p * 1.999f), code + 1) << code;
  }
}

}  // namespace
}  // namespace ql
