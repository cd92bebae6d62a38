// GPTQ's `mse` option (harness/quant/gptq.h ColumnQuantizer::MseSearch): the shrink search never loses in
// its own |error|^norm objective, a search over p = 1 only is bitwise the default, heavy-tailed weights
// get a smaller squared weight error, and schemes it cannot serve are errors.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "harness/quant/gptq.h"
#include "kernels/quantizer.h"

namespace ql {
namespace {

constexpr int kRows = 24, kCols = 96;

// Student-t-like weights (a Gaussian over a random scale): outliers make clipping worth it.
std::vector<float> HeavyTailed(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::gamma_distribution<float> g(1.5f, 1.0f / 1.5f);
  std::vector<float> w(size_t(kRows) * kCols);
  for (float& v : w) v = n(rng) / std::sqrt(g(rng));
  return w;
}

std::vector<double> Identity() {
  std::vector<double> h(size_t(kCols) * kCols, 0.0);
  for (int i = 0; i < kCols; ++i) h[size_t(i) * kCols + i] = 1.0;
  return h;
}

std::vector<float> Gptq(const char* scheme_text, const std::vector<float>& w, const GptqOptions& opt) {
  auto scheme = ParseScheme(scheme_text);
  EXPECT_TRUE(scheme.ok());
  std::vector<float> q = w;
  auto loss = GptqQuantizeWeight(*scheme, q.data(), kRows, kCols, Identity(), opt);
  EXPECT_TRUE(loss.ok()) << loss.status().message();
  return q;
}

double NormError(const std::vector<float>& w, const std::vector<float>& q, int64_t r, int64_t c0, int64_t c1,
                 double norm) {
  double e = 0;
  for (int64_t c = c0; c < c1; ++c) e += std::pow(std::fabs(double(w[r * kCols + c]) - q[r * kCols + c]), norm);
  return e;
}

GptqOptions NoDamp() {
  GptqOptions o;
  o.percdamp = 0.0;
  o.blocksize = 32;
  return o;
}

TEST(AlgoGptqMse, NeverWorseInItsObjectiveAndBetterOnHeavyTails) {
  const auto w = HeavyTailed(5);
  for (const char* text : {"int4:g32", "int3:g32", "int2:g32:asym", "int4:channel", "fp4:g16"}) {
    SCOPED_TRACE(text);
    GptqOptions plain = NoDamp(), mse = NoDamp();
    mse.mse.on = true;
    const auto q0 = Gptq(text, w, plain), q1 = Gptq(text, w, mse);
    // Identity Hessian: no error feedback, each (row, group) is the search's own problem, and p = 1 (the
    // plain range) is one of the candidates.
    const int64_t gs = std::string(text).find("channel") != std::string::npos ? kCols
                       : std::string(text).find("g16") != std::string::npos ? 16 : 32;
    int improved = 0;
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t c0 = 0; c0 < kCols; c0 += gs) {
        const double e0 = NormError(w, q0, r, c0, c0 + gs, 2.4), e1 = NormError(w, q1, r, c0, c0 + gs, 2.4);
        EXPECT_LE(e1, e0 * (1 + 1e-12)) << r << " " << c0;
        improved += e1 < e0;
      }
    EXPECT_GT(improved, 0);
    double s0 = 0, s1 = 0;
    for (int64_t r = 0; r < kRows; ++r) {
      s0 += NormError(w, q0, r, 0, kCols, 2.0);
      s1 += NormError(w, q1, r, 0, kCols, 2.0);
    }
    EXPECT_LT(s1, s0);  // squared weight error too, on this seed
  }
}

TEST(AlgoGptqMse, SearchOverTheFullRangeOnlyIsTheDefaultBitForBit) {
  const auto w = HeavyTailed(9);
  GptqOptions plain, one;
  plain.blocksize = one.blocksize = 32;
  one.mse = {true, 2.4, 100, 0.01};  // int(0.01 * 100) = 1 step: p = 1
  for (const char* text : {"int4:g32", "int4:g32:asym", "int8:channel"}) {
    auto scheme = ParseScheme(text);
    ASSERT_TRUE(scheme.ok());
    // A correlated Hessian: error feedback on, so any change in a group's parameters would propagate.
    std::vector<double> h(size_t(kCols) * kCols);
    for (int i = 0; i < kCols; ++i)
      for (int j = 0; j < kCols; ++j) h[size_t(i) * kCols + j] = std::exp(-std::fabs(i - j) / 4.0) * (1 + (i == j));
    std::vector<float> a = w, b = w;
    ASSERT_TRUE(GptqQuantizeWeight(*scheme, a.data(), kRows, kCols, h, plain).ok());
    ASSERT_TRUE(GptqQuantizeWeight(*scheme, b.data(), kRows, kCols, h, one).ok());
    EXPECT_EQ(a, b) << text;
  }
}

TEST(AlgoGptqMse, UnservedSchemesAreErrors) {
  const auto w = HeavyTailed(1);
  GptqOptions mse = NoDamp();
  mse.mse.on = true;
  for (const char* text : {"nf4", "mxfp4", "int4:tensor", "int4:g32:mse", "int4:b8x8"}) {
    auto scheme = ParseScheme(text);
    ASSERT_TRUE(scheme.ok()) << text;
    std::vector<float> q = w;
    auto r = GptqQuantizeWeight(*scheme, q.data(), kRows, kCols, Identity(), mse);
    EXPECT_FALSE(r.ok()) << text;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("mse"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace ql

namespace ql {
namespace {

// The mse options are optional parameters: a gptq cell without them resolves to the same parameters (and so
// the same cell identity) as before they existed; given, they are type-checked like any other.
TEST(AlgoGptqMse, OptionalParametersKeepOldCellIdentities) {
  auto algo = FindAlgorithm("gptq");
  ASSERT_TRUE(algo.ok());
  auto plain = ResolveAlgorithmParams(**algo, nlohmann::json::object());
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->contains("mse"));
  EXPECT_EQ(plain->size(), 5u);  // percdamp, blocksize, act_order, static_groups, true_sequential
  auto mse = ResolveAlgorithmParams(**algo, {{"mse", true}, {"mse_norm", 2}});
  ASSERT_TRUE(mse.ok()) << mse.status().message();
  EXPECT_EQ((*mse)["mse"], true);
  EXPECT_FALSE(mse->contains("mse_grid"));
  EXPECT_FALSE(ResolveAlgorithmParams(**algo, {{"mse", "yes"}}).ok());
  EXPECT_FALSE(ResolveAlgorithmParams(**algo, {{"mse_nrom", 2.4}}).ok());
}

}  // namespace
}  // namespace ql
