// Tests of `act: llamacpp` (harness/quant/llamacpp_act.h): ggml's vec_dot_type table, the Q8_0 / Q8_K /
// F16 / BF16 activation rounding against hand-derived values, and the claim that an FP32 dot product of the
// rounded values is ggml's integer block dot product (a scalar copy of vec_dot_q4_0_q8_0's arithmetic).
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "harness/quant/llamacpp_act.h"
#include "kernels/gguf_blocks.h"
#include "kernels/half.h"

namespace ql {
namespace {

using gguf::BlockQ4_0;
using gguf::BlockQ8_0;

TEST(LlamaCppAct, VecDotTypesFollowGgmlCpuTypeTraits) {
  const std::vector<std::pair<std::string, VecDotType>> want = {
      {"q4_0", VecDotType::kQ8_0}, {"q4_1", VecDotType::kQ8_1}, {"q5_0", VecDotType::kQ8_0},
      {"q5_1", VecDotType::kQ8_1}, {"q8_0", VecDotType::kQ8_0}, {"q2_k", VecDotType::kQ8_K},
      {"q3_k", VecDotType::kQ8_K}, {"q4_k", VecDotType::kQ8_K}, {"q5_k", VecDotType::kQ8_K},
      {"q6_k", VecDotType::kQ8_K}, {"iq4_nl", VecDotType::kQ8_0}, {"iq4_xs", VecDotType::kQ8_K},
      {"f32", VecDotType::kF32},   {"fp16", VecDotType::kF16},  {"bf16", VecDotType::kBf16}};
  for (const auto& [scheme, type] : want) {
    auto t = LlamaCppVecDotType(scheme);
    ASSERT_TRUE(t.ok()) << scheme;
    EXPECT_EQ(*t, type) << scheme;
  }
  for (const char* s : {"int4:g32", "nvfp4", "q8_k"}) {
    auto t = LlamaCppVecDotType(s);
    ASSERT_FALSE(t.ok()) << s;
    EXPECT_NE(t.status().message().find(s), std::string::npos) << t.status().message();
  }
}

TEST(LlamaCppAct, Q8_0RoundsHalfToEvenWithAnFp16Scale) {
  // amax 127: d = 1 (exact in fp16), id = 1; x·id = k + 0.5 rounds to the even neighbour (_mm256_round_ps).
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f, x[1] = 2.5f, x[2] = 3.5f, x[3] = -2.5f, x[4] = 0.49f, x[5] = -126.6f;
  ASSERT_TRUE(RoundLikeGgmlVecDot(VecDotType::kQ8_0, x.data(), 1, 32).ok());
  EXPECT_EQ(x[0], 127.0f);
  EXPECT_EQ(x[1], 2.0f);
  EXPECT_EQ(x[2], 4.0f);
  EXPECT_EQ(x[3], -2.0f);
  EXPECT_EQ(x[4], 0.0f);
  EXPECT_EQ(x[5], -127.0f);
  // amax 1.0: d = 1/127 rounded to fp16 = 0x2008 (1.0009765625 · 2^-7); codes round(x·127).
  std::vector<float> y(32, 0.0f);
  y[0] = 1.0f, y[1] = 0.5f, y[2] = -0.25f;
  ASSERT_TRUE(RoundLikeGgmlVecDot(VecDotType::kQ8_1, y.data(), 1, 32).ok());
  const float d = F16ToF32(0x2008);
  EXPECT_EQ(F32ToF16(1.0f / 127.0f), 0x2008);
  EXPECT_EQ(y[0], 127.0f * d);
  EXPECT_EQ(y[1], 64.0f * d);   // 63.5 -> 64 (even)
  EXPECT_EQ(y[2], -32.0f * d);  // -31.75 -> -32
}

TEST(LlamaCppAct, Q8_KUsesTheSignedMaximumAndAnFp32Scale) {
  // The largest |x| is -100: iscale = -127/-100 = 1.27; 100 -> 127 (the MIN(127, ·) cap is not hit), -100 -> -127.
  std::vector<float> x(256, 0.0f);
  x[7] = -100.0f, x[8] = 100.0f, x[9] = 1.0f;
  ASSERT_TRUE(RoundLikeGgmlVecDot(VecDotType::kQ8_K, x.data(), 1, 256).ok());
  const float iscale = -127.f / -100.0f, d = 1 / iscale;
  EXPECT_EQ(x[7], -127.0f * d);
  EXPECT_EQ(x[8], 127.0f * d);
  EXPECT_EQ(x[9], 1.0f * d);  // 1.27 -> 1
  EXPECT_EQ(x[0], 0.0f);
}

TEST(LlamaCppAct, HalfTypesAndShapeErrors) {
  std::vector<float> x = {1.0f + 1.0f / 4096, 3.0f};
  ASSERT_TRUE(RoundLikeGgmlVecDot(VecDotType::kF16, x.data(), 1, 2).ok());
  EXPECT_EQ(x[0], 1.0f);  // 2^-12 is below half of fp16's ulp at 1 (2^-10)
  EXPECT_EQ(x[1], 3.0f);
  std::vector<float> b = {1.0f + 3.0f / 512};
  ASSERT_TRUE(RoundLikeGgmlVecDot(VecDotType::kBf16, b.data(), 1, 1).ok());
  EXPECT_EQ(b[0], 1.0f + 1.0f / 128);  // 0.75 of bf16's ulp (2^-7) rounds up
  std::vector<float> row(2 * 48, 1.0f);
  Status st = RoundLikeGgmlVecDot(VecDotType::kQ8_0, row.data(), 2, 48);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("48"), std::string::npos) << st.message();
  EXPECT_FALSE(RoundLikeGgmlVecDot(VecDotType::kQ8_K, row.data(), 1, 96).ok());
}

// ggml's vec_dot_q4_0_q8_0 arithmetic, scalar: per block, the integer sum of (nibble − 8)·q8 codes times
// fp16(d_w)·fp16(d_a), summed over blocks in FP32.
float VecDotQ4_0Q8_0(const std::vector<BlockQ4_0>& w, const std::vector<BlockQ8_0>& a) {
  float sum = 0.0f;
  for (size_t b = 0; b < w.size(); ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += ((w[b].qs[j] & 0x0F) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + 16];
    }
    sum += F16ToF32(w[b].d) * F16ToF32(a[b].d) * float(isum);
  }
  return sum;
}

