// Tests of kernels/spd.h: every kernel bitwise against its scalar oracle on every Highway target this CPU
// runs and for 1 and 2 threads (the element rules of spd.h fix every bit), and the results against
// Armadillo/LAPACK (chol, inv_sympd) at stated tolerances on random SPD matrices of sizes 1 to 1536 (the
// 135M model's 576 and 1536 among them), well and badly conditioned.
#include "kernels/spd.h"

#include <armadillo>
#include <cmath>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "tests/kernels/hwy_targets.h"
#include "tests/kernels/random_fill.h"

namespace ql {
namespace {

using Mat = std::vector<double>;  // [n, n] row-major

bool SameBits(const Mat& a, const Mat& b) { return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 8) == 0; }

// A = XᵀX/T + damp·mean(diag)·I for X ~ N(0,1) [T, n]: T > n is well conditioned (κ ≈ 30 for T = 2n),
// T < n is rank-deficient before the damping, like a Hessian of few calibration tokens (κ ≈ 1/damp and more).
Mat RandomSpd(int64_t n, int64_t T, double damp, uint32_t seed) {
  const std::vector<float> x = testing::RandomNormal(size_t(T * n), seed);
  Mat a(size_t(n * n), 0.0);
  GramUpperAdd(x.data(), T, n, a.data(), 2);  // bitwise GramUpperAddRef (the first test), which strides through x
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += a[size_t(i * n + i)] / T;
  mean /= double(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) {
      a[size_t(i * n + j)] /= double(T);
      if (i == j) a[size_t(i * n + j)] += damp * mean;
      a[size_t(j * n + i)] = a[size_t(i * n + j)];
    }
  return a;
}

arma::mat ToArma(const Mat& a, int64_t n) { return arma::mat(a.data(), n, n).t(); }  // row-major → arma

// Runs fn on every target with at least AVX2 when `wide_only` (the big sizes: targets without FMA
// emulate it lane by lane and take minutes there), else on every target.
void ForTargets(bool wide_only, const std::function<void()>& fn) {
  ForEachTarget([&] {
#if HWY_ARCH_X86
    if (wide_only && !(hwy::SupportedTargets() & (HWY_AVX2 | HWY_AVX3 | HWY_AVX3_DL))) return;
#endif
    fn();
  });
}

TEST(Spd, GramMatchesTheOracleBitwiseOnEveryTargetAndThreadCount) {
  for (auto [T, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 7}, {33, 64}, {17, 100}, {64, 576}}) {
    SCOPED_TRACE(::testing::Message() << "T " << T << " n " << n);
    const std::vector<float> x = testing::RandomUniform(size_t(T * n), uint32_t(n), -3.f, 3.f);
    const std::vector<float> x0 = testing::RandomUniform(size_t(T * n), uint32_t(n + 1));
    Mat want(size_t(n * n), 0.0);
    GramUpperAddRef(x0.data(), T, n, want.data());  // accumulate onto a non-zero start, as over windows
    Mat start = want;
    GramUpperAddRef(x.data(), T, n, want.data());
    ForTargets(false, [&] {
      for (int threads : {1, 2}) {
        Mat got = start;
        GramUpperAdd(x.data(), T, n, got.data(), threads);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = i; j < n; ++j)
            ASSERT_EQ(got[size_t(i * n + j)], want[size_t(i * n + j)]) << i << "," << j << " threads " << threads;
      }
    });
  }
}

TEST(Spd, CrossProductMatchesTheOracleBitwiseOnEveryTargetAndThreadCount) {
  struct Shape { int64_t K, m, n; };
  for (const Shape sh : {Shape{1, 1, 1}, Shape{5, 7, 3}, Shape{300, 64, 100}, Shape{600, 97, 577}}) {
    SCOPED_TRACE(::testing::Message() << "K " << sh.K << " m " << sh.m << " n " << sh.n);
    const std::vector<float> fa = testing::RandomNormal(size_t(sh.K * sh.m), uint32_t(sh.m));
    const std::vector<float> fb = testing::RandomNormal(size_t(sh.K * sh.n), uint32_t(sh.n + 9));
    Mat a(fa.size()), b(fb.size()), start(size_t(sh.m * sh.n));
    for (size_t i = 0; i < a.size(); ++i) a[i] = double(fa[i]) / 3;  // not exact products: the fusion matters
    for (size_t i = 0; i < b.size(); ++i) b[i] = double(fb[i]) / 7;
    for (size_t i = 0; i < start.size(); ++i) start[i] = double(i % 13) / 11;
    Mat want = start;
    CrossAddRef(a.data(), b.data(), sh.K, sh.m, sh.n, want.data());
    ForTargets(sh.K * sh.m * sh.n > 10000000, [&] {
      for (int threads : {1, 2}) {
        Mat got = start;
        CrossAdd(a.data(), b.data(), sh.K, sh.m, sh.n, got.data(), threads);
        EXPECT_TRUE(SameBits(got, want)) << "threads " << threads;
      }
    });
  }
}

