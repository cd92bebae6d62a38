// Tests of kernels/gemm_bf16.h: GemmBf16 is bitwise the VDPBF16PS arithmetic written out in
// GemmBf16Ref (odd shapes, both B layouts, strides), bitwise the same for 1-3 threads, and close to
// the exact product of the BF16-rounded inputs and of the unrounded ones at the stated tolerances:
//   vs exact(bf16(A)·bf16(B)): a K-step FP32 sum, K·u·1.01·Σ|ab| + 2u|c|, u = 2^-24 (as gemm_test.cc);
//   vs exact(A·B): plus the input rounding, each of bf16(a), bf16(b) within 2^-9 relative, so each
//   product within (1 + 2^-9)² - 1 < 2^-7.99 relative: 2^-7.9·Σ|ab| on top.
#include "kernels/gemm_bf16.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/half.h"
#include "tests/kernels/random_fill.h"

namespace ql {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) { return testing::RandomUniform(n, seed); }

struct Problem {
  int M, N, K, lda, ldb, ldc;
  BLayout layout;
  std::vector<float> a, b;
  Problem(int m, int n, int k, BLayout l, int pad, uint32_t seed) : M(m), N(n), K(k), layout(l) {
    lda = K + pad, ldb = (l == BLayout::kNK ? K : N) + pad, ldc = N + pad;
    a = Random(size_t(M) * lda, seed);
    b = Random(size_t(l == BLayout::kNK ? N : K) * ldb, seed + 1);
  }
  std::vector<float> Run(int threads) const {
    std::vector<float> c(size_t(M) * ldc, -7.0f);
    GemmBf16(M, N, K, 0.5f, a.data(), lda, b.data(), ldb, layout, c.data(), ldc, threads);
    return c;
  }
  std::vector<float> Ref() const {
    std::vector<float> c(size_t(M) * ldc, -7.0f);
    GemmBf16Ref(M, N, K, 0.5f, a.data(), lda, b.data(), ldb, layout, c.data(), ldc);
    return c;
  }
};

float RoundBf16(float x) { return Bf16ToF32(F32ToBf16(x)); }

TEST(GemmBf16Test, BitwiseTheInstructionsArithmetic) {
  std::printf("AVX512_BF16 on this CPU: %s\n", HasAvx512Bf16() ? "yes" : "no (scalar emulation tested)");
  uint32_t seed = 1;
  for (BLayout layout : {BLayout::kNK, BLayout::kKN})
    for (int M : {1, 2, 5, 6, 7, 13, 100})
      for (int N : {1, 15, 16, 17, 32, 33, 64, 65, 100})
        for (int K : {1, 2, 3, 31, 32, 33, 64, 77}) {
          const Problem p(M, N, K, layout, (M + N + K) % 3, seed++);
          const std::vector<float> got = p.Run(1), want = p.Ref();
          ASSERT_EQ(0, std::memcmp(got.data(), want.data(), sizeof(float) * got.size()))
              << "M=" << p.M << " N=" << p.N << " K=" << p.K << " layout " << int(layout);
        }
}

TEST(GemmBf16Test, BitwiseIdenticalForAnyThreadCount) {
  for (BLayout layout : {BLayout::kNK, BLayout::kKN})
    for (auto [M, N, K] : {std::tuple{517, 300, 77}, {200, 640, 576}, {1, 6000, 576}}) {
      SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K));
      const Problem p(M, N, K, layout, 1, 5);
      const std::vector<float> one = p.Run(1);
      for (int threads : {2, 3}) {
        const std::vector<float> many = p.Run(threads);
        ASSERT_EQ(0, std::memcmp(one.data(), many.data(), sizeof(float) * one.size())) << threads << " threads";
      }
    }
}

TEST(GemmBf16Test, CloseToExactProductsAtStatedTolerances) {
  const double u = std::ldexp(1.0, -24), input = std::ldexp(1.0, -7.9);
  for (BLayout layout : {BLayout::kNK, BLayout::kKN}) {
    const Problem p(37, 70, 301, layout, 2, 11);
    const std::vector<float> got = p.Run(2);
    for (int i = 0; i < p.M; ++i)
      for (int j = 0; j < p.N; ++j) {
        double exact = 0, exact_rounded = 0, abs_sum = 0;
        for (int k = 0; k < p.K; ++k) {
          const float a = p.a[size_t(i) * p.lda + k];
          const float b = layout == BLayout::kNK ? p.b[size_t(j) * p.ldb + k] : p.b[size_t(k) * p.ldb + j];
          exact += double(a) * b;
          exact_rounded += double(RoundBf16(a)) * RoundBf16(b);
          abs_sum += std::fabs(double(a) * b);
        }
        const double g = got[size_t(i) * p.ldc + j] / 0.5;
        const double sum_tol = 1.01 * p.K * u * abs_sum * 1.01 + 2 * u * std::fabs(exact_rounded);
        ASSERT_LE(std::fabs(g - exact_rounded), sum_tol) << i << "," << j;
        ASSERT_LE(std::fabs(g - exact), sum_tol + input * abs_sum) << i << "," << j;
      }
  }
}

}  // namespace
}  // namespace ql
