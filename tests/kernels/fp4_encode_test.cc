// Tests of kernels/fp4_encode.h: the vectorised E2M1 run encoder against its oracle (the fp4_e2m1
// codec's own Encode) on every dispatch target, in its three zero-sign rules (the two NVFP4
// conventions and MX's sign bit): every fp32 bucket of 2^16 values at its first, second, middle and
// last value, a few ulps around every midpoint and grid value of E2M1, odd run lengths (lane tails)
// and non-power-of-two scales; plus hand-derived codes.
#include "kernels/fp4_encode.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "tests/kernels/hwy_targets.h"

namespace ql {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Encodes x in runs of `run` values at `scale` both ways and compares the packed bytes, in the three
// zero-sign rules (compressed-tensors with its clamp, ModelOpt, MX's sign bit).
void ExpectSame(const std::vector<float>& x, int run, float scale) {
  for (const E2m1ZeroSign zero : {E2m1ZeroSign::kPositive, E2m1ZeroSign::kNegativeInput, E2m1ZeroSign::kSignBit}) {
    for (size_t i0 = 0; i0 < x.size(); i0 += size_t(run)) {
      const int n = int(std::min<size_t>(size_t(run), x.size() - i0));
      std::vector<uint8_t> got((n + 1) / 2, 0), want((n + 1) / 2, 0);
      E2m1EncodeRun(x.data() + i0, n, scale, zero, got.data());
      E2m1EncodeRunRef(x.data() + i0, n, scale, /*clamp6=*/zero == E2m1ZeroSign::kPositive, zero, want.data());
      ASSERT_EQ(got, want) << "zero rule " << int(zero) << " run at " << i0 << " first value " << x[i0]
                           << " scale " << scale;
    }
  }
}

TEST(Fp4Encode, EveryBucketAndMidpointEqualsTheCodec) {
  std::vector<float> x;
  for (uint32_t b = 0; b < 65536; ++b)
    for (uint32_t low : {0u, 1u, 0x7FFFu, 0xFFFFu}) {
      const float v = FromBits((b << 16) | low);
      if (std::isfinite(v) && std::fabs(v) < 1e30f) x.push_back(v);
    }
  for (float m : {0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f, 2.5f, 3.0f, 3.5f, 4.0f, 5.0f, 6.0f, 7.0f})
    for (float sign : {1.0f, -1.0f}) {
      float v = sign * m;
      for (int k = 0; k < 4; ++k) v = std::nextafter(v, 0.0f);
      for (int k = 0; k < 9; ++k, v = std::nextafter(v, sign * 100.0f)) x.push_back(v);
    }
  x.push_back(0.0f);
  x.push_back(-0.0f);
  ForEachTarget([&] {
    ExpectSame(x, 16, 1.0f);
    ExpectSame(x, 13, 1.0f);
  });
}

TEST(Fp4Encode, ScaledRunsOfOddLengthsEqualTheCodec) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(4099);
  for (float& v : x) v = normal(rng);
  ForEachTarget([&] {
    for (int run : {1, 3, 16, 17, 31, 64})
      for (float scale : {0.1f, 0.37f, 1.0f / 3.0f, 3e-5f}) {
        std::vector<float> xs(x);
        for (float& v : xs) v *= scale * 6.0f;
        ExpectSame(xs, run, scale);
      }
  });
}

TEST(Fp4Encode, HandCodes) {
  // x / 0.5: 0.1 -> 0.2 -> 0 (ModelOpt keeps the sign: -0.2 -> 0x8), 0.375 -> 0.75 -> 1.0 (code 2,
  // the even neighbour), 1.25 -> 2.5 -> 2 (code 4), 2.5 -> 5 -> 4 (code 6), 4 -> 8 -> 6 (code 7, saturated).
  const float x[6] = {0.1f, -0.1f, 0.375f, 1.25f, 2.5f, -4.0f};
  uint8_t mo[3] = {}, ct[3] = {}, mx[3] = {};
  E2m1EncodeRun(x, 6, 0.5f, E2m1ZeroSign::kNegativeInput, mo);
  E2m1EncodeRun(x, 6, 0.5f, E2m1ZeroSign::kPositive, ct);
  E2m1EncodeRun(x, 6, 0.5f, E2m1ZeroSign::kSignBit, mx);
  EXPECT_EQ(mo[0], 0x80);  // low nibble 0x0, high nibble 0x8
  EXPECT_EQ(ct[0], 0x00);
  EXPECT_EQ(mo[1], 0x42);
  EXPECT_EQ(mo[2], 0xF6);  // -4 / 0.5 = -8 -> -6: 0x8 | 7
  EXPECT_EQ(ct[2], 0xF6);
  EXPECT_EQ(mx[0], 0x80);
  EXPECT_EQ(mx[2], 0xF6);
  // -0: the sign bit gives 0x8 (MX, the codec's cast); ModelOpt's "< 0" and compressed-tensors give 0x0.
  const float z[2] = {-0.0f, 0.0f};
  uint8_t zmx = 0, zmo = 0, zct = 0;
  E2m1EncodeRun(z, 2, 1.0f, E2m1ZeroSign::kSignBit, &zmx);
  E2m1EncodeRun(z, 2, 1.0f, E2m1ZeroSign::kNegativeInput, &zmo);
  E2m1EncodeRun(z, 2, 1.0f, E2m1ZeroSign::kPositive, &zct);
  EXPECT_EQ(zmx, 0x08);
  EXPECT_EQ(zmo, 0x00);
  EXPECT_EQ(zct, 0x00);
}

}  // namespace
}  // namespace ql
