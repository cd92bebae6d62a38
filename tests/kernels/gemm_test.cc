// Tests of kernels/gemm.h: Gemm against the double-accumulating GemmRef on odd shapes, both B
// layouts, strided operands and every Highway target this CPU runs; and bitwise equality of the
// result for 1, 2 and 3 threads (the determinism contract of gemm.h).
// Tolerance (FP32, per element): a chain of K fused multiply-adds in float is within
// gamma_K = K·u / (1 - K·u), u = 2^-24, of the exact sum relative to Σ_k |a_ik·b_kj| (Higham,
// "Accuracy and Stability of Numerical Algorithms", 2nd ed., §3.1); the test allows K·u·1.01·Σ|ab|
// plus one rounding of the result and of alpha.
#include "kernels/gemm.h"
#include "kernels/simd_target.h"

#include <cmath>
#include <cstring>
#include <tuple>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "tests/kernels/hwy_targets.h"
#include "tests/kernels/random_fill.h"

namespace ql {
namespace {


std::vector<float> Random(size_t n, uint32_t seed) { return testing::RandomUniform(n, seed); }

struct Problem {
  int M, N, K, lda, ldb, ldc;
  BLayout layout;
  std::vector<float> a, b;
  Problem(int m, int n, int k, BLayout l, int pad, uint32_t seed) : M(m), N(n), K(k), layout(l) {
    lda = K + pad;
    ldb = (l == BLayout::kNK ? K : N) + pad;
    ldc = N + pad;
    a = Random(size_t(M) * lda, seed);
    b = Random(size_t(l == BLayout::kNK ? N : K) * ldb, seed + 1);
  }
  float B(int k, int j) const { return layout == BLayout::kNK ? b[size_t(j) * ldb + k] : b[size_t(k) * ldb + j]; }
  std::vector<float> Run(float alpha, int threads) const {
    std::vector<float> c(size_t(M) * ldc, -7.0f);  // the padding must stay untouched
    Gemm(M, N, K, alpha, a.data(), lda, b.data(), ldb, layout, c.data(), ldc, threads);
    return c;
  }
};

void ExpectNearRef(const Problem& p, float alpha, const std::vector<float>& got) {
  std::vector<float> want(size_t(p.M) * p.ldc, -7.0f);
  GemmRef(p.M, p.N, p.K, alpha, p.a.data(), p.lda, p.b.data(), p.ldb, p.layout, want.data(), p.ldc);
  const double u = std::ldexp(1.0, -24);
  for (int i = 0; i < p.M; ++i) {
    for (int j = 0; j < p.ldc; ++j) {
      const float g = got[size_t(i) * p.ldc + j], w = want[size_t(i) * p.ldc + j];
      if (j >= p.N) {
        ASSERT_EQ(g, -7.0f) << "wrote padding column " << j;
        continue;
      }
      double abs_sum = 0;
      for (int k = 0; k < p.K; ++k) abs_sum += std::fabs(double(p.a[size_t(i) * p.lda + k]) * p.B(k, j));
      const double tol = std::fabs(alpha) * (1.01 * p.K * u * abs_sum) + 2 * u * std::fabs(w) + 1e-30;
      ASSERT_LE(std::fabs(double(g) - w), tol) << "C[" << i << "," << j << "] M=" << p.M << " N=" << p.N
                                               << " K=" << p.K;
    }
  }
}

TEST(GemmTest, MatchesReferenceOnOddShapesBothLayoutsEveryTarget) {
  ForEachTarget([] {
    uint32_t seed = 1;
    for (BLayout layout : {BLayout::kNK, BLayout::kKN})
      for (int M : {1, 2, 3, 4, 5, 6, 7, 13, 97, 100})
        for (int N : {1, 5, 16, 31, 33, 64, 65, 130})
          for (int K : {1, 7, 64, 101}) {
            const Problem p(M, N, K, layout, (M + N + K) % 3, seed++);
            ExpectNearRef(p, 0.75f, p.Run(0.75f, 1));
            if (HasFatalFailure()) return;
          }
  });
}

TEST(GemmTest, LongChainsWithinTolerance) {
  // Long chains (K up to the 135M down_proj width): still within the one-chain tolerance.
  for (BLayout layout : {BLayout::kNK, BLayout::kKN})
    for (auto [M, N, K] : {std::tuple{9, 50, 257}, {17, 97, 777}, {4, 33, 1536}}) {
      const Problem p(M, N, K, layout, 1, 3);
      ExpectNearRef(p, -1.5f, p.Run(-1.5f, 2));
    }
}

TEST(GemmTest, BitwiseIdenticalForAnyThreadCount) {
  // Shapes above the single-thread threshold (4e6 flops) with several row and column blocks, and
  // the decoding path (M = 1, 3) split over column blocks.
  for (BLayout layout : {BLayout::kNK, BLayout::kKN})
    for (auto [M, N, K] : {std::tuple{517, 300, 77}, {200, 640, 576}, {1, 49152 / 8, 576}, {3, 4000, 600}}) {
      SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K));
      const Problem p(M, N, K, layout, 1, 99);
      const std::vector<float> one = p.Run(1.0f, 1);
      for (int threads : {2, 3}) {
        const std::vector<float> many = p.Run(1.0f, threads);
        ASSERT_EQ(0, std::memcmp(one.data(), many.data(), sizeof(float) * one.size())) << threads << " threads";
      }
      ExpectNearRef(p, 1.0f, one);
    }
}

