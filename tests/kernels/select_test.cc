// Tests of kernels/select.h: ArgMaxF32 equals the scalar loop on every Highway target this CPU runs,
// on odd lengths, ties (first index wins), -0/+0, NaNs (skipped; a NaN first element gives 0),
// infinities and the maximum in every position of a row; TopKF32 equals the partial_sort on random
// rows, rows full of ties, k = 0, 1, 64 and n.
#include "kernels/select.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "tests/kernels/hwy_targets.h"

namespace ql {
namespace {


void ExpectSame(const std::vector<float>& x) {
  ASSERT_EQ(ArgMaxF32(x.data(), x.size()), ArgMaxF32Ref(x.data(), x.size())) << "n=" << x.size();
}

TEST(ArgMaxTest, EqualsScalarLoopOnRandomRowsAndOddLengths) {
  ForEachTarget([] {
    std::mt19937 rng(5);
    std::normal_distribution<float> g(0.f, 3.f);
    for (size_t n : {1, 2, 3, 15, 16, 17, 31, 33, 64, 100, 1000, 49152}) {
      std::vector<float> x(n);
      for (float& v : x) v = g(rng);
      ExpectSame(x);
      for (float& v : x) v = std::round(v);  // many ties
      ExpectSame(x);
    }
  });
}

TEST(ArgMaxTest, MaximumInEveryPosition) {
  ForEachTarget([] {
    for (size_t n : {5, 16, 37}) {
      for (size_t at = 0; at < n; ++at) {
        std::vector<float> x(n, -1.0f);
        x[at] = 2.0f;
        ASSERT_EQ(ArgMaxF32(x.data(), n), at);
        ExpectSame(x);
      }
    }
  });
}

TEST(ArgMaxTest, SignedZerosNansAndInfinities) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  ForEachTarget([&] {
    std::vector<std::vector<float>> rows = {
        {-0.0f, 0.0f}, {0.0f, -0.0f}, {-1.0f, -0.0f, 0.0f},
        {nan, 5.0f, 7.0f},                         // NaN first: 0
        {1.0f, nan, 3.0f, nan, 2.0f},              // NaNs skipped
        {-inf, -inf, -inf},                        // all equal: 0
        {-inf, 3.0f, inf, inf, 1.0f},              // first +inf
    };
    std::vector<float> long_row(70, -3.0f);
    for (size_t i = 1; i < long_row.size(); i += 3) long_row[i] = nan;
    long_row[41] = -0.0f;
    long_row[57] = 0.0f;
    rows.push_back(long_row);
    for (const auto& r : rows) ExpectSame(r);
    EXPECT_EQ(ArgMaxF32(rows[3].data(), 3), 0u);
    EXPECT_EQ(ArgMaxF32(rows[4].data(), 5), 2u);
    EXPECT_EQ(ArgMaxF32(long_row.data(), long_row.size()), 41u);
  });
}

TEST(TopKTest, EqualsPartialSortIncludingTies) {
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.f, 4.f);
  for (int n : {1, 7, 64, 65, 1000, 49152}) {
    std::vector<float> x(n);
    for (int round = 0; round < 3; ++round) {
      for (float& v : x) v = round == 0 ? g(rng) : round == 1 ? std::round(g(rng)) : float(int(g(rng)) % 2);
      for (int k : {0, 1, 64, n}) {
        if (k > n) continue;
        std::vector<int> got(k + 1, -1), want(k + 1, -1);  // the slot past k must stay untouched
        TopKF32(x.data(), n, k, got.data());
        TopKF32Ref(x.data(), n, k, want.data());
        ASSERT_EQ(got, want) << "n=" << n << " k=" << k << " round " << round;
      }
    }
  }
}

}  // namespace
}  // namespace ql
