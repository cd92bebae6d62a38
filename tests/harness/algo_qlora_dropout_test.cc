// Tests of LoRA dropout (harness/quant/lora_dropout.h, qlora's `dropout`): the adapter path's gradients against
// central finite differences with the mask held fixed; the mask is seeded, drops about p and scales by 1/(1-p);
// at p = 0 the path is the fold's function and gradients; training with dropout is bitwise the same on 1 and
// 2 threads; `dropout: 0` and an omitted dropout are one parameter set.
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "algo_test_util.h"
#include "stories_finetune_fixture.h"
#include "harness/model/random_model.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/lora_dropout.h"
#include "harness/quant/qlora.h"
#include "harness/train/train_model.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

// Two adapters (rank 2) with random A and B, as the trainable model LoraDropoutPath reads.
struct Adapters {
  std::vector<std::string> names = {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"};
  Model trainable;
  train::TensorMap grads;
  explicit Adapters(const Model& model) {
    for (size_t k = 0; k < names.size(); ++k) {
      const Tensor& w = model.W(names[k]);
      trainable.weights[names[k] + ".A"] = Tensor{{2, w.cols()}, testing::Gaussian(size_t(2 * w.cols()), 10 + k, 0.3f)};
      trainable.weights[names[k] + ".B"] = Tensor{{w.rows(), 2}, testing::Gaussian(size_t(2 * w.rows()), 20 + k, 0.3f)};
    }
    grads = train::ZerosLike(trainable);
  }
};

std::vector<int> Tokens(int b, int t) {
  std::vector<int> tok(size_t(b) * (t + 1));
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = int((i * 7 + 3) % 11);
  return tok;
}

// dL/dA and dL/dB of the path (p = 0.3, step 3) against central differences of the loss with the same masks:
// every adapter entry of both adapters, the base weights frozen (an empty gradient map).
TEST(QloraDropout, PathGradientsMatchFiniteDifferencesWithAFixedMask) {
  const Model model = RandomModel(testing::LoraTinyConfig(), 4);
  Adapters ad(model);
  LoraDropoutPath path(&ad.trainable, &ad.grads, 1.5f, 0.3, 5);
  path.SetStep(3);
  const int b = 2, t = 5;
  const std::vector<int> tok = Tokens(b, t);
  train::TensorMap frozen;
  auto loss = [&](bool grads) {
    auto l = train::LossAndGradients(model, tok.data(), b, t, grads ? &frozen : nullptr, nullptr, &path);
    QL_CHECK(l.ok(), "{}", l.status().message());
    return *l;
  };
  const double l0 = loss(true);
  EXPECT_TRUE(frozen.empty());
  const float h = 2e-3f;
  int checked = 0;
  for (auto& [name, tensor] : ad.trainable.weights) {
    const std::vector<float> ana = ad.grads.at(name).data;
    for (size_t i = 0; i < tensor.data.size(); ++i) {
      const float keep = tensor.data[i];
      tensor.data[i] = keep + h;
      const double lp = loss(false);
      tensor.data[i] = keep - h;
      const double lm = loss(false);
      tensor.data[i] = keep;
      const double num = (lp - lm) / (2.0 * h);
      EXPECT_NEAR(ana[i], num, 2e-3 + 2e-2 * std::fabs(num)) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * (8 + 8) + 2 * (12 + 8));  // rank 2 · (in + out) per adapter
  // The masks matter: another step's masks give another loss.
  path.SetStep(4);
  EXPECT_GT(std::fabs(loss(false) - l0), 1e-6);
}

TEST(QloraDropout, MaskIsSeededDropsAboutPAndScalesTheRest) {
  Model none;
  train::TensorMap g;
  const double p = 0.3;
  const int n = 64, in = 100;
  const std::vector<float> ones(size_t(n) * in, 1.0f);
  auto drop = [&](uint64_t seed, int64_t step, const std::string& w) {
    LoraDropoutPath path(&none, &g, 1.0f, p, seed);
    path.SetStep(step);
    std::vector<float> out(ones.size());
    path.Drop(w, ones.data(), n, in, out.data());
    return out;
  };
  const std::vector<float> m = drop(1, 0, "a");
  int zeros = 0;
  for (float v : m) {
    if (v == 0.0f) ++zeros;
    else EXPECT_EQ(v, float(1.0 / (1.0 - p)));
  }
  const double frac = double(zeros) / m.size(), sd = std::sqrt(p * (1 - p) / m.size());
  EXPECT_NEAR(frac, p, 4 * sd);
  EXPECT_EQ(m, drop(1, 0, "a"));
  EXPECT_NE(m, drop(2, 0, "a"));
  EXPECT_NE(m, drop(1, 1, "a"));
  EXPECT_NE(m, drop(1, 0, "b"));
}

// At p = 0 the path computes what folding the adapters into W computes: the same loss and the same adapter
// gradients (via LoraBackward on dL/dW_eff), up to fp32 summation order.
TEST(QloraDropout, ZeroDropoutPathIsTheFold) {
  Model model = RandomModel(testing::LoraTinyConfig(), 4);
  Adapters ad(model);
  const float scale = 1.5f;
  LoraDropoutPath path(&ad.trainable, &ad.grads, scale, 0.0, 5);
  const int b = 2, t = 5;
  const std::vector<int> tok = Tokens(b, t);
  train::TensorMap frozen;
  auto lpath = train::LossAndGradients(model, tok.data(), b, t, &frozen, nullptr, &path);
  ASSERT_TRUE(lpath.ok());
  Model folded = model;
  std::map<std::string, LoraAdapter> lora;
  for (const auto& n : ad.names) {
    const Tensor& w = model.W(n);
    lora[n] = LoraAdapter{2, int(w.cols()), int(w.rows()), ad.trainable.W(n + ".A").data, ad.trainable.W(n + ".B").data};
    LoraEffectiveWeight(w.data.data(), lora[n], scale, folded.W(n).data.data());
  }
  train::TensorMap grads = train::ZerosLike(folded);
  auto lfold = train::LossAndGradients(folded, tok.data(), b, t, &grads);
  ASSERT_TRUE(lfold.ok());
  EXPECT_NEAR(*lpath, *lfold, 1e-6 * std::fabs(*lfold));
  for (const auto& n : ad.names) {
    const LoraAdapter& a = lora[n];
    std::vector<float> da(a.a.size(), 0.0f), db(a.b.size(), 0.0f);
    LoraBackward(grads.at(n).data.data(), a, scale, da.data(), db.data());
    for (auto [want, got] : {std::pair{&da, &ad.grads.at(n + ".A").data}, std::pair{&db, &ad.grads.at(n + ".B").data}})
      for (size_t i = 0; i < want->size(); ++i) EXPECT_NEAR((*got)[i], (*want)[i], 1e-5 + 1e-4 * std::fabs((*want)[i])) << n << " " << i;
  }
}

// A shape whose products are split over threads (tests/harness/train_threads_test.cc's).
ModelConfig ThreadConfig() {
  ModelConfig c;
  c.dim = 96, c.hidden_dim = 200, c.n_layers = 2, c.n_heads = 6, c.n_kv_heads = 2, c.head_dim = 16;
  c.vocab_size = 301, c.max_seq_len = 64, c.tied_embeddings = false;
  return c;
}

Model TrainedWithDropout(int threads, double dropout) {
  SetNumThreads(threads);
  Model m = RandomModel(ThreadConfig(), 3);
  QloraOptions o;
  o.steps = 3, o.batch = 2, o.lr = 1e-2, o.warmup = 1, o.dropout = dropout, o.seed = 7;
  const auto weights = testing::AllLinearsExceptHead(m, "int4:g32");
  const Status st = RunQlora(m, weights, testing::RandomCalibration(301, 4, 41, 2), o, nullptr);
  EXPECT_TRUE(st.ok()) << st.message();
  SetNumThreads(0);
  return m;
}

TEST(QloraDropout, TrainingIsBitwiseTheSameOnOneAndTwoThreads) {
  const Model one = TrainedWithDropout(1, 0.1), two = TrainedWithDropout(2, 0.1);
  const Model plain = TrainedWithDropout(1, 0.0);
  const std::string probe = "model.layers.1.self_attn.v_proj.weight";
  for (const auto& [name, w] : one.weights)
    EXPECT_EQ(std::memcmp(w.data.data(), two.W(name).data.data(), w.data.size() * sizeof(float)), 0) << name;
  EXPECT_NE(one.W(probe).data, plain.W(probe).data) << "dropout changed nothing";
}

TEST(QloraDropout, ZeroIsTheDefaultParameterSet) {
  auto algo = FindAlgorithm("qlora");
  ASSERT_TRUE(algo.ok());
  auto omitted = ResolveAlgorithmParams(**algo, nlohmann::json::object());
  auto zero = ResolveAlgorithmParams(**algo, nlohmann::json{{"dropout", 0}});  // YAML's `dropout: 0` is an integer
  auto set = ResolveAlgorithmParams(**algo, nlohmann::json{{"dropout", 0.05}});
  ASSERT_TRUE(omitted.ok() && zero.ok() && set.ok());
  EXPECT_EQ(omitted->dump(), zero->dump());
  EXPECT_NE(omitted->dump(), set->dump());
}

}  // namespace
}  // namespace ql
