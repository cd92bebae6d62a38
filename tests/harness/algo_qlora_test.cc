// Tests of QLoRA (harness/quant/qlora.h): adapter gradients against central finite differences of the
// trainer's loss; zero adapters leave the quantized base bit for bit; the folded (merged, not re-quantized)
// weights give the two-matmul unmerged output; training on stories260K lowers the held-out loss below RTN's;
// memory is counted; bad parameters are errors.
#include <cblas.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "algo_test_util.h"
#include "stories_finetune_fixture.h"
#include "harness/io/file_io.h"
#include "harness/io/llama2c.h"
#include "harness/model/random_model.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/calibration.h"
#include "harness/quant/qlora.h"
#include "harness/quant/quant_util.h"
#include "harness/tokenizer/tokenizer.h"
#include "harness/train/train_loop.h"
#include "harness/train/train_model.h"
#include "harness/train/train_ops.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

LoraAdapter RandomAdapter(int rank, int in, int out, uint64_t seed) {
  LoraAdapter ad{rank, in, out, testing::Gaussian(size_t(rank) * in, seed, 0.3f),
                 testing::Gaussian(size_t(out) * rank, seed + 1, 0.3f)};
  return ad;
}

// d loss / d A and d loss / d B from LoraBackward on the trainer's dL/dW_eff, against central differences
// of the loss with W_eff refolded, for every adapter entry (two adapters, rank 2, scale 1.5).
TEST(Qlora, AdapterGradientsMatchFiniteDifferences) {
  Model model = RandomModel(testing::LoraTinyConfig(), 4);
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"};
  std::map<std::string, std::vector<float>> base;
  std::map<std::string, LoraAdapter> ad;
  for (size_t k = 0; k < names.size(); ++k) {
    const Tensor& w = model.W(names[k]);
    base[names[k]] = w.data;
    ad[names[k]] = RandomAdapter(2, int(w.cols()), int(w.rows()), 10 + k);
  }
  const float scale = 1.5f;
  const int b = 2, t = 5;
  std::vector<int> tok(size_t(b) * (t + 1));
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = int((i * 7 + 3) % 11);
  auto loss = [&](train::TensorMap* grads) {
    for (const auto& n : names) LoraEffectiveWeight(base[n].data(), ad[n], scale, model.W(n).data.data());
    auto l = train::LossAndGradients(model, tok.data(), b, t, grads);
    QL_CHECK(l.ok(), "{}", l.status().message());
    return *l;
  };
  train::TensorMap grads = train::ZerosLike(model);
  loss(&grads);
  const float h = 2e-3f;
  int checked = 0;
  for (const auto& n : names) {
    LoraAdapter& a = ad[n];
    std::vector<float> da(a.a.size(), 0.0f), db(a.b.size(), 0.0f);
    LoraBackward(grads.at(n).data.data(), a, scale, da.data(), db.data());
    for (auto [vec, ana] : {std::pair{&a.a, &da}, std::pair{&a.b, &db}})
      for (size_t i = 0; i < vec->size(); ++i) {
        const float keep = (*vec)[i];
        (*vec)[i] = keep + h;
        const double lp = loss(nullptr);
        (*vec)[i] = keep - h;
        const double lm = loss(nullptr);
        (*vec)[i] = keep;
        const double num = (lp - lm) / (2.0 * h);
        EXPECT_NEAR((*ana)[i], num, 2e-3 + 2e-2 * std::fabs(num)) << n << (vec == &a.a ? " A[" : " B[") << i << "]";
        ++checked;
      }
  }
  EXPECT_EQ(checked, 2 * (8 + 8) + 2 * (12 + 8));  // rank 2 · (in + out) per adapter
}

TEST(Qlora, ZeroAdapterIsTheBaseBitForBit) {
  const std::vector<float> base = testing::Gaussian(24 * 40, 3);
  LoraAdapter ad = RandomAdapter(4, 40, 24, 5);
  std::fill(ad.b.begin(), ad.b.end(), 0.0f);
  std::vector<float> w(base.size());
  LoraEffectiveWeight(base.data(), ad, 2.0f, w.data());
  EXPECT_EQ(0, std::memcmp(w.data(), base.data(), base.size() * sizeof(float)));
}

