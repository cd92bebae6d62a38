// SmoothQuant and LLM.int8() (harness/quant/{smoothquant,llm_int8}.h) on a layer whose inputs carry
// outlier channels: each lowers the W8A8 output error against plain per-token int8; the scale and
// the outlier split are checked against values computed by hand; static activation scales come from
// the calibration absmax.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "harness/quant/calibration.h"
#include "harness/quant/llm_int8.h"
#include "harness/quant/quant_util.h"
#include "harness/quant/smoothquant.h"
#include "kernels/quantizer.h"
#include "tests/harness/algo_test_util.h"

namespace ql {
namespace {

using testing::Gaussian;

constexpr int kT = 256, kIn = 64, kOut = 32;

std::vector<float> OutlierInputs() {
  auto x = Gaussian(size_t(kT) * kIn, 3);
  for (int t = 0; t < kT; ++t)
    for (int j : {5, 20, 41}) x[size_t(t) * kIn + j] *= 40.0f;  // |x| up to ~150
  return x;
}

std::vector<float> Fq(const char* scheme, const std::vector<float>& v, int rows, int cols) {
  auto s = ParseScheme(scheme);
  QL_CHECK(s.ok(), "scheme");
  std::vector<float> out(v.size());
  QL_CHECK(FakeQuantize(*s, v.data(), rows, cols, out.data()).ok(), "fq");
  return out;
}

// ||X Wᵀ − Xq Wqᵀ||² (plain loops).
double MatmulError(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& xq,
                   const std::vector<float>& wq) {
  double e = 0;
  for (int t = 0; t < kT; ++t)
    for (int o = 0; o < kOut; ++o) {
      double a = 0, b = 0;
      for (int j = 0; j < kIn; ++j) {
        a += double(x[size_t(t) * kIn + j]) * w[size_t(o) * kIn + j];
        b += double(xq[size_t(t) * kIn + j]) * wq[size_t(o) * kIn + j];
      }
      e += (a - b) * (a - b);
    }
  return e;
}

TEST(AlgoSmoothQuant, ScalesByHand) {
  // a = 16, w = 4, α = 0.5: s = 4 / 2 = 2; a = 1, w = 0 (clamped to 1e-5), α = 0.5: 1 / sqrt(1e-5).
  const auto s = SmoothQuantScales({16.0f, 1.0f}, {4.0f, 0.0f}, 0.5);
  EXPECT_FLOAT_EQ(s[0], 2.0f);
  EXPECT_NEAR(s[1], 1.0 / std::sqrt(1e-5), 1e-2);
  // α = 1: s = a (all difficulty on the weights); α = 0: s = 1/w.
  EXPECT_FLOAT_EQ(SmoothQuantScales({8.0f}, {2.0f}, 1.0)[0], 8.0f);
  EXPECT_FLOAT_EQ(SmoothQuantScales({8.0f}, {2.0f}, 0.0)[0], 0.5f);
}

TEST(AlgoSmoothQuant, LowersW8A8ErrorWithOutlierChannels) {
  const auto x = OutlierInputs();
  const auto w = Gaussian(size_t(kOut) * kIn, 4, 0.1f);
  const double plain = MatmulError(x, w, Fq("int8:token", x, kT, kIn), Fq("int8:channel", w, kOut, kIn));
  std::vector<float> amax(kIn, 0.0f), wmax(kIn, 0.0f);
  for (int t = 0; t < kT; ++t)
    for (int j = 0; j < kIn; ++j) amax[j] = std::max(amax[j], std::fabs(x[size_t(t) * kIn + j]));
  for (int o = 0; o < kOut; ++o)
    for (int j = 0; j < kIn; ++j) wmax[j] = std::max(wmax[j], std::fabs(w[size_t(o) * kIn + j]));
  const auto s = SmoothQuantScales(amax, wmax, 0.5);
  auto xs = x, ws = w;
  for (int t = 0; t < kT; ++t)
    for (int j = 0; j < kIn; ++j) xs[size_t(t) * kIn + j] /= s[j];
  for (int o = 0; o < kOut; ++o)
    for (int j = 0; j < kIn; ++j) ws[size_t(o) * kIn + j] *= s[j];
  // X·Wᵀ = (X/s)·(W·s)ᵀ, so the error is measured against the original product.
  const double smooth = MatmulError(x, w, Fq("int8:token", xs, kT, kIn), Fq("int8:channel", ws, kOut, kIn));
  EXPECT_LT(smooth, 0.5 * plain) << smooth << " vs " << plain;
}

TEST(AlgoLlmInt8, OutlierSplitByHand) {
  // Column 1 has |x| >= 6 in row 0, so it is an outlier column for every row and stays exact. The rest
  // of each row is int8 with absmax over the non-outlier columns: row 0 absmax 1.0 → 0.5 stays 0.5
  // (63.5 → 64 (ties to even) · 1/127 = 0.50394); row 1 absmax 0.3.
  std::vector<float> x = {1.0f, 7.0f, 0.5f,   //
                          0.3f, 2.0f, -0.1f};
  EXPECT_EQ(LlmInt8Input(x.data(), 2, 3, 6.0f), 1);
  EXPECT_FLOAT_EQ(x[0], 1.0f);
  EXPECT_FLOAT_EQ(x[1], 7.0f);
  EXPECT_FLOAT_EQ(x[2], 64.0f * (1.0f / 127.0f));
  EXPECT_FLOAT_EQ(x[3], 0.3f);
  EXPECT_FLOAT_EQ(x[4], 2.0f);
  EXPECT_FLOAT_EQ(x[5], -42.0f * (0.3f / 127.0f));  // -0.1·127/0.3 = -42.33 → -42
}

TEST(AlgoLlmInt8, OutlierColumnsBeatPlainInt8) {
  const auto x = OutlierInputs();
  const auto w = Gaussian(size_t(kOut) * kIn, 5, 0.1f);
  const auto wq = Fq("int8:channel", w, kOut, kIn);
  // The activation side of the error (both use the same int8 weight): X·Ŵᵀ vs X̂·Ŵᵀ.
  const double plain = MatmulError(x, wq, Fq("int8:token", x, kT, kIn), wq);
  auto xi = x;
  EXPECT_EQ(LlmInt8Input(xi.data(), kT, kIn, 6.0f), 3);
  const double mixed = MatmulError(x, wq, xi, wq);
  EXPECT_LT(mixed, 0.01 * plain) << mixed << " vs " << plain;
  // With the weight error included it is still far below.
  EXPECT_LT(MatmulError(x, w, xi, wq), 0.2 * MatmulError(x, w, Fq("int8:token", x, kT, kIn), wq));
}

TEST(AlgoLlmInt8, RegistersOnlineHookOnModel) {
  const Model fp = testing::OutlierModel();
  std::vector<std::pair<std::string, std::string>> ms;
  for (const auto& m : fp.LinearModules()) ms.emplace_back(m, "int8:channel");
  AlgorithmRuntime rt;
  AlgorithmContext ctx;
  ctx.module_schemes = &ms;
  ctx.params = nlohmann::json::object();
  ctx.runtime = &rt;
  Model q = fp;
  ASSERT_TRUE(LlmInt8Algorithm().apply(q, ctx).ok());
  ASSERT_TRUE(bool(rt.linear_input));
  std::vector<float> x = {10.0f, 0.25f};
  EXPECT_TRUE(rt.linear_input("model.layers.0.mlp.down_proj", x.data(), 1, 2));
  EXPECT_FALSE(rt.linear_input("not.a.module", x.data(), 1, 2));
}

}  // namespace
}  // namespace ql