// The contract of kernels/gemm.h, bit for bit: each element is fma(a[i,k], b[k,j], acc) over
// k = 0..K-1 from acc = 0, then one multiply by alpha. Any blocking, packing or schedule change that
// keeps this holds every recorded number; one that reorders a sum fails here.
std::vector<float> FmaChain(const Problem& p, float alpha) {
  std::vector<float> c(size_t(p.M) * p.ldc, -7.0f);
  for (int i = 0; i < p.M; ++i)
    for (int j = 0; j < p.N; ++j) {
      float acc = 0.0f;
      for (int k = 0; k < p.K; ++k) acc = std::fma(p.a[size_t(i) * p.lda + k], p.B(k, j), acc);
      c[size_t(i) * p.ldc + j] = acc * alpha;
    }
  return c;
}

TEST(GemmTest, BitwiseOneFmaChainPerElement) {
  // Rows >= kGemmDotRows (the decoding path sums in lanes); shapes with several column blocks,
  // partial panels and partial row groups, the 135M widths, 1 and 2 threads.
  for (BLayout layout : {BLayout::kNK, BLayout::kKN})
    for (auto [M, N, K] : {std::tuple{4, 7, 3}, {13, 130, 101}, {100, 200, 576}, {203, 97, 1536}, {97, 1000, 64}}) {
      SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K));
      const Problem p(M, N, K, layout, 1, 7);
      const std::vector<float> want = FmaChain(p, 0.5f);
      for (int threads : {1, 2})
        ASSERT_EQ(0, std::memcmp(want.data(), p.Run(0.5f, threads).data(), sizeof(float) * want.size()))
            << threads << " threads";
    }
}

TEST(GemmTest, ZeroKGivesZeros) {
  std::vector<float> c(6, 5.0f);
  const float a = 1, b = 1;
  Gemm(2, 3, 0, 1.0f, &a, 1, &b, 1, BLayout::kNK, c.data(), 3, 1);
  for (float x : c) EXPECT_EQ(x, 0.0f);
}

TEST(GemmTest, TargetIsNamed) { EXPECT_STRNE(GemmTarget(), ""); }

// QL_SIMD's cap: avx2 leaves at most 8 float lanes and the AVX2 kernels' exact results (the same
// products as without the cap on an AVX2 machine); native restores the widest; a wrong name is an error.
TEST(GemmTest, LimitSimdTargetCapsTheDispatch) {
  struct Restore {
    ~Restore() { QL_CHECK(LimitSimdTarget("native").ok(), "restore"); }
  } restore;
  const int native = SimdFloatLanes();
  const int M = 37, N = 45, K = 300;
  const std::vector<float> a = testing::RandomUniform(size_t(M) * K, 1), b = testing::RandomUniform(size_t(N) * K, 2);
  std::vector<float> c(size_t(M) * N), ref(size_t(M) * N);
  ASSERT_TRUE(LimitSimdTarget("avx2").ok());
  EXPECT_LE(SimdFloatLanes(), 8);
  Gemm(M, N, K, 1.0f, a.data(), K, b.data(), K, BLayout::kNK, c.data(), N, 1);
  GemmRef(M, N, K, 1.0f, a.data(), K, b.data(), K, BLayout::kNK, ref.data(), N);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], ref[i], 1e-4f * (1 + std::fabs(ref[i]))) << i;
  ASSERT_TRUE(LimitSimdTarget("native").ok());
  EXPECT_EQ(SimdFloatLanes(), native);
  const Status bad = LimitSimdTarget("avx1024");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("avx1024"), std::string::npos) << bad.message();
}

}  // namespace
}  // namespace ql
