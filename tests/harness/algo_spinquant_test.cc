// SpinQuant (harness/quant/spinquant.h): the Cayley step keeps R orthogonal and descends (it finds the
// orthogonal Procrustes optimum), dL/dR1 and dL/dR2 match finite differences of the loss on a small model,
// iters: 0 is the rotation algorithm's cell bit for bit, the learned rotation fused into the unquantized
// model keeps its logits, learning lowers the quantized network's loss, and runs are bitwise repeatable.
#include <cmath>
#include <optional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "harness/model/forward.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/calibration.h"
#include "harness/quant/rotation.h"
#include "harness/quant/spinquant.h"
#include "tests/harness/algo_test_util.h"

namespace ql {
namespace {

double OrthoError(const std::vector<double>& r, int n) {  // max |RᵀR − I|
  double worst = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double d = 0;
      for (int k = 0; k < n; ++k) d += r[size_t(k) * n + i] * r[size_t(k) * n + j];
      worst = std::max(worst, std::fabs(d - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

double MaxDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<double> Identity(int n) {
  std::vector<double> r(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i) r[size_t(i) * n + i] = 1.0;
  return r;
}

std::vector<double> RandomMatrix(int n, uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> g(size_t(n) * n);
  for (auto& x : g) x = d(rng);
  return g;
}

TEST(AlgoSpinQuant, CayleyStepKeepsROrthogonal) {
  for (int n : {8, 64}) {
    SCOPED_TRACE(n);
    auto h = HadamardR1(n, 5);
    ASSERT_TRUE(h.ok());
    std::vector<double> r(h->begin(), h->end());
    const std::vector<double> start = r;
    const double e0 = OrthoError(r, n);  // 1/√8 is not exact in float: the start is orthogonal to ~3e-8
    double alpha_sum = 0;
    for (int step = 0; step < 1000; ++step) alpha_sum += CayleyStep(&r, RandomMatrix(n, 100 + step, 3.0), n, 1.5);
    EXPECT_GT(alpha_sum, 1.0);               // the steps were not empty
    EXPECT_GT(MaxDiff(r, start), 0.1);       // R moved far from where it started
    EXPECT_LT(OrthoError(r, n), e0 + 1e-11);  // and is as orthogonal as it was
  }
}

TEST(AlgoSpinQuant, CayleyStepFindsTheProcrustesOptimum) {
  // L(R) = −tr(Aᵀ R) with A = Q·S (Q in SO(n), S = diag(1 … 2) positive): over orthogonal R the unique
  // minimum is R = Q. The gradient is G = −A. A sign error in the step would run away from Q.
  const int n = 16;
  std::vector<double> q = Identity(n);
  for (int i = 0; i < 5; ++i) CayleyStep(&q, RandomMatrix(n, 7 + i, 1.0), n, 0.3);  // Q: a rotation far from I
  ASSERT_GT(MaxDiff(q, Identity(n)), 0.3);
  std::vector<double> g(size_t(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) g[size_t(i) * n + j] = -q[size_t(i) * n + j] * (1.0 + double(j) / n);
  std::vector<double> r = Identity(n);
  for (int step = 0; step < 400; ++step) CayleyStep(&r, g, n, 0.5);
  EXPECT_LT(MaxDiff(r, q), 1e-6);
}

// A small model with R4 (FFN 96 = 12·8), two layers, every linear quantized in the loop.
ModelConfig SmallConfig() {
  ModelConfig c = Stories260KConfig();
  c.hidden_dim = 96;
  c.n_layers = 2;
  return c;
}

std::vector<std::pair<std::string, std::string>> Linears(const Model& m, const std::string& scheme) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& mod : m.LinearModules())
    if (mod != "lm_head") out.emplace_back(mod, scheme);
  return out;
}

StatusOr<SpinRotations> HadamardRotations(const ModelConfig& c, uint64_t seed) {
  SpinRotations rot;
  QL_ASSIGN_OR_RETURN(std::vector<float> r1, HadamardR1(c.dim, seed));
  QL_ASSIGN_OR_RETURN(std::vector<float> r2, HadamardR2(c.head_dim));
  rot.r1.assign(r1.begin(), r1.end());
  rot.r2.assign(c.n_layers, std::vector<double>(r2.begin(), r2.end()));
  return rot;
}

TEST(AlgoSpinQuant, GradientsMatchFiniteDifferences) {
  // With rounding replaced by the identity the loss is smooth in R and the straight-through gradient is
  // its exact gradient: central differences along random directions (R1 and each layer's R2) and on
  // single entries.
  const ModelConfig c = SmallConfig();
  const Model m = testing::OutlierModel(c);
  std::string note;
  auto prob = MakeSpinQuantProblem(m, Linears(m, "int4:g32"), /*r4=*/true, &note);
  ASSERT_TRUE(prob.ok()) << prob.status().message();
  ASSERT_FALSE(prob->r4.empty()) << note;
  prob->identity_rounding = true;
  auto rot0 = HadamardRotations(c, 3);
  ASSERT_TRUE(rot0.ok());
  const CalibrationSet calib = testing::RandomCalibration(c.vocab_size, 2, 17, 11);
  std::vector<int> tokens;
  for (const auto& w : calib.windows) tokens.insert(tokens.end(), w.begin(), w.end());
  SpinRotations grad;
  auto loss = SpinQuantLoss(*prob, *rot0, tokens.data(), 2, 16, &grad);
  ASSERT_TRUE(loss.ok()) << loss.status().message();
  ASSERT_EQ(grad.r1.size(), rot0->r1.size());
  ASSERT_EQ(grad.r2.size(), size_t(c.n_layers));
  const auto fd = [&](std::vector<double>* target, const std::vector<double>& dir, double eps) {
    const std::vector<double> keep = *target;
    for (size_t i = 0; i < dir.size(); ++i) (*target)[i] = keep[i] + eps * dir[i];
    auto lp = SpinQuantLoss(*prob, *rot0, tokens.data(), 2, 16, nullptr);
    for (size_t i = 0; i < dir.size(); ++i) (*target)[i] = keep[i] - eps * dir[i];
    auto lm = SpinQuantLoss(*prob, *rot0, tokens.data(), 2, 16, nullptr);
    *target = keep;
    QL_CHECK(lp.ok() && lm.ok(), "loss");
    return (*lp - *lm) / (2 * eps);
  };
  const auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  int checks = 0;
  for (int k = 0; k < 3; ++k) {  // random unit directions
    const std::vector<double> d1 = RandomMatrix(c.dim, 50 + k, 1.0 / c.dim);
    const double num = fd(&rot0->r1, d1, 1e-2), ana = dot(grad.r1, d1);
    EXPECT_GT(std::fabs(ana), 5e-3);  // large enough that the relative tolerance decides
    EXPECT_NEAR(num, ana, 3e-3 * std::fabs(ana) + 1e-4) << "R1 direction " << k;
    ++checks;
    for (int l = 0; l < c.n_layers; ++l) {
      const std::vector<double> d2 = RandomMatrix(c.head_dim, 70 + 10 * l + k, 1.0 / c.head_dim);
      const double n2 = fd(&rot0->r2[l], d2, 1e-2), a2 = dot(grad.r2[l], d2);
      EXPECT_GT(std::fabs(a2), 5e-3);
      EXPECT_NEAR(n2, a2, 3e-3 * std::fabs(a2) + 1e-4) << "R2 layer " << l << " direction " << k;
      ++checks;
    }
  }
  // The largest entries of each gradient, one at a time.
  const auto largest = [](const std::vector<double>& g, int count) {
    std::vector<size_t> idx(g.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::partial_sort(idx.begin(), idx.begin() + count, idx.end(),
                      [&](size_t a, size_t b) { return std::fabs(g[a]) > std::fabs(g[b]); });
    idx.resize(count);
    return idx;
  };
  for (size_t i : largest(grad.r1, 6)) {
    std::vector<double> e(grad.r1.size(), 0.0);
    e[i] = 1.0;
    EXPECT_NEAR(fd(&rot0->r1, e, 1e-2), grad.r1[i], 3e-3 * std::fabs(grad.r1[i]) + 1e-4) << "R1 entry " << i;
    ++checks;
  }
  for (int l = 0; l < c.n_layers; ++l)
    for (size_t i : largest(grad.r2[l], 4)) {
      std::vector<double> e(grad.r2[l].size(), 0.0);
      e[i] = 1.0;
      EXPECT_NEAR(fd(&rot0->r2[l], e, 1e-2), grad.r2[l][i], 3e-3 * std::fabs(grad.r2[l][i]) + 1e-4)
          << "R2 layer " << l << " entry " << i;
      ++checks;
    }
  EXPECT_EQ(checks, 3 * (1 + c.n_layers) + 6 + 4 * c.n_layers);
  // The distillation loss (KL to the unquantized model) through the same chain rule. With identity rounding
  // the rotated network is the teacher at the Hadamard start, so move off it first.
  auto teacher = TeacherProbs(*prob, tokens.data(), 2, 16);
  ASSERT_TRUE(teacher.ok());
  SpinRotations moved = *rot0, gkd;
  CayleyStep(&moved.r1, RandomMatrix(c.dim, 90, 1.0), c.dim, 0.05);
  for (auto& r2 : moved.r2) CayleyStep(&r2, RandomMatrix(c.head_dim, 91, 1.0), c.head_dim, 0.05);
  auto kl = SpinQuantLoss(*prob, moved, tokens.data(), 2, 16, &gkd, teacher->data());
  ASSERT_TRUE(kl.ok());
  EXPECT_NEAR(*kl, 0.0, 1e-4);  // an orthogonal R keeps the unquantized function: KL ≈ 0 at any rotation
  // Non-orthogonal perturbations change the function, so the KL is not flat: check its gradient there.
  SpinRotations off = moved;
  const std::vector<double> bend = RandomMatrix(c.dim, 92, 0.3 / c.dim);
  for (size_t i = 0; i < off.r1.size(); ++i) off.r1[i] += bend[i];
  ASSERT_TRUE(SpinQuantLoss(*prob, off, tokens.data(), 2, 16, &gkd, teacher->data()).ok());
  for (int k = 0; k < 2; ++k) {
    const std::vector<double> d1 = RandomMatrix(c.dim, 95 + k, 1.0 / c.dim);
    const std::vector<double> keep = off.r1;
    for (size_t i = 0; i < d1.size(); ++i) off.r1[i] = keep[i] + 1e-2 * d1[i];
    auto lp = SpinQuantLoss(*prob, off, tokens.data(), 2, 16, nullptr, teacher->data());
    for (size_t i = 0; i < d1.size(); ++i) off.r1[i] = keep[i] - 1e-2 * d1[i];
    auto lm = SpinQuantLoss(*prob, off, tokens.data(), 2, 16, nullptr, teacher->data());
    off.r1 = keep;
    ASSERT_TRUE(lp.ok() && lm.ok());
    const double num = (*lp - *lm) / 2e-2, ana = dot(gkd.r1, d1);
    EXPECT_GT(std::fabs(ana), 1e-3);
    EXPECT_NEAR(num, ana, 1e-2 * std::fabs(ana) + 1e-4) << "kd R1 direction " << k;
  }
}

Status ApplyAlgo(const std::string& name, Model& m, const nlohmann::json& params,
                 const std::vector<std::pair<std::string, std::string>>* schemes, const CalibrationSet* calib,
                 AlgorithmRuntime* rt, uint64_t seed = 0) {
  auto algo = FindAlgorithm(name);
  QL_CHECK(algo.ok(), "registered");
  AlgorithmContext ctx;
  ctx.module_schemes = schemes;
  ctx.params = params;
  ctx.calibration = calib;
  ctx.runtime = rt;
  ctx.seed = int64_t(seed);
  return (*algo)->apply(m, ctx);
}

std::vector<float> Logits(const Model& m, const std::vector<int>& toks, const AlgorithmRuntime* rt) {
  ForwardHooks h;
  if (rt && rt->linear_input)
    h.linear_input = [rt](std::string_view p, float* x, int T, int in) { rt->linear_input(p, x, T, in); };
  std::vector<float> l(toks.size() * m.config.vocab_size);
  QL_CHECK(ForwardWindow(m, toks, l.data(), &h).ok(), "forward");
  return l;
}

TEST(AlgoSpinQuant, ItersZeroIsTheRotationCellBitwise) {
  const ModelConfig c = SmallConfig();
  const Model fp = testing::OutlierModel(c);
  const auto schemes = Linears(fp, "int3:g32");
  const CalibrationSet calib = testing::RandomCalibration(c.vocab_size, 2, 24, 4);
  const std::vector<int> toks = testing::RandomCalibration(c.vocab_size, 1, 20, 9).windows[0];
  for (const char* quantizer : {"rtn", "gptq"}) {
    SCOPED_TRACE(quantizer);
    Model a = fp, b = fp;
    AlgorithmRuntime ra, rb;
    ASSERT_TRUE(ApplyAlgo("rotation", a, {{"quantizer", quantizer}}, &schemes, &calib, &ra, 5).ok());
    const Status s = ApplyAlgo("spinquant", b, {{"quantizer", quantizer}, {"iters", 0}}, &schemes, &calib, &rb, 5);
    ASSERT_TRUE(s.ok()) << s.message();
    ASSERT_EQ(a.weights.size(), b.weights.size());
    for (const auto& [name, t] : a.weights) ASSERT_EQ(t.data, b.W(name).data) << name;
    EXPECT_EQ(ra.weights_before_rounding, rb.weights_before_rounding);
    ASSERT_TRUE(bool(rb.linear_input) && bool(rb.residual_to_model_basis));
    EXPECT_EQ(Logits(a, toks, &ra), Logits(b, toks, &rb));
    std::vector<float> ha(size_t(3) * c.dim), hb;
    for (size_t i = 0; i < ha.size(); ++i) ha[i] = float(i % 7) - 3.0f;
    hb = ha;
    ra.residual_to_model_basis(ha.data(), 3, c.dim);
    rb.residual_to_model_basis(hb.data(), 3, c.dim);
    EXPECT_EQ(ha, hb);
  }
}

// The learning tests' start: the outlier model, its int3:g32 problem with R4, and the Hadamard rotations.
class AlgoSpinQuantLearning : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = MakeSpinQuantProblem(fp, Linears(fp, "int3:g32"), true, &note);
    ASSERT_TRUE(p.ok()) << p.status().message();
    prob.emplace(std::move(*p));
    auto r = HadamardRotations(c, 0);
    ASSERT_TRUE(r.ok()) << r.status().message();
    rot.emplace(std::move(*r));
  }
  const ModelConfig c = SmallConfig();
  const Model fp = testing::OutlierModel(c);
  std::string note;
  std::optional<SpinQuantProblem> prob;
  std::optional<SpinRotations> rot;
};

TEST_F(AlgoSpinQuantLearning, LearnedRotationKeepsTheUnquantizedFunction) {
  // Learn with int3 in the loop, then fuse the learned R1/R2 (and R4) into the unquantized model: the
  // logits are the original model's.
  const SpinRotations start = *rot;
  const CalibrationSet calib = testing::RandomCalibration(c.vocab_size, 4, 33, 2);
  SpinQuantOptions o;
  o.iters = 8;
  o.batch = 2;
  SpinQuantLog log;
  ASSERT_TRUE(LearnRotations(*prob, calib, o, &*rot, &log).ok());
  ASSERT_EQ(log.loss.size(), 8u);
  EXPECT_GT(MaxDiff(rot->r1, start.r1), 1e-3);
  EXPECT_GT(MaxDiff(rot->r2[1], start.r2[1]), 1e-3);
  EXPECT_LT(OrthoError(rot->r1, c.dim), 1e-9);
  RotationOptions ro;
  ro.r1_matrix.assign(rot->r1.begin(), rot->r1.end());
  for (const auto& r2 : rot->r2) ro.r2_matrices.emplace_back(r2.begin(), r2.end());
  Model rotated = fp;
  std::function<void(std::string_view, float*, int, int)> r4;
  ASSERT_TRUE(RotateModel(rotated, ro, &r4, &note).ok());
  ASSERT_TRUE(bool(r4));
  ForwardHooks h;
  h.linear_input = r4;
  const std::vector<int> toks = testing::RandomCalibration(c.vocab_size, 1, 40, 9).windows[0];
  std::vector<float> la(toks.size() * c.vocab_size), lb(la.size());
  ASSERT_TRUE(ForwardWindow(fp, toks, la.data()).ok());
  ASSERT_TRUE(ForwardWindow(rotated, toks, lb.data(), &h).ok());
  double num = 0, den = 0;
  for (size_t i = 0; i < la.size(); ++i) num += double(la[i] - lb[i]) * (la[i] - lb[i]), den += double(la[i]) * la[i];
  EXPECT_LT(std::sqrt(num / den), 1e-5);
}

TEST_F(AlgoSpinQuantLearning, LearningLowersTheQuantizedLoss) {
  // One window, batch 1: every step sees the same objective, the int3-quantized network's cross-entropy
  // (straight-through gradients). After 30 steps from the Hadamard start it is lower.
  const CalibrationSet calib = testing::RandomCalibration(c.vocab_size, 1, 49, 6);
  SpinQuantOptions o;
  o.iters = 30;
  o.batch = 1;
  SpinQuantLog log;
  ASSERT_TRUE(LearnRotations(*prob, calib, o, &*rot, &log).ok());
  auto final_loss = SpinQuantLoss(*prob, *rot, calib.windows[0].data(), 1, 48, nullptr);
  ASSERT_TRUE(final_loss.ok());
  EXPECT_LT(*final_loss, log.loss.front() - 0.02) << "start " << log.loss.front() << " end " << *final_loss;
}

TEST(AlgoSpinQuant, RepeatableAndParametersChecked) {
  const ModelConfig c = SmallConfig();
  const Model fp = testing::OutlierModel(c);
  const auto schemes = Linears(fp, "int4:g32");
  const CalibrationSet calib = testing::RandomCalibration(c.vocab_size, 3, 17, 8);
  const nlohmann::json params = {{"iters", 3}, {"batch", 2}};
  Model a = fp, b = fp;
  AlgorithmRuntime ra, rb;
  ASSERT_TRUE(ApplyAlgo("spinquant", a, params, &schemes, &calib, &ra, 1).ok());
  ASSERT_TRUE(ApplyAlgo("spinquant", b, params, &schemes, &calib, &rb, 1).ok());
  for (const auto& [name, t] : a.weights) ASSERT_EQ(t.data, b.W(name).data) << name;
  EXPECT_EQ(ra.arrays, rb.arrays);
  EXPECT_EQ(ra.arrays.at("spinquant_loss").size(), 3u);
  EXPECT_EQ(ra.arrays.at("spinquant_r1").size(), size_t(c.dim) * c.dim);
  EXPECT_EQ(ra.arrays.at("spinquant_r2").size(), size_t(c.n_layers) * c.head_dim * c.head_dim);
  // A learned cell differs from the Hadamard one.
  Model h = fp;
  AlgorithmRuntime rh;
  ASSERT_TRUE(ApplyAlgo("rotation", h, nlohmann::json::object(), &schemes, &calib, &rh, 1).ok());
  EXPECT_NE(h.W("model.layers.0.self_attn.q_proj.weight").data, a.W("model.layers.0.self_attn.q_proj.weight").data);

  auto algo = FindAlgorithm("spinquant");
  ASSERT_TRUE(algo.ok());
  EXPECT_TRUE(NeedsCalibration(**algo, nlohmann::json::object()));
  EXPECT_FALSE(NeedsCalibration(**algo, {{"iters", 0}}));
  EXPECT_TRUE(NeedsCalibration(**algo, {{"iters", 0}, {"quantizer", "gptq"}}));
  Model m = fp;
  AlgorithmRuntime rt;
  Status s = ApplyAlgo("spinquant", m, {{"quantizer", "awq"}}, &schemes, &calib, &rt);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("awq"), std::string::npos) << s.message();
  s = ApplyAlgo("spinquant", m, {{"iters", -1}}, &schemes, &calib, &rt);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("iters"), std::string::npos) << s.message();
  s = ApplyAlgo("spinquant", m, nlohmann::json::object(), &schemes, nullptr, &rt);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("calibration"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ql