// Merged (folded, before re-quantization) against unmerged: y = x·W_effᵀ vs x·Q(W)ᵀ + s·(x·Aᵀ)·Bᵀ, both fp32
// cblas products; they differ only in fp32 summation order: max |Δy| <= 1e-5 · max |y|.
TEST(Qlora, MergedEqualsUnmergedBeforeRequantization) {
  const int in = 96, out = 40, n = 17, r = 8;
  const std::vector<float> x = testing::Gaussian(size_t(n) * in, 1);
  std::vector<float> base = testing::Gaussian(size_t(out) * in, 2, 0.1f);
  auto scheme = ParseScheme("nf4");
  ASSERT_TRUE(scheme.ok());
  ASSERT_TRUE(FakeQuantize(*scheme, base.data(), out, in, base.data()).ok());
  LoraAdapter ad = RandomAdapter(r, in, out, 7);
  RoundAdapterToBf16(&ad);
  const float s = 2.0f;
  std::vector<float> w_eff(base.size()), y1(size_t(n) * out), y2(size_t(n) * out), xa(size_t(n) * r), xab(size_t(n) * out);
  LoraEffectiveWeight(base.data(), ad, s, w_eff.data());
  train::LinearForward(x.data(), w_eff.data(), n, in, out, y1.data());
  train::LinearForward(x.data(), base.data(), n, in, out, y2.data());
  train::LinearForward(x.data(), ad.a.data(), n, in, r, xa.data());
  train::LinearForward(xa.data(), ad.b.data(), n, r, out, xab.data());
  double ymax = 0, dmax = 0;
  for (size_t i = 0; i < y1.size(); ++i) {
    const double u = double(y2[i]) + double(s) * xab[i];
    ymax = std::max(ymax, std::fabs(u));
    dmax = std::max(dmax, std::fabs(u - y1[i]));
  }
  EXPECT_LE(dmax, 1e-5 * ymax) << "max |y| " << ymax;
  EXPECT_GT(dmax, 0.0) << "the adapter path must be non-trivial";
}

using Fixture = testing::StoriesFinetune;
const Fixture& Get() { return testing::GetStoriesFinetune(); }
double Heldout(const Model& m) { return testing::StoriesHeldout(m); }
std::map<std::string, std::string> AllLinears(const Model& m, const std::string& scheme) {
  return testing::AllLinearsExceptHead(m, scheme);
}

TEST(Qlora, ZeroStepsIsRoundToNearestBitForBit) {
  Model m = RandomModel(Stories260KConfig(), 9);
  const auto weights = AllLinears(m, "nf4:dq");
  Model q = m;
  QloraOptions o;
  o.steps = 0;
  QloraLog log;
  ASSERT_TRUE(RunQlora(q, weights, testing::RandomCalibration(512, 4, 17, 1), o, &log).ok());
  for (const auto& [name, s] : weights) {
    const Tensor& w = m.W(name);
    std::vector<float> want(w.data.size());
    ASSERT_TRUE(FakeQuantize(*ParseScheme(s), w.data.data(), w.rows(), w.cols(), want.data()).ok());
    EXPECT_EQ(0, std::memcmp(want.data(), q.W(name).data.data(), want.size() * sizeof(float))) << name;
  }
  // Memory: rank 8 · (in + out) per linear, 2 bytes each in BF16; training state 16 bytes per parameter.
  const ModelConfig& c = m.config;
  const int64_t per_layer = 8 * ((c.dim + c.n_heads * c.head_dim) + 2 * (c.dim + c.n_kv_heads * c.head_dim) +
                                 (c.n_heads * c.head_dim + c.dim) + 2 * (c.dim + c.hidden_dim) + (c.hidden_dim + c.dim));
  EXPECT_EQ(log.adapter_params, per_layer * c.n_layers);
  EXPECT_EQ(log.adapter_bytes, 2 * log.adapter_params);
  EXPECT_EQ(log.training_state_bytes, 16 * log.adapter_params);
}