TEST(LlamaCppAct, Fp32DotOfRoundedValuesIsGgmlsIntegerDot) {
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 1.0f);
  constexpr int kIn = 512, kBlocks = kIn / 32;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> w(kIn), x(kIn);
    for (float& v : w) v = g(rng);
    for (float& v : x) v = g(rng) * (trial % 2 ? 10.0f : 0.1f);
    std::vector<BlockQ4_0> qw(kBlocks);
    std::vector<BlockQ8_0> qa(kBlocks);
    std::vector<float> wd(kIn), xr = x;
    for (int b = 0; b < kBlocks; ++b) {
      gguf::QuantizeBlockQ4_0(w.data() + 32 * b, &qw[b]);
      gguf::DequantizeBlockQ4_0(qw[b], wd.data() + 32 * b);
      // ggml-cpu's Q8_0 activation block: d = amax/127 in fp16, codes round(x·127/amax).
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
      qa[b].d = F32ToF16(amax / 127.f);
      for (int j = 0; j < 32; ++j) qa[b].qs[j] = int8_t(std::nearbyint(x[32 * b + j] * (127.f / amax)));
    }
    ASSERT_TRUE(RoundLikeGgmlVecDot(VecDotType::kQ8_0, xr.data(), 1, kIn).ok());
    for (int b = 0; b < kBlocks; ++b)
      for (int j = 0; j < 32; ++j) ASSERT_EQ(xr[32 * b + j], float(qa[b].qs[j]) * F16ToF32(qa[b].d));
    double fp = 0.0, mag = 0.0;
    for (int k = 0; k < kIn; ++k) fp += double(wd[k]) * double(xr[k]), mag += std::fabs(double(wd[k]) * double(xr[k]));
    const float ggml = VecDotQ4_0Q8_0(qw, qa);
    EXPECT_NEAR(fp, ggml, 1e-6 * mag) << trial;  // FP32 rounding of ggml's block sums only
  }
}

}  // namespace
}  // namespace ql
