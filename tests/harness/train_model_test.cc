// Whole-model checks of the trainer (harness/train/train_model.h): loss equals the inference forward's
// cross-entropy, every weight's gradient matches central finite differences on a tiny model, and the
// schedule and AdamW update match values worked out by hand.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "algo_test_util.h"
#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "harness/train/train_model.h"

namespace ql::train {
namespace {

ModelConfig TinyConfig(bool interleaved) {
  ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 2;
  c.vocab_size = 11;
  c.max_seq_len = 8;
  c.tied_embeddings = true;
  c.rope_interleaved = interleaved;
  return c;
}

std::vector<int> Tokens(int b, int t, int vocab) {  // [b, t+1]
  std::vector<int> tok(size_t(b) * (t + 1));
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = int((i * 7 + 3) % vocab);
  return tok;
}

TEST(TrainModel, LossMatchesInferenceForward) {
  for (bool interleaved : {false, true}) {
    ModelConfig c = TinyConfig(interleaved);
    c.dim = 16, c.head_dim = 4, c.hidden_dim = 24, c.vocab_size = 37, c.tied_embeddings = interleaved;
    const Model model = RandomModel(c, 5);
    const int b = 2, t = 7;
    const std::vector<int> tok = Tokens(b, t, c.vocab_size);
    double want = 0;
    for (int bi = 0; bi < b; ++bi) {
      std::vector<float> logits(size_t(t) * c.vocab_size);
      ASSERT_TRUE(ForwardWindow(model, std::span<const int>(&tok[bi * (t + 1)], t), logits.data()).ok());
      for (int i = 0; i < t; ++i) {
        const float* row = &logits[size_t(i) * c.vocab_size];
        double s = 0;
        for (int j = 0; j < c.vocab_size; ++j) s += std::exp(double(row[j]));
        want += std::log(s) - row[tok[bi * (t + 1) + i + 1]];
      }
    }
    want /= b * t;
    auto loss = LossAndGradients(model, tok.data(), b, t, nullptr);
    ASSERT_TRUE(loss.ok()) << loss.status().message();
    EXPECT_NEAR(*loss, want, 1e-4 * std::fabs(want)) << "interleaved " << interleaved;
  }
}

TEST(TrainModel, EveryGradientMatchesFiniteDifferences) {
  Model model = RandomModel(TinyConfig(false), 3);
  const int b = 2, t = 5;
  const std::vector<int> tok = Tokens(b, t, model.config.vocab_size);
  TensorMap grads = ZerosLike(model);
  ASSERT_TRUE(LossAndGradients(model, tok.data(), b, t, &grads).ok());
  const float h = 2e-3f;
  double worst = 0;
  int checked = 0;
  for (auto& [name, w] : model.weights) {
    for (size_t i = 0; i < w.data.size(); ++i) {
      const float keep = w.data[i];
      w.data[i] = keep + h;
      const double lp = *LossAndGradients(model, tok.data(), b, t, nullptr);
      w.data[i] = keep - h;
      const double lm = *LossAndGradients(model, tok.data(), b, t, nullptr);
      w.data[i] = keep;
      const double num = (lp - lm) / (2.0 * h), ana = grads.at(name).data[i];
      const double err = std::fabs(ana - num);
      worst = std::max(worst, err);
      EXPECT_NEAR(ana, num, 2e-3 + 2e-2 * std::fabs(num)) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, int(model.config.ParameterCount()));
  RecordProperty("max_abs_error", std::to_string(worst));
}

// Distillation loss: KL(teacher || model) from the trainer equals the KL computed from two independent
// inference forwards; to itself it is 0 with zero gradient; its gradient matches finite differences.
TEST(TrainModel, DistillationLossMatchesInferenceAndFiniteDifferences) {
  ModelConfig c = TinyConfig(false);
  const Model teacher = RandomModel(c, 9);
  Model student = RandomModel(c, 3);
  const int b = 2, t = 5, V = c.vocab_size;
  const std::vector<int> tok = Tokens(b, t, V);
  auto probs_of = [&](const Model& m, std::vector<std::vector<double>>* logp) {
    std::vector<float> p(size_t(b) * t * V);
    logp->clear();
    for (int bi = 0; bi < b; ++bi) {
      std::vector<float> logits(size_t(t) * V);
      QL_CHECK(ForwardWindow(m, std::span<const int>(&tok[bi * (t + 1)], t), logits.data()).ok());
      for (int i = 0; i < t; ++i) {
        double s = 0;
        for (int j = 0; j < V; ++j) s += std::exp(double(logits[size_t(i) * V + j]));
        std::vector<double> row(V);
        for (int j = 0; j < V; ++j) {
          row[j] = double(logits[size_t(i) * V + j]) - std::log(s);
          p[(size_t(bi) * t + i) * V + j] = float(std::exp(row[j]));
        }
        logp->push_back(row);
      }
    }
    return p;
  };
  std::vector<std::vector<double>> lt, ls;
  const std::vector<float> pt = probs_of(teacher, &lt);
  probs_of(student, &ls);
  double want = 0;
  for (size_t r = 0; r < lt.size(); ++r)
    for (int j = 0; j < V; ++j) want += std::exp(lt[r][j]) * (lt[r][j] - ls[r][j]);
  want /= double(lt.size());
  auto kl = LossAndGradients(student, tok.data(), b, t, nullptr, pt.data());
  ASSERT_TRUE(kl.ok()) << kl.status().message();
  EXPECT_GT(want, 1e-3);
  EXPECT_NEAR(*kl, want, 1e-4 * want + 1e-6);
  // To itself: zero loss, zero gradient.
  TensorMap g0 = ZerosLike(teacher);
  auto self = LossAndGradients(teacher, tok.data(), b, t, &g0, pt.data());
  ASSERT_TRUE(self.ok());
  EXPECT_NEAR(*self, 0.0, 1e-6);
  EXPECT_LT(GlobalNorm(g0), 1e-5);
  // Finite differences on every weight of the student.
  TensorMap grads = ZerosLike(student);
  ASSERT_TRUE(LossAndGradients(student, tok.data(), b, t, &grads, pt.data()).ok());
  const float h = 2e-3f;
  for (auto& [name, w] : student.weights)
    for (size_t i = 0; i < w.data.size(); ++i) {
      const float keep = w.data[i];
      w.data[i] = keep + h;
      const double lp = *LossAndGradients(student, tok.data(), b, t, nullptr, pt.data());
      w.data[i] = keep - h;
      const double lm = *LossAndGradients(student, tok.data(), b, t, nullptr, pt.data());
      w.data[i] = keep;
      const double num = (lp - lm) / (2.0 * h);
      EXPECT_NEAR(grads.at(name).data[i], num, 2e-3 + 2e-2 * std::fabs(num)) << name << "[" << i << "]";
    }
}

TEST(TrainModel, UntiedHeadAndInterleavedRopeGradients) {
  ModelConfig c = TinyConfig(true);
  c.tied_embeddings = false;
  c.n_layers = 1;
  Model model = RandomModel(c, 4);
  const int b = 1, t = 6;
  const std::vector<int> tok = Tokens(b, t, c.vocab_size);
  TensorMap grads = ZerosLike(model);
  ASSERT_TRUE(LossAndGradients(model, tok.data(), b, t, &grads).ok());
  const float h = 2e-3f;
  for (const char* name : {"lm_head.weight", "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.self_attn.k_proj.weight"}) {
    Tensor& w = model.W(name);
    for (size_t i = 0; i < w.data.size(); i += 3) {
      const float keep = w.data[i];
      w.data[i] = keep + h;
      const double lp = *LossAndGradients(model, tok.data(), b, t, nullptr);
      w.data[i] = keep - h;
      const double lm = *LossAndGradients(model, tok.data(), b, t, nullptr);
      w.data[i] = keep;
      const double num = (lp - lm) / (2.0 * h);
      EXPECT_NEAR(grads.at(name).data[i], num, 2e-3 + 2e-2 * std::fabs(num)) << name << "[" << i << "]";
    }
  }
}

TEST(TrainModel, RejectsBadTokens) {
  const Model model = RandomModel(TinyConfig(false), 1);
  std::vector<int> tok = Tokens(1, 4, 11);
  tok[2] = 11;
  EXPECT_FALSE(LossAndGradients(model, tok.data(), 1, 4, nullptr).ok());
  std::vector<int> longer = Tokens(1, 9, 11);  // 9 > max_seq_len 8
  EXPECT_FALSE(LossAndGradients(model, longer.data(), 1, 9, nullptr).ok());
}

TEST(TrainSchedule, WarmupThenCosine) {
  ScheduleOptions o{.total_steps = 11, .warmup_steps = 2, .max_lr = 1.0f, .min_lr = 0.1f};
  EXPECT_FLOAT_EQ(LearningRate(0, o), 0.5f);
  EXPECT_FLOAT_EQ(LearningRate(1, o), 1.0f);
  EXPECT_FLOAT_EQ(LearningRate(2, o), 1.0f);    // cosine starts at max
  EXPECT_NEAR(LearningRate(6, o), 0.55f, 1e-6);  // halfway (4 of 8): (max + min) / 2
  EXPECT_FLOAT_EQ(LearningRate(10, o), 0.1f);
  EXPECT_FLOAT_EQ(LearningRate(50, o), 0.1f);
}

TEST(TrainAdamW, OneStepByHand) {
  Model model;
  model.weights["w"] = Tensor{{1, 2}, {1.0f, -2.0f}};
  model.weights["norm"] = Tensor{{2}, {1.0f, 1.0f}};
  TensorMap g;
  g["w"] = Tensor{{1, 2}, {0.5f, 0.0f}};
  g["norm"] = Tensor{{2}, {-1.0f, 2.0f}};
  AdamWState s = NewAdamW(model);
  AdamWOptions o{.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f};
  AdamWStep(&model, g, 0.01f, o, &s);
  // Step 1: bias-corrected m/sqrt(v) = sign(g) (0 for g = 0); decay only on the matrix.
  EXPECT_NEAR(model.weights["w"].data[0], 1.0f - 0.01f * (1.0f + 0.1f * 1.0f), 1e-6);
  EXPECT_NEAR(model.weights["w"].data[1], -2.0f - 0.01f * (0.1f * -2.0f), 1e-6);  // g = 0: only decay
  EXPECT_NEAR(model.weights["norm"].data[0], 1.0f + 0.01f, 1e-6);
  EXPECT_NEAR(model.weights["norm"].data[1], 1.0f - 0.01f, 1e-6);
  EXPECT_NEAR(s.m["norm"].data[1], 0.2f, 1e-6);
  EXPECT_NEAR(s.v["norm"].data[1], 0.04f, 1e-6);
}

TEST(TrainClip, GlobalNorm) {
  TensorMap g;
  g["a"] = Tensor{{2}, {3.0f, 0.0f}};
  g["b"] = Tensor{{1, 1}, {4.0f}};
  EXPECT_DOUBLE_EQ(GlobalNorm(g), 5.0);
  ScaleAll(&g, 0.5f);
  EXPECT_DOUBLE_EQ(GlobalNorm(g), 2.5);
}

}  // namespace
}  // namespace ql::train