// LoftQ: the residual ‖W − Q − s·B·A‖_F never rises over the alternations and the first one already lowers it
// (rank 4 of a [48, 64] weight with outliers, int3:g32 and nf4); 0 iterations are the plain init bit for bit; a
// 0-step RunQlora from LoftQ leaves weights closer to the unquantized ones than from the plain init.
TEST(Qlora, LoftqResidualNonIncreasingAndZeroIterationsArePlainInit) {
  // One OpenBLAS thread for the SVDs, as the quantlab binary runs (harness/cli/main.cc): on a loaded machine
  // its spinning threads made this 26 s instead of 1 s.
  const int blas = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::vector<float> w = testing::Gaussian(48 * 64, 5, 0.05f);
  for (size_t i = 0; i < w.size(); i += 97) w[i] *= 8.0f;
  for (const char* text : {"int3:g32", "nf4"}) {
    SCOPED_TRACE(text);
    const Scheme s = *ParseScheme(text);
    const LoraAdapter plain = InitLoraAdapter(4, 64, 48, 3, "w");
    std::vector<float> q0, q, want(w.size());
    LoraAdapter ad0 = plain, ad = plain;
    std::vector<double> trace0, trace;
    ASSERT_TRUE(LoftqInit(s, w.data(), 2.0f, 0, &q0, &ad0, &trace0).ok());
    ASSERT_TRUE(FakeQuantize(s, w.data(), 48, 64, want.data()).ok());
    EXPECT_EQ(q0, want);
    EXPECT_EQ(ad0.a, plain.a);
    EXPECT_EQ(ad0.b, plain.b);
    ASSERT_TRUE(LoftqInit(s, w.data(), 2.0f, 5, &q, &ad, &trace).ok());
    ASSERT_EQ(trace.size(), 6u);
    EXPECT_EQ(trace[0], trace0[0]);  // ‖W − Q(W)‖ before the first alternation
    EXPECT_LT(trace[1], 0.95 * trace[0]);
    for (size_t i = 1; i < trace.size(); ++i) EXPECT_LE(trace[i], trace[i - 1] * (1 + 1e-6)) << i;
  }
  Model m = RandomModel(testing::LoraTinyConfig(), 4);
  const auto weights = AllLinears(m, "int4:g32");
  QloraOptions o;
  o.steps = 0;
  Model a = m, b = m;
  ASSERT_TRUE(RunQlora(a, weights, testing::RandomCalibration(11, 2, 9, 1), o, nullptr).ok());
  o.loftq_iters = 2;
  ASSERT_TRUE(RunQlora(b, weights, testing::RandomCalibration(11, 2, 9, 1), o, nullptr).ok());
  double ea = 0, eb = 0;  // LoftQ's base + adapters are closer to the unquantized weights
  for (const auto& [name, sch] : weights)
    for (size_t i = 0; i < m.W(name).data.size(); ++i) {
      ea += std::pow(m.W(name).data[i] - a.W(name).data[i], 2);
      eb += std::pow(m.W(name).data[i] - b.W(name).data[i], 2);
    }
  EXPECT_LT(eb, ea);
  openblas_set_num_threads(blas);
}

// 40 steps (4 windows each) of adapters on an int3:g32 base: the training loss falls and the held-out loss ends below
// round-to-nearest's; the merged variant is the unmerged weights re-quantized.
TEST(Qlora, TrainingLowersTheHeldoutLossBelowRtn) {
  const Fixture& f = Get();
  const auto weights = AllLinears(f.model, "int3:g32");
  Model rtn = f.model;
  QloraOptions o;
  o.steps = 0;
  ASSERT_TRUE(RunQlora(rtn, weights, f.calib, o, nullptr).ok());
  o.steps = 40;
  o.batch = 4;
  o.lr = 2e-3;
  Model tuned = f.model;
  QloraLog log;
  ASSERT_TRUE(RunQlora(tuned, weights, f.calib, o, &log).ok());
  ASSERT_EQ(log.loss.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += log.loss[i], last += log.loss[35 + i];
  EXPECT_LT(last, first);
  const double l_rtn = Heldout(rtn), l_tuned = Heldout(tuned);
  EXPECT_LT(l_tuned, l_rtn - 0.01) << "rtn " << l_rtn << " qlora " << l_tuned;
  RecordProperty("heldout_rtn", std::to_string(l_rtn));
  RecordProperty("heldout_qlora", std::to_string(l_tuned));

  o.merge = true;
  Model merged = f.model;
  ASSERT_TRUE(RunQlora(merged, weights, f.calib, o, &log).ok());
  EXPECT_EQ(log.adapter_bytes, 0);
  for (const auto& [name, s] : weights) {  // merged = Q(unmerged): same training, re-quantized
    const Tensor& w = tuned.W(name);
    std::vector<float> want(w.data.size());
    ASSERT_TRUE(FakeQuantize(*ParseScheme(s), w.data.data(), w.rows(), w.cols(), want.data()).ok());
    EXPECT_EQ(0, std::memcmp(want.data(), merged.W(name).data.data(), want.size() * sizeof(float))) << name;
  }
}

TEST(Qlora, BadParametersAreErrors) {
  Model m = RandomModel(Stories260KConfig(), 9);
  const CalibrationSet calib = testing::RandomCalibration(512, 2, 9, 1);
  std::vector<std::pair<std::string, std::string>> ms = {{"model.layers.0.mlp.up_proj", "nf4"}};
  AlgorithmContext ctx;
  ctx.module_schemes = &ms;
  ctx.calibration = &calib;
  auto algo = FindAlgorithm("qlora");
  ASSERT_TRUE(algo.ok());
  for (const auto& [params, want] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{{"dropout", 1.0}}, "dropout 1"}, {{{"targets", "qkv"}}, "target 'qkv'"},
           {{{"targets", "q_proj"}}, "match none"}, {{{"loss", "mse"}}, "loss 'mse'"}, {{{"rank", 0}}, "rank 0"}}) {
    ctx.params = params;
    Model w = m;
    const Status st = (*algo)->apply(w, ctx);
    ASSERT_FALSE(st.ok()) << params.dump();
    EXPECT_NE(st.message().find(want), std::string::npos) << st.message();
  }
}

}  // namespace
}  // namespace ql