namespace ql {
namespace {

TEST(AlgoStaticAct, ScaleFromCalibrationAbsmax) {
  const Model fp = testing::OutlierModel();
  const CalibrationSet calib = testing::RandomCalibration(fp.config.vocab_size, 2, 32, 6);
  const std::string mod = "model.layers.1.mlp.down_proj";
  CaptureRequest req;
  req.absmax = true;
  req.modules = {mod};
  auto st = CaptureLinearStats(fp, calib, req);
  ASSERT_TRUE(st.ok());
  const auto& a = st->at(mod).absmax;
  const float amax = *std::max_element(a.begin(), a.end());
  std::vector<std::pair<std::string, std::string>> ms = {{mod, "int8:channel"}};
  AlgorithmRuntime rt;
  AlgorithmContext ctx;
  ctx.module_schemes = &ms;
  ctx.params = {{"act", "int8:tensor"}};
  ctx.calibration = &calib;
  ctx.runtime = &rt;
  Model q = fp;
  const auto algo = FindAlgorithm("static_act");
  ASSERT_TRUE(algo.ok());
  ASSERT_TRUE((*algo)->apply(q, ctx).ok());
  const int in = fp.config.hidden_dim;
  std::vector<float> x(in, 0.0f);
  x[0] = 0.3f * amax;   // 38.1 steps → 38
  x[1] = 2.0f * amax;   // beyond the calibrated range: saturates at 127 steps
  x[2] = -0.25f * amax; // -31.75 → -32
  ASSERT_TRUE(rt.linear_input(mod, x.data(), 1, in));
  const float s = amax / 127.0f;
  EXPECT_FLOAT_EQ(x[0], 38 * s);
  EXPECT_FLOAT_EQ(x[1], 127 * s);
  EXPECT_FLOAT_EQ(x[2], -32 * s);
  EXPECT_FLOAT_EQ(x[3], 0.0f);
}

}  // namespace
}  // namespace ql
