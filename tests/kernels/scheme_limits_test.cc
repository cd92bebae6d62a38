// Scheme limits stated by the formats: MX block sizes (32 per OCP MX v1.0, powers of two 8..1024 as
// labelled non-standard variants) and scales that would dequantize past fp32 (an error, never Inf).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/minifloat.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

TEST(MxBlockSize, StandardAndPowerOfTwoVariantsOnly) {
  for (const char* ok : {"mxfp4", "mxfp4:g32", "mxfp4:g8", "mxfp4:g16", "mxfp4:g1024", "mxfp8_e4m3:g64"}) {
    EXPECT_TRUE(ParseScheme(ok).ok()) << ok;
  }
  for (const char* bad : {"mxfp4:g7", "mxfp4:g100000", "mxfp4:g4", "mxfp4:g2048", "mxfp4:g48", "mxfp8_e4m3:g33"}) {
    auto s = ParseScheme(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.status().message().find("32 elements (OCP MX v1.0)"), std::string::npos) << s.status().message();
  }
}

TEST(MinifloatName, ExponentRangeCheckedBeforeTheBias) {
  // Found by fuzz_scheme: a custom bias made the parser shift by 38 bits before validating E.
  auto m = ParseMinifloatName("e38m80_b16");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("exponent bits 38 not in 1..8"), std::string::npos) << m.status().message();
  auto s = ParseScheme("e38m80_b16");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("unknown format 'e38m80_b16'"), std::string::npos) << s.status().message();
  EXPECT_TRUE(ParseScheme("e3m4_b5:tensor").ok());
}

TEST(ScaleOverflow, E8m0RoundUpPastFp32IsAnError) {
  auto s = ParseScheme("int4:g2:s=e8m0");
  ASSERT_TRUE(s.ok());
  // amax 3e38 / 7 = 4.3e37 rounds up to 2^126 = 8.5e37, and 7 * 2^126 = 6.0e38 > FLT_MAX = 3.4e38.
  const std::vector<float> x = {3e38f, 1.0f};
  std::vector<float> y(2);
  Status st = FakeQuantize(*s, x.data(), 1, 2, y.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("overflows fp32"), std::string::npos) << st.message();
  EXPECT_FALSE(Quantize(*s, x.data(), 1, 2).ok());
  // Below the edge the same scheme works and stays finite: 1e38 / 7 -> 2^124, 7 * 2^124 = 1.5e38.
  const std::vector<float> x2 = {1e38f, 1.0f};
  ASSERT_TRUE(FakeQuantize(*s, x2.data(), 1, 2, y.data()).ok());
  EXPECT_TRUE(std::isfinite(y[0]) && std::isfinite(y[1]));
  // fp32 scales never round up: 3e38 round-trips finitely.
  auto f = ParseScheme("int4:g2");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(FakeQuantize(*f, x.data(), 1, 2, y.data()).ok());
  EXPECT_TRUE(std::isfinite(y[0]));
}

}  // namespace
}  // namespace ql
