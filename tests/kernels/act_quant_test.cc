// Tests of kernels/act_quant.h: the Highway kernel against its scalar oracle and against the general
// quantizer (kernels/quantizer.h FakeQuantize), bit for bit, on every dispatch target; hand-derived
// values for the rounding rule; non-finite input and the schemes it must refuse.
#include "kernels/act_quant.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "tests/kernels/hwy_targets.h"

#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {


// Rows of mixed magnitude, an all-zero row, −0 entries and values on rounding ties.
std::vector<float> Activations(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) x[size_t(r * cols + c)] = n(rng) * float(1 + r % 5) * (c % 7 == 3 ? 30.f : 1.f);
  if (rows > 2) std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
  if (rows > 2) x[size_t(cols)] = -0.0f;
  for (int64_t i = 5; i < rows * cols; i += 11) x[size_t(i)] = -0.0f;
  return x;
}

bool Bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(ActQuant, HandDerivedRounding) {
  // int8 per token: amax 127 gives s = 1; 63.5 and 62.5 tie to the even 64 and 62; −0.4 and −0.5
  // round to a zero code, which dequantizes to +0.
  std::vector<float> x = {127.0f, 63.5f, 62.5f, -0.5f, -0.4f, -127.0f, 1.5f};
  ASSERT_TRUE(FakeQuantIntSymRows(x.data(), 1, int64_t(x.size()), int64_t(x.size()), 127, 1));
  const std::vector<float> want = {127.0f, 64.0f, 62.0f, 0.0f, 0.0f, -127.0f, 2.0f};
  EXPECT_TRUE(Bits(x, want));
  EXPECT_FALSE(std::signbit(x[3]));
  // int4 (qmax 7) in groups of 2: [0.7, -0.35] has s = 0.1, −3.5 ties to −4 → −0.4 (as −4·0.1f).
  std::vector<float> y = {0.7f, -0.35f, 0.0f, -0.0f};
  ASSERT_TRUE(FakeQuantIntSymRows(y.data(), 1, 4, 2, 7, 1));
  const float s = 0.7f / 7.0f;
  EXPECT_EQ(y[0], 7.0f * s);
  EXPECT_EQ(y[1], -4.0f * s);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_FALSE(std::signbit(y[3]));
}

TEST(ActQuant, MatchesRefAndFakeQuantizeOnEveryTarget) {
  const char* schemes[] = {"int8:token", "int8:channel", "int4:g32", "int4:g7", "int2:token", "int6:g16", "int5:token"};
  ForEachTarget([&] {
    for (const char* text : schemes) {
      auto scheme = ParseScheme(text);
      ASSERT_TRUE(scheme.ok()) << text;
      for (int64_t rows : {1, 3, 17, 40}) {
        for (int64_t cols : {1, 5, 16, 33, 576, 1031}) {
          SCOPED_TRACE(std::string(text) + " " + std::to_string(rows) + "x" + std::to_string(cols));
          int64_t group = 0;
          int qmax = 0;
          ASSERT_TRUE(IntSymRowsParams(*scheme, cols, &group, &qmax));
          const std::vector<float> x = Activations(rows, cols, uint32_t(rows * 131 + cols));
          std::vector<float> general(x.size());
          ASSERT_TRUE(FakeQuantize(*scheme, x.data(), rows, cols, general.data()).ok());
          std::vector<float> ref = x, one = x, two = x;
          ASSERT_TRUE(FakeQuantIntSymRowsRef(ref.data(), rows, cols, group, qmax));
          ASSERT_TRUE(FakeQuantIntSymRows(one.data(), rows, cols, group, qmax, 1));
          ASSERT_TRUE(FakeQuantIntSymRows(two.data(), rows, cols, group, qmax, 2));
          EXPECT_TRUE(Bits(ref, general));
          EXPECT_TRUE(Bits(one, ref));
          EXPECT_TRUE(Bits(two, ref));
        }
      }
    }
  });
}

TEST(ActQuant, LargeInputOnTwoThreadsMatchesRef) {
  // Above the size where the rows are split over threads.
  const int64_t rows = 512, cols = 1536;
  const std::vector<float> x = Activations(rows, cols, 9);
  std::vector<float> ref = x, two = x;
  ASSERT_TRUE(FakeQuantIntSymRowsRef(ref.data(), rows, cols, cols, 127));
  ASSERT_TRUE(FakeQuantIntSymRows(two.data(), rows, cols, cols, 127, 2));
  EXPECT_TRUE(Bits(two, ref));
  EXPECT_FALSE(Bits(ref, x));  // it did quantize
}

TEST(ActQuant, NonFiniteLeavesInputAndGivesTheQuantizersError) {
  ForEachTarget([] {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      std::vector<float> x = Activations(20, 37, 4);
      x[size_t(19 * 37 + 36)] = bad;  // the very last value: every scale is computed before it is seen
      const std::vector<float> before = x;
      EXPECT_FALSE(FakeQuantIntSymRows(x.data(), 20, 37, 37, 127, 2));
      EXPECT_TRUE(Bits(x, before));
      EXPECT_FALSE(FakeQuantIntSymRowsRef(x.data(), 20, 37, 37, 127));
    }
  });
  auto scheme = ParseScheme("int8:token");
  ASSERT_TRUE(scheme.ok());
  std::vector<float> x(8, 1.0f);
  x[6] = NAN;
  const Status s = FakeQuantizeInPlace(*scheme, x.data(), 2, 4);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("NaN at flat index 6"), std::string::npos) << s.message();
}

TEST(ActQuant, OtherSchemesTakeTheGeneralPathWithTheSameResult) {
  for (const char* text : {"int8:token:asym", "int8:token:pct99.9", "int8:token:symfull", "fp8_e4m3:token", "int8:tensor", "int4:g32:s=e8m0",
                           "mxfp4"}) {
    SCOPED_TRACE(text);
    auto scheme = ParseScheme(text);
    ASSERT_TRUE(scheme.ok()) << scheme.status().message();
    int64_t group = 0;
    int qmax = 0;
    EXPECT_FALSE(IntSymRowsParams(*scheme, 64, &group, &qmax));
    const std::vector<float> x = Activations(3, 64, 2);
    std::vector<float> want(x.size()), got = x;
    ASSERT_TRUE(FakeQuantize(*scheme, x.data(), 3, 64, want.data()).ok());
    ASSERT_TRUE(FakeQuantizeInPlace(*scheme, got.data(), 3, 64).ok());
    EXPECT_TRUE(Bits(got, want));
  }
}

}  // namespace
}  // namespace ql
