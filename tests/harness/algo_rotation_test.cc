// Hadamard constructions (kernels/hadamard.h) and the rotation algorithm (harness/quant/rotation.h):
// H·Hᵀ = n·I for the constructed orders, the K·2^m transform is orthogonal and matches its explicit
// matrix, a rotated model computes the same logits, rotation flattens outlier channels (kurtosis), and
// sizes without a construction (172 = stories260K's FFN) give an error naming the size; rotation + GPTQ
// (calibrated on the rotated model with R4 online) beats rotation + RTN; per-layer errors of a rotated
// model are compared in its own basis and with the evaluation hooks.
#include <cmath>
#include "tests/test_paths.h"
#include <vector>

#include <gtest/gtest.h>

#include "harness/eval/evaluator.h"
#include "datasets/protocol.h"
#include "harness/io/load.h"
#include "harness/model/forward.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/calibration.h"
#include "harness/quant/rotation.h"
#include "kernels/hadamard.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"
#include "tests/harness/algo_test_util.h"

namespace ql {
namespace {

TEST(AlgoRotation, HadamardMatricesAreHadamard) {
  // Paley over prime fields (12, 20, 36, 44, 60, 76, 108, 140, 148), over GF(p^e) (28 = 27+1,
  // 52 = 2·(25+1), 100 = 2·(49+1), 244 = 243+1, 344 = 343+1) and Kronecker products (40, 56, 144).
  for (int k : {1, 2, 4, 8, 12, 20, 28, 36, 40, 44, 52, 56, 60, 76, 100, 108, 140, 144, 148, 244, 344}) {
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
  for (int k : {156, 172, 6, 86}) {  // Williamson-type (156, 172); not a Hadamard order (6, 86)
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


// Every linear of a model at one scheme (what the runner's plan gives when nothing is ignored but the
// head).
std::vector<std::pair<std::string, std::string>> AllLinears(const Model& m, const std::string& scheme) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& mod : m.LinearModules())
    if (mod != "lm_head") out.emplace_back(mod, scheme);
  return out;
}

Status ApplyRotationAlgo(Model& m, const nlohmann::json& params,
                         const std::vector<std::pair<std::string, std::string>>* schemes,
                         const CalibrationSet* calib, AlgorithmRuntime* rt) {
  auto algo = FindAlgorithm("rotation");
  QL_CHECK(algo.ok(), "rotation registered");
  AlgorithmContext ctx;
  ctx.module_schemes = schemes;
  ctx.params = params;
  ctx.calibration = calib;
  ctx.runtime = rt;
  return (*algo)->apply(m, ctx);
}

ForwardHooks RuntimeHooks(const AlgorithmRuntime& rt) {
  ForwardHooks h;
  if (rt.linear_input)
    h.linear_input = [&rt](std::string_view p, float* x, int T, int in) { rt.linear_input(p, x, T, in); };
  return h;
}

TEST(AlgoRotation, CalibrationNeedDependsOnQuantizer) {
  auto algo = FindAlgorithm("rotation");
  ASSERT_TRUE(algo.ok());
  EXPECT_FALSE(NeedsCalibration(**algo, nlohmann::json::object()));
  EXPECT_FALSE(NeedsCalibration(**algo, {{"quantizer", "rtn"}}));
  EXPECT_TRUE(NeedsCalibration(**algo, {{"quantizer", "gptq"}}));
  EXPECT_TRUE(NeedsCalibration(**FindAlgorithm("gptq"), nlohmann::json::object()));
  EXPECT_FALSE(NeedsCalibration(**FindAlgorithm("rtn"), nlohmann::json()));
  Model m = RandomModel(Stories260KConfig(), 1);
  AlgorithmRuntime rt;
  const auto schemes = AllLinears(m, "int4:g32");
  Status s = ApplyRotationAlgo(m, {{"quantizer", "gptq"}}, &schemes, nullptr, &rt);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("calibration"), std::string::npos) << s.message();
  s = ApplyRotationAlgo(m, {{"quantizer", "awq"}}, &schemes, nullptr, &rt);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("awq"), std::string::npos) << s.message();
  s = ApplyRotationAlgo(m, {{"quantizer", "gptq"}, {"gptq", {{"no_such", 1}}}}, &schemes,
                        nullptr, &rt);
  EXPECT_FALSE(s.ok());
}

TEST(AlgoRotation, CaptureRunsTheOnlineTransform) {
  // CaptureRequest::transform runs before recording: doubling every input quadruples XᵀX.
  const Model m = RandomModel(Stories260KConfig(), 2);
  const CalibrationSet calib = testing::RandomCalibration(m.config.vocab_size, 1, 16, 3);
  CaptureRequest req;
  req.hessian = true;
  req.modules = {"model.layers.0.mlp.down_proj"};
  auto plain = CaptureLinearStats(m, calib, req);
  req.transform = [](std::string_view p, float* x, int T, int in) {
    if (p.ends_with("down_proj"))
      for (int i = 0; i < T * in; ++i) x[i] *= 2;
    return false;
  };
  auto doubled = CaptureLinearStats(m, calib, req);
  ASSERT_TRUE(plain.ok() && doubled.ok());
  const auto& a = plain->at("model.layers.0.mlp.down_proj").xtx;
  const auto& b = doubled->at("model.layers.0.mlp.down_proj").xtx;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i += 97) EXPECT_NEAR(b[i], 4 * a[i], 1e-6 * (1 + std::fabs(a[i])));
}

