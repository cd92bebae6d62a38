// Hadamard constructions (kernels/hadamard.h) and the rotation algorithm (harness/quant/rotation.h):
// H·Hᵀ = n·I for the constructed orders, the K·2^m transform is orthogonal and matches its explicit
// matrix, a rotated model computes the same logits, rotation flattens outlier channels (kurtosis), and
// sizes without a construction (172 = stories260K's FFN) give an error naming the size.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "harness/io/load.h"
#include "harness/model/forward.h"
#include "harness/quant/calibration.h"
#include "harness/quant/rotation.h"
#include "kernels/hadamard.h"
#include "tests/harness/algo_test_util.h"

namespace ql {
namespace {

TEST(AlgoRotation, HadamardMatricesAreHadamard) {
  for (int k : {1, 2, 4, 8, 12, 20, 28, 36, 44, 60, 76, 108, 140, 148}) {
    SCOPED_TRACE(k);
    auto h = HadamardMatrix(k);
    ASSERT_TRUE(h.ok()) << h.status().message();
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        int d = 0;
        for (int t = 0; t < k; ++t) d += (*h)[size_t(i) * k + t] * (*h)[size_t(j) * k + t];
        ASSERT_EQ(d, i == j ? k : 0);
      }
  }
  for (int k : {52, 156, 172, 6}) {
    auto h = HadamardMatrix(k);
    ASSERT_FALSE(h.ok());
    EXPECT_NE(h.status().message().find(std::to_string(k)), std::string::npos);
  }
  auto p = PlanHadamard(172);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("172"), std::string::npos);
}

TEST(AlgoRotation, FwhtByHand) {
  // H_4 (Sylvester, natural order) · [1, 2, 3, 4] = [10, -2, -4, 0].
  std::vector<float> x = {1, 2, 3, 4};
  Fwht(x.data(), 4);
  EXPECT_EQ(x, (std::vector<float>{10, -2, -4, 0}));
}

TEST(AlgoRotation, KTimesPow2TransformIsOrthogonal) {
  for (int64_t n : {64, 576, 1536, 96, 896}) {  // 576 = 36·16, 1536 = 12·128, 96 = 12·8, 896 = 28·32
    SCOPED_TRACE(n);
    auto plan = PlanHadamard(n);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const auto r = HadamardMatrixExplicit(*plan);
    double worst = 0;
    for (int64_t i = 0; i < n; i += 7)
      for (int64_t j = 0; j < n; ++j) {
        double d = 0;
        for (int64_t t = 0; t < n; ++t) d += double(r[i * n + t]) * r[j * n + t];
        worst = std::max(worst, std::fabs(d - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-5);
    // Entries are ±1/√n.
    for (float v : r) ASSERT_NEAR(std::fabs(v), 1.0 / std::sqrt(double(n)), 1e-6);
  }
}

double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += double(a[i] - b[i]) * (a[i] - b[i]), den += double(a[i]) * a[i];
  return std::sqrt(num / den);
}

std::vector<float> Logits(const Model& m, const std::vector<int>& toks, const ForwardHooks* hooks = nullptr) {
  std::vector<float> l(toks.size() * m.config.vocab_size);
  QL_CHECK(ForwardWindow(m, toks, l.data(), hooks).ok(), "forward");
  return l;
}

TEST(AlgoRotation, RotatedModelKeepsLogits) {
  ModelConfig c = Stories260KConfig();
  c.hidden_dim = 96;  // 12·8: R4 possible (172 is not)
  for (bool tied : {true, false}) {
    c.tied_embeddings = tied;
    const Model fp = testing::OutlierModel(c);
    Model rot = fp;
    std::function<void(std::string_view, float*, int, int)> r4;
    std::string note;
    ASSERT_TRUE(RotateModel(rot, {}, &r4, &note).ok());
    ASSERT_TRUE(bool(r4)) << note;
    ForwardHooks hooks;
    hooks.linear_input = r4;
    const std::vector<int> toks = testing::RandomCalibration(c.vocab_size, 1, 48, 9).windows[0];
    EXPECT_LT(RelErr(Logits(fp, toks), Logits(rot, toks, &hooks)), 1e-4);
    // The weights did change (the test would pass trivially otherwise).
    EXPECT_GT(RelErr(fp.W("model.layers.0.self_attn.q_proj.weight").data,
                     rot.W("model.layers.0.self_attn.q_proj.weight").data), 0.5);
  }
}

TEST(AlgoRotation, Stories260KLogitsAndR4Skipped) {
  auto m = LoadModel(std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin");
  if (!m.ok()) GTEST_SKIP() << m.status().message();
  Model rot = *m;
  std::function<void(std::string_view, float*, int, int)> r4;
  std::string note;
  ASSERT_TRUE(RotateModel(rot, {}, &r4, &note).ok());
  EXPECT_FALSE(bool(r4));
  EXPECT_NE(note.find("172"), std::string::npos) << note;
  std::vector<int> toks(64);
  for (int i = 0; i < 64; ++i) toks[i] = (i * 37 + 1) % m->config.vocab_size;
  toks[0] = 1;
  EXPECT_LT(RelErr(Logits(*m, toks), Logits(rot, toks)), 1e-4);
}

// Excess kurtosis of all entries of the q_proj input of layer 1.
double InputKurtosis(const Model& m, const CalibrationSet& calib) {
  CaptureRequest req;
  req.inputs = true;
  req.modules = {"model.layers.1.self_attn.q_proj"};
  auto st = CaptureLinearStats(m, calib, req);
  QL_CHECK(st.ok(), "capture");
  const auto& x = st->at("model.layers.1.self_attn.q_proj").inputs;
  double mean = 0, m2 = 0, m4 = 0;
  for (float v : x) mean += v;
  mean /= double(x.size());
  for (float v : x) {
    const double d = v - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= double(x.size());
  m4 /= double(x.size());
  return m4 / (m2 * m2) - 3.0;
}

TEST(AlgoRotation, FlattensOutliers) {
  ModelConfig c = Stories260KConfig();
  const Model fp = testing::OutlierModel(c);
  Model rot = fp;
  RotationOptions opt;
  opt.r4 = false;
  ASSERT_TRUE(RotateModel(rot, opt, nullptr, nullptr).ok());
  const CalibrationSet calib = testing::RandomCalibration(c.vocab_size, 2, 32, 4);
  const double k_fp = InputKurtosis(fp, calib), k_rot = InputKurtosis(rot, calib);
  EXPECT_GT(k_fp, 5.0);
  EXPECT_LT(k_rot, 0.25 * k_fp) << k_rot << " vs " << k_fp;
}

}  // namespace
}  // namespace ql