TEST(Spd, CholeskyAndInverseMatchTheOracleBitwiseOnEveryTargetAndThreadCount) {
  for (int64_t n : {1, 2, 7, 64, 100, 577}) {
    SCOPED_TRACE(::testing::Message() << "n " << n);
    const Mat a = RandomSpd(n, n / 2 + 1, 0.01, uint32_t(n));
    Mat u_want = a, v_want(a.size()), r_want(a.size());
    ASSERT_EQ(CholeskyUpperRef(u_want.data(), n), -1);
    InvertUpperRef(u_want.data(), n, v_want.data());
    ASSERT_EQ(InverseCholeskyUpperRef(a.data(), n, r_want.data()), -1);
    ForTargets(false, [&] {
      for (int threads : {1, 2}) {
        Mat u = a, v(a.size(), -1.0), r(a.size(), -1.0);
        ASSERT_EQ(CholeskyUpper(u.data(), n, threads), -1);
        EXPECT_TRUE(SameBits(u, u_want)) << "Cholesky, threads " << threads;
        InvertUpper(u_want.data(), n, v.data(), threads);
        EXPECT_TRUE(SameBits(v, v_want)) << "triangular inverse, threads " << threads;
        ASSERT_EQ(InverseCholeskyUpper(a.data(), n, r.data(), threads), -1);
        EXPECT_TRUE(SameBits(r, r_want)) << "inverse's Cholesky factor, threads " << threads;
      }
    });
  }
}

// The 135M down_proj shape: the same bits for 1 and 2 threads and on AVX2 and AVX-512.
TEST(Spd, InverseCholeskyOf1536IsTheSameOnEveryWideTargetAndThreadCount) {
  const int64_t n = 1536;
  const Mat a = RandomSpd(n, 512, 0.01, 7);
  Mat first;
  ForTargets(true, [&] {
    for (int threads : {1, 2}) {
      Mat r(a.size());
      ASSERT_EQ(InverseCholeskyUpper(a.data(), n, r.data(), threads), -1);
      if (first.empty()) first = r;
      EXPECT_TRUE(SameBits(r, first)) << "threads " << threads;
    }
  });
  ASSERT_FALSE(first.empty());
}

// Against LAPACK: U (chol) and R (chol of inv_sympd) to a relative Frobenius error `tol`, and the identity
// RᵀR·A = I (on random vectors) to the same. Measured (2026-12-02): ≤ 2.6e-15 at κ ≈ 30 (tol 2e-14), ≤ 1.7e-13
// for the damped rank-deficient cases at κ ≈ 700 (tol 1e-12); UᵀU = A to ≤ 7.1e-16 (1e-14) throughout.
TEST(Spd, AgreesWithLapack) {
  struct Case { int64_t n, T; double tol; };
  for (const Case c : {Case{1, 3, 2e-14}, Case{7, 16, 2e-14}, Case{64, 136, 2e-14}, Case{576, 1160, 2e-14},
                       Case{64, 20, 1e-12}, Case{576, 256, 1e-12}, Case{1536, 512, 1e-12}}) {
    SCOPED_TRACE(::testing::Message() << "n " << c.n << " T " << c.T);
    const int64_t n = c.n;
    const Mat a = RandomSpd(n, c.T, 0.01, uint32_t(n + c.T));
    const arma::mat A = ToArma(a, n);
    Mat u = a, r(a.size());
    ASSERT_EQ(CholeskyUpper(u.data(), n, 2), -1);
    ASSERT_EQ(InverseCholeskyUpper(a.data(), n, r.data(), 2), -1);
    arma::mat U_lapack, Ainv, R_lapack;
    ASSERT_TRUE(arma::chol(U_lapack, A, "upper"));
    ASSERT_TRUE(arma::inv_sympd(Ainv, A));
    ASSERT_TRUE(arma::chol(R_lapack, Ainv, "upper"));
    const arma::mat U = ToArma(u, n), R = ToArma(r, n);
    EXPECT_LT(arma::norm(U - U_lapack, "fro") / arma::norm(U_lapack, "fro"), c.tol);
    EXPECT_LT(arma::norm(R - R_lapack, "fro") / arma::norm(R_lapack, "fro"), c.tol);
    // The identities on 4 random vectors (matrix-vector products only: the matrix products would take
    // seconds on a single-threaded reference BLAS): UᵀU·x = A·x and RᵀR·A·x = x.
    arma::arma_rng::set_seed(uint64_t(n));
    const arma::mat X = arma::randn(n, 4), AX = A * X;
    EXPECT_LT(arma::norm(U.t() * (U * X) - AX, "fro") / arma::norm(AX, "fro"), 1e-14);
    EXPECT_LT(arma::norm(R.t() * (R * AX) - X, "fro") / arma::norm(X, "fro"), c.tol);
    for (int64_t i = 1; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) ASSERT_EQ(R(i, j), 0.0) << "R is upper triangular";
  }
}

TEST(Spd, NotPositiveDefiniteNamesThePivot) {
  const Mat a = {4, 2, 0,  //
                 2, 1, 0,  // a[1,1] − 2²/4 = 0: the second pivot is not positive
                 0, 0, 3};
  Mat u = a, r(9);
  EXPECT_EQ(CholeskyUpper(u.data(), 3, 1), 1);
  u = a;
  EXPECT_EQ(CholeskyUpperRef(u.data(), 3), 1);
  // Reversed order: pivots of J a J are a[2,2], then a[1,1], then a[0,0] − 2²/1 = 0: index 0 in a's order.
  EXPECT_EQ(InverseCholeskyUpper(a.data(), 3, r.data(), 1), 0);
  EXPECT_EQ(InverseCholeskyUpperRef(a.data(), 3, r.data()), 0);
  const Mat nan = {1, 0, 0, std::nan("")};
  Mat r2(4);
  EXPECT_EQ(InverseCholeskyUpper(nan.data(), 2, r2.data(), 1), 1);  // J a J starts with the NaN
  Mat big = RandomSpd(200, 100, 0.01, 3);
  big[size_t(150 * 200 + 150)] = -1;  // one negative diagonal element: never positive definite
  Mat r3(big.size());
  EXPECT_GE(InverseCholeskyUpper(big.data(), 200, r3.data(), 2), 0);
}

}  // namespace
}  // namespace ql