TEST(AlgoRotation, GptqOnRotatedModelBeatsRtn) {
  // Rotation (R1, R2, and R4 since FFN 96 = 12·8) then int3:g32 by RTN vs by GPTQ calibrated on the
  // rotated model: GPTQ minimizes each layer's output error on the calibration inputs, so the logits
  // on those windows are closer to the unquantized model's.
  ModelConfig c = Stories260KConfig();
  c.hidden_dim = 96;
  const Model fp = testing::OutlierModel(c);
  const CalibrationSet calib = testing::RandomCalibration(c.vocab_size, 4, 48, 5);
  const auto schemes = AllLinears(fp, "int3:g32");
  Model rtn = fp, gptq = fp;
  AlgorithmRuntime rt_rtn, rt_gptq;
  ASSERT_TRUE(ApplyRotationAlgo(rtn, nlohmann::json::object(), &schemes, &calib, &rt_rtn).ok());
  const Status s = ApplyRotationAlgo(gptq, {{"quantizer", "gptq"}, {"gptq", {{"percdamp", 0.01}}}}, &schemes,
                                     &calib, &rt_gptq);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(bool(rt_gptq.linear_input));  // R4 online
  // Per-tensor errors are taken against the rotated, unrounded weights the algorithm leaves: int3:g32
  // RTN is ~13 dB SQNR there, while against the original (unrotated) weights it is below 3 dB.
  ASSERT_EQ(rt_rtn.weights_before_rounding.size(), schemes.size());
  const std::string q0 = "model.layers.0.self_attn.q_proj.weight";
  const auto sq = [](const std::vector<float>& ref, const std::vector<float>& q) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) num += double(ref[i] - q[i]) * (ref[i] - q[i]), den += double(ref[i]) * ref[i];
    return 10 * std::log10(den / num);
  };
  EXPECT_GT(sq(rt_rtn.weights_before_rounding.at(q0), rtn.W(q0).data), 10.0);
  EXPECT_LT(sq(fp.W(q0).data, rtn.W(q0).data), 3.0);
  const ForwardHooks h_rtn = RuntimeHooks(rt_rtn), h_gptq = RuntimeHooks(rt_gptq);
  const double e_rtn = testing::LogitMse(fp, rtn, calib, &h_rtn), e_gptq = testing::LogitMse(fp, gptq, calib, &h_gptq);
  EXPECT_GT(e_rtn, 0.0);
  EXPECT_LT(e_gptq, 0.8 * e_rtn) << "rotation+gptq " << e_gptq << " vs rotation+rtn " << e_rtn;
  // GPTQ's calibration must run the online R4: without it the rotated model is a different function.
  const double e_gptq_no_r4 = testing::LogitMse(fp, gptq, calib, nullptr);
  EXPECT_GT(e_gptq_no_r4, 10 * e_gptq);
}

std::vector<Window> TestWindows(int vocab, int n, int T, uint64_t seed) {
  const CalibrationSet c = testing::RandomCalibration(vocab, n, T, seed);
  std::vector<Window> w;
  for (const auto& t : c.windows) w.push_back({t, T / 2, T, 0});
  return w;
}

TEST(AlgoRotation, LayerErrorsInTheRotatedBasis) {
  ModelConfig c = Stories260KConfig();
  c.hidden_dim = 96;  // R4 active: the hooks matter
  const Model fp = testing::OutlierModel(c);
  Model rot = fp;
  AlgorithmRuntime rt;
  const std::vector<std::pair<std::string, std::string>> none;  // rotate, quantize nothing
  ASSERT_TRUE(ApplyRotationAlgo(rot, nlohmann::json::object(), &none, nullptr, &rt).ok());
  ASSERT_TRUE(bool(rt.residual_to_model_basis));
  ASSERT_TRUE(bool(rt.linear_input));
  const auto windows = TestWindows(c.vocab_size, 2, 32, 8);
  const ForwardHooks hooks = RuntimeHooks(rt);
  auto same = LayerOutputErrors(fp, rot, windows, 0, &hooks, rt.residual_to_model_basis);
  ASSERT_TRUE(same.ok());
  ASSERT_EQ(same->size(), size_t(c.n_layers));
  for (const auto& e : *same) EXPECT_LE(e.rel_mse, 1e-6);
  // Compared in different bases (the old behaviour) the "error" is of order 1.
  auto other_basis = LayerOutputErrors(fp, rot, windows, 0, &hooks, {});
  ASSERT_TRUE(other_basis.ok());
  for (const auto& e : *other_basis) EXPECT_GT(e.rel_mse, 0.1);
  // Without the online R4 the last layers differ although no weight is quantized.
  auto no_hooks = LayerOutputErrors(fp, rot, windows, 0, nullptr, rt.residual_to_model_basis);
  ASSERT_TRUE(no_hooks.ok());
  EXPECT_GT(no_hooks->back().rel_mse, 1e-3);
  // An activation hook (int4 per token on every linear input after R4) shows up in the errors.
  ForwardHooks act = hooks;
  auto scheme = ParseScheme("int4:token");
  ASSERT_TRUE(scheme.ok());
  act.linear_input = [&](std::string_view p, float* x, int T, int in) {
    rt.linear_input(p, x, T, in);
    std::vector<float> q(size_t(T) * in);
    QL_CHECK(FakeQuantize(*scheme, x, T, in, q.data()).ok(), "fq");
    std::copy(q.begin(), q.end(), x);
  };
  auto with_act = LayerOutputErrors(fp, rot, windows, 0, &act, rt.residual_to_model_basis);
  ASSERT_TRUE(with_act.ok());
  for (const auto& e : *with_act) EXPECT_GT(e.rel_mse, 1e-4);
}

}  // namespace
}  // namespace ql
