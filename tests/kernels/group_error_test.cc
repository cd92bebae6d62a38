// Tests of kernels/group_error.h: the fused group-error kernels against their scalar oracle and against
// the path they replace in AWQ's clip search (FakeQuantize of the clipped matrix, then one Gemm per
// group and the squares summed in t order), bit for bit on the dispatched target, and to rounding on
// every other target; the early-stop bound's contract; hand-derived values; non-finite input.
#include "kernels/group_error.h"
#pragma GCC optimize("fp-contract=off")  // hand-derived a·b − c below are two roundings, as in the kernel

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/act_quant.h"
#include "kernels/gemm.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"
#include "tests/kernels/hwy_targets.h"
#include "tests/kernels/random_fill.h"

namespace ql {
namespace {

std::vector<float> Normal(size_t n, uint32_t seed, float scale = 1.0f) {
  return testing::RandomNormal(n, seed, scale);
}

bool Bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// The clip search's former inner loop: e = Gemm(x_g, d_gᵀ) per group, err[r] += e² over t ascending.
std::vector<double> ViaGemm(const std::vector<float>& w, const std::vector<float>& q, int64_t rows, int64_t cols,
                            int64_t group, const std::vector<float>& x, int64_t n) {
  const int64_t n_groups = (cols + group - 1) / group;
  std::vector<float> d(w.size()), e(size_t(n * rows));
  for (size_t i = 0; i < d.size(); ++i) d[i] = q[i] - w[i];
  std::vector<double> err(size_t(rows * n_groups));
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t c0 = g * group, width = std::min(group, cols - c0);
    Gemm(int(n), int(rows), int(width), 1.0f, &x[c0], int(cols), &d[c0], int(cols), BLayout::kNK, e.data(), int(rows), 2);
    std::vector<double> s(size_t(rows), 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < rows; ++r) s[r] += double(e[t * rows + r]) * e[t * rows + r];
    for (int64_t r = 0; r < rows; ++r) err[r * n_groups + g] = s[r];
  }
  return err;
}

struct Shape {
  int64_t rows, cols, group, n;
};
// {300, 100, 32, 20}: several work items of kBlocksPerItem row blocks on every target, a partial last one.
const Shape kShapes[] = {{1, 5, 5, 4}, {17, 33, 7, 9}, {40, 64, 32, 130}, {31, 576, 32, 67}, {16, 96, 96, 8},
                         {3, 1031, 32, 5}, {300, 100, 32, 20}};

TEST(GroupError, HandDerived) {
  // One row [1, 2], q = [1.5, 2]: d = [0.5, 0]; tokens [2, 4] and [−6, 1] give e = 1 and −3, err = 10.
  const std::vector<float> w = {1, 2}, q = {1.5f, 2}, x = {2, 4, -6, 1};
  double err = -1;
  GroupOutputErrors(w.data(), q.data(), 1, 2, 2, x.data(), 2, nullptr, &err, 1);
  EXPECT_EQ(err, 10.0);
  // Groups of 1: group 0 sees e = 1, −3 (err 10); group 1 has d = 0 (err 0).
  double g2[2] = {-1, -1};
  GroupOutputErrors(w.data(), q.data(), 1, 2, 1, x.data(), 2, nullptr, g2, 1);
  EXPECT_EQ(g2[0], 10.0);
  EXPECT_EQ(g2[1], 0.0);
  // int4 (qmax 7), clip m = 1.4 on [0.7, −2]: c = [0.7, −1.4], s = 0.2, codes 3.5 → 4 (ties to even), −7:
  // q = [0.8, −1.4], d = [0.1, 0.6] (in float), one token [1, 1]: e = fma(1, 0.6, 0.1), err = e².
  const std::vector<float> w2 = {0.7f, -2.0f}, one = {1, 1};
  const float clip = 1.4f;
  ASSERT_TRUE(ClipOutputErrorsIntSym(w2.data(), &clip, 1, 2, 2, 7, one.data(), 1, nullptr, &err, 1));
  const float s = 1.4f / 7.0f, d0 = 4.0f * s - 0.7f, d1 = -7.0f * s + 2.0f;
  const float e = std::fma(1.0f, d1, std::fma(1.0f, d0, 0.0f));
  EXPECT_EQ(err, double(e) * e);
}

TEST(GroupError, MatchesRefAndTheGemmPathBitwise) {
  for (const Shape& sh : kShapes) {
    SCOPED_TRACE(std::to_string(sh.rows) + "x" + std::to_string(sh.cols) + " g" + std::to_string(sh.group) + " n" +
                 std::to_string(sh.n));
    const auto w = Normal(size_t(sh.rows * sh.cols), 1), x = Normal(size_t(sh.n * sh.cols), 2, 3.0f);
    auto q = w;
    for (size_t i = 0; i < q.size(); ++i) q[i] = std::round(w[i] * 4) / 4;
    const int64_t n_groups = (sh.cols + sh.group - 1) / sh.group;
    std::vector<double> ref(size_t(sh.rows * n_groups)), one(ref.size()), two(ref.size());
    GroupOutputErrorsRef(w.data(), q.data(), sh.rows, sh.cols, sh.group, x.data(), sh.n, ref.data());
    GroupOutputErrors(w.data(), q.data(), sh.rows, sh.cols, sh.group, x.data(), sh.n, nullptr, one.data(), 1);
    GroupOutputErrors(w.data(), q.data(), sh.rows, sh.cols, sh.group, x.data(), sh.n, nullptr, two.data(), 2);
    EXPECT_TRUE(Bits(one, ref)) << GroupErrorTarget();
    EXPECT_TRUE(Bits(two, ref));
    if (sh.n >= kGemmDotRows) {
      EXPECT_TRUE(Bits(ref, ViaGemm(w, q, sh.rows, sh.cols, sh.group, x, sh.n)));
    }
  }
}

TEST(GroupError, EveryTargetAgreesWithRefAndAcrossThreads) {
  ForEachTarget([&] {
    for (const Shape& sh : kShapes) {
      const auto w = Normal(size_t(sh.rows * sh.cols), 3), x = Normal(size_t(sh.n * sh.cols), 4);
      auto q = w;
      for (size_t i = 0; i < q.size(); ++i) q[i] = std::round(w[i] * 3) / 3;
      const int64_t n_groups = (sh.cols + sh.group - 1) / sh.group;
      std::vector<double> ref(size_t(sh.rows * n_groups)), one(ref.size()), two(ref.size());
      GroupOutputErrorsRef(w.data(), q.data(), sh.rows, sh.cols, sh.group, x.data(), sh.n, ref.data());
      GroupOutputErrors(w.data(), q.data(), sh.rows, sh.cols, sh.group, x.data(), sh.n, nullptr, one.data(), 1);
      GroupOutputErrors(w.data(), q.data(), sh.rows, sh.cols, sh.group, x.data(), sh.n, nullptr, two.data(), 2);
      EXPECT_TRUE(Bits(one, two));
      for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(one[i], ref[i], 1e-5 * ref[i] + 1e-30) << i;
    }
  });
}

TEST(GroupError, ClipIntSymIsFakeQuantizeOfTheClippedMatrix) {
  for (const char* text : {"int4:g32", "int3:g7", "int8:channel", "int2:g16"}) {
    auto scheme = ParseScheme(text);
    ASSERT_TRUE(scheme.ok()) << text;
    for (const Shape& sh : kShapes) {
      int64_t group = 0;
      int qmax = 0;
      ASSERT_TRUE(IntSymRowsParams(*scheme, sh.cols, &group, &qmax));
      SCOPED_TRACE(std::string(text) + " " + std::to_string(sh.rows) + "x" + std::to_string(sh.cols));
      auto w = Normal(size_t(sh.rows * sh.cols), 5);
      std::fill(w.begin(), w.begin() + std::min<int64_t>(sh.cols, group), 0.0f);  // an all-zero group: s = 0
      const int64_t n_groups = (sh.cols + group - 1) / group;
      const auto x = Normal(size_t(sh.n * sh.cols), 6);
      std::vector<float> amax(size_t(sh.rows * n_groups), 0.0f);
      for (int64_t r = 0; r < sh.rows; ++r)
        for (int64_t c = 0; c < sh.cols; ++c)
          amax[r * n_groups + c / group] = std::max(amax[r * n_groups + c / group], std::fabs(w[r * sh.cols + c]));
      for (float f : {1.0f, 0.85f, 0.55f}) {
        std::vector<float> m(amax.size()), wc(w.size()), q(w.size());
        for (size_t i = 0; i < m.size(); ++i) m[i] = amax[i] * f;
        for (int64_t r = 0; r < sh.rows; ++r)
          for (int64_t c = 0; c < sh.cols; ++c) {
            const float b = m[r * n_groups + c / group];
            wc[r * sh.cols + c] = std::clamp(w[r * sh.cols + c], -b, b);
          }
        ASSERT_TRUE(FakeQuantize(*scheme, wc.data(), sh.rows, sh.cols, q.data()).ok());
        std::vector<double> ref(m.size());
        GroupOutputErrorsRef(w.data(), q.data(), sh.rows, sh.cols, group, x.data(), sh.n, ref.data());
        std::vector<double> got(m.size()), got2(m.size());
        ASSERT_TRUE(ClipOutputErrorsIntSym(w.data(), m.data(), sh.rows, sh.cols, group, qmax, x.data(), sh.n, nullptr,
                                           got.data(), 1));
        ASSERT_TRUE(ClipOutputErrorsIntSym(w.data(), m.data(), sh.rows, sh.cols, group, qmax, x.data(), sh.n, nullptr,
                                           got2.data(), 2));
        EXPECT_TRUE(Bits(got, ref)) << f;
        EXPECT_TRUE(Bits(got2, ref)) << f;
        // The in-pass quantizer (vector ops and their scalar tail) on every target: bitwise the same
        // target's error of the FakeQuantize'd matrix (targets without FMA differ from the fma oracle).
        ForEachTarget([&] {
          std::vector<double> in_pass(m.size()), of_q(m.size());
          ASSERT_TRUE(ClipOutputErrorsIntSym(w.data(), m.data(), sh.rows, sh.cols, group, qmax, x.data(), sh.n,
                                             nullptr, in_pass.data(), 2));
          GroupOutputErrors(w.data(), q.data(), sh.rows, sh.cols, group, x.data(), sh.n, nullptr, of_q.data(), 1);
          EXPECT_TRUE(Bits(in_pass, of_q)) << f;
        });
      }
    }
  }
}

TEST(GroupError, BoundStopsOnlyLosers) {
  // Bounds below, at and above each true err / n: an entry below its bound must be exact; the others
  // only need err / n >= bound. n = 300 tokens so the stop test (every 64 tokens) is reached.
  const int64_t rows = 37, cols = 96, group = 32, n = 300, n_groups = 3;
  const auto w = Normal(size_t(rows * cols), 7), x = Normal(size_t(n * cols), 8);
  auto q = w;
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::round(w[i] * 2) / 2;
  std::vector<double> ref(size_t(rows * n_groups));
  GroupOutputErrorsRef(w.data(), q.data(), rows, cols, group, x.data(), n, ref.data());
  std::vector<double> bound(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    const double m = ref[i] / double(n);
    bound[i] = i % 3 == 0 ? m * 0.1 : i % 3 == 1 ? m : m * 1.5;
  }
  for (int threads : {1, 2}) {
    std::vector<double> got(ref.size());
    GroupOutputErrors(w.data(), q.data(), rows, cols, group, x.data(), n, bound.data(), got.data(), threads);
    for (size_t i = 0; i < ref.size(); ++i) {
      if (ref[i] / double(n) < bound[i]) EXPECT_EQ(got[i], ref[i]) << i;
      else EXPECT_GE(got[i] / double(n), bound[i]) << i;
    }
  }
  // Rows 0..15 alone with every bound at a tenth of the truth: all lanes stop at the first test.
  std::vector<double> low(ref.size()), got(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) low[i] = ref[i] / double(n) * 0.1;
  GroupOutputErrors(w.data(), q.data(), 16, cols, group, x.data(), n, low.data(), got.data(), 1);
  for (int64_t i = 0; i < 16 * n_groups; ++i) EXPECT_LT(got[size_t(i)], ref[size_t(i)]) << i;
}

TEST(GroupError, NonFiniteWeightOrClipIsRefused) {
  std::vector<float> w = {1, 2, NAN, 4}, x = {1, 1, 1, 1};
  const float clip[2] = {2, 4};
  double err[2];
  EXPECT_FALSE(ClipOutputErrorsIntSym(w.data(), clip, 1, 4, 2, 7, x.data(), 1, nullptr, err, 1));
  w[2] = 3;
  EXPECT_TRUE(ClipOutputErrorsIntSym(w.data(), clip, 1, 4, 2, 7, x.data(), 1, nullptr, err, 1));
  const float bad[2] = {2, INFINITY};
  EXPECT_FALSE(ClipOutputErrorsIntSym(w.data(), bad, 1, 4, 2, 7, x.data(), 1, nullptr, err, 1));
}

TEST(GroupError, TargetIsNamed) { EXPECT_STRNE(GroupErrorTarget(), ""); }

}  // namespace
}  // namespace ql
