// Tests of kernels/ops.h: every SIMD op against its scalar *Ref oracle, on odd lengths, for every
// Highway target compiled in and supported by this CPU (hwy::SetSupportedTargetsForTest).
#include "kernels/ops.h"

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "tests/kernels/hwy_targets.h"

namespace ql::ops {
namespace {

const std::vector<size_t> kLengths = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 173, 576, 1031};

// Runs fn once per dispatch target; restores normal dispatch afterwards.

std::vector<float> Random(size_t n, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// |a - b| <= atol + rtol * |b|, element by element.
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, float atol, float rtol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(got[i] - want[i]), atol + rtol * std::fabs(want[i]))
        << "index " << i << " of " << got.size() << ": got " << got[i] << " want " << want[i];
  }
}

TEST(OpsTest, AtLeastOneSimdTargetIsTested) {
  // On x86-64 the dispatch list holds more than the baseline; guards against a build that
  // silently compiled only one target.
  EXPECT_GE(hwy::SupportedAndGeneratedTargets().size(), 2u);
}

TEST(OpsTest, RmsNormMatchesRef) {
  ForEachTarget([] {
    for (size_t n : kLengths) {
      SCOPED_TRACE(n);
      const auto x = Random(n, 1 + n), w = Random(n, 2 + n, 0.5f, 1.5f);
      std::vector<float> got(n), want(n);
      RmsNorm(x.data(), w.data(), n, 1e-5f, got.data());
      RmsNormRef(x.data(), w.data(), n, 1e-5f, want.data());
      ExpectClose(got, want, 1e-6f, 2e-6f);
      std::vector<float> inplace = x;  // aliasing y == x is allowed
      RmsNorm(inplace.data(), w.data(), n, 1e-5f, inplace.data());
      ExpectClose(inplace, want, 1e-6f, 2e-6f);
    }
  });
}

TEST(OpsTest, RmsNormRefByHand) {
  // x = (3, 4): mean(x²) = 12.5, eps = 0 -> x / sqrt(12.5) * w.
  const float x[2] = {3, 4}, w[2] = {1, 2};
  float y[2];
  RmsNormRef(x, w, 2, 0.0f, y);
  EXPECT_NEAR(y[0], 3 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[1], 8 / std::sqrt(12.5), 1e-6);
}

TEST(OpsTest, RopeMatchesRefBothLayouts) {
  ForEachTarget([] {
    for (bool interleaved : {true, false}) {
      for (size_t hd : {2, 4, 8, 10, 34, 64, 128}) {
        SCOPED_TRACE(testing::Message() << "hd " << hd << " interleaved " << interleaved);
        const size_t n_heads = 3, n_pos = 40;
        std::vector<float> cs(n_pos * hd), sn(n_pos * hd);
        RopeTables(0, n_pos, hd, 10000.f, interleaved, cs.data(), sn.data());
        for (size_t pos : {0, 1, 7, 39}) {
          const auto x = Random(n_heads * hd, 100 + pos + hd);
          std::vector<float> got = x, want = x;
          Rope(got.data(), n_heads, hd, cs.data() + pos * hd, sn.data() + pos * hd, interleaved);
          RopeRef(want.data(), n_heads, hd, pos, 10000.f, interleaved);
          ExpectClose(got, want, 2e-6f, 2e-6f);
          // A table starting at this position gives the same rotation in its row 0.
          std::vector<float> cs1(hd), sn1(hd), got1 = x;
          RopeTables(pos, 1, hd, 10000.f, interleaved, cs1.data(), sn1.data());
          Rope(got1.data(), n_heads, hd, cs1.data(), sn1.data(), interleaved);
          ExpectClose(got1, want, 2e-6f, 2e-6f);
        }
      }
    }
  });
}

TEST(OpsTest, RopeRefByHand) {
  // head_dim 4, pos 1, theta 100: pair 0 angle 1 rad, pair 1 angle 100^(-1/2) = 0.1 rad.
  float inter[4] = {1, 0, 0, 1};
  RopeRef(inter, 1, 4, 1, 100.f, /*interleaved=*/true);  // pairs (0,1), (2,3)
  EXPECT_NEAR(inter[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(inter[1], std::sin(1.0), 1e-6);
  EXPECT_NEAR(inter[2], -std::sin(0.1), 1e-6);
  EXPECT_NEAR(inter[3], std::cos(0.1), 1e-6);
  float half[4] = {1, 0, 0, 1};
  RopeRef(half, 1, 4, 1, 100.f, /*interleaved=*/false);  // pairs (0,2), (1,3)
  EXPECT_NEAR(half[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(half[2], std::sin(1.0), 1e-6);
  EXPECT_NEAR(half[1], -std::sin(0.1), 1e-6);
  EXPECT_NEAR(half[3], std::cos(0.1), 1e-6);
}

TEST(OpsTest, SoftmaxMatchesRefAndIsStable) {
  ForEachTarget([] {
    for (size_t n : kLengths) {
      SCOPED_TRACE(n);
      auto x = Random(n, 7 + n, -20.f, 20.f);
      x[n / 2] = 1000.f;  // would overflow exp without the max shift
      std::vector<float> got = x, want = x;
      Softmax(got.data(), n);
      SoftmaxRef(want.data(), n);
      ExpectClose(got, want, 1e-7f, 1e-5f);
      double sum = 0;
      for (float p : got) sum += p;
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  });
}

TEST(OpsTest, SiluMulMatchesRefIncludingExtremes) {
  ForEachTarget([] {
    for (size_t n : kLengths) {
      SCOPED_TRACE(n);
      auto g = Random(n, 11 + n, -10.f, 10.f);
      const auto u = Random(n, 12 + n);
      g[0] = -200.f;  // exp(200) overflows float: silu must still be ~0, not NaN
      if (n > 1) g[1] = 200.f;
      std::vector<float> got(n), want(n);
      SiluMul(g.data(), u.data(), n, got.data());
      SiluMulRef(g.data(), u.data(), n, want.data());
      ExpectClose(got, want, 1e-6f, 1e-5f);
    }
  });
  const float g = 1.f, u = 2.f;
  float out;
  SiluMulRef(&g, &u, 1, &out);
  EXPECT_NEAR(out, 2.0 / (1.0 + std::exp(-1.0)), 1e-6);  // by hand: 1.4621172
}

TEST(OpsTest, DotAxpyAddMatchRef) {
  ForEachTarget([] {
    for (size_t n : kLengths) {
      SCOPED_TRACE(n);
      const auto a = Random(n, 21 + n), b = Random(n, 22 + n);
      EXPECT_NEAR(Dot(a.data(), b.data(), n), DotRef(a.data(), b.data(), n), 1e-5 * std::sqrt(double(n)));
      std::vector<float> got = b, want = b;
      Axpy(0.37f, a.data(), got.data(), n);
      AxpyRef(0.37f, a.data(), want.data(), n);
      ExpectClose(got, want, 1e-6f, 1e-6f);
      got = b;
      Add(a.data(), got.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], a[i] + b[i]);
    }
  });
}

}  // namespace
}  // namespace ql::ops
