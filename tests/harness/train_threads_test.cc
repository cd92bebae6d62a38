// The trainer's step is bitwise the same on 1 and 2 threads (harness/train/train_ops.cc: fixed GEMM
// tiles, attention items per (sequence, KV head)), on a shape whose products are split over threads.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "harness/train/train_model.h"
#include "kernels/parallel.h"

namespace ql::train {
namespace {

ModelConfig Config() {
  ModelConfig c;
  c.dim = 96;
  c.hidden_dim = 200;
  c.n_layers = 2;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 301;
  c.max_seq_len = 64;
  c.tied_embeddings = false;
  return c;
}

struct Step {
  double loss = 0;
  Model after;
};

// Two AdamW steps from a fixed start on `threads` threads.
Step TwoSteps(int threads) {
  SetNumThreads(threads);
  Step s;
  s.after = InitModel(Config(), 7);
  const int b = 3, t = 61;
  std::vector<int> tok(size_t(b) * (t + 1));
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = int((i * 37 + 11) % 301);
  AdamWState st = NewAdamW(s.after);
  for (int step = 0; step < 2; ++step) {
    TensorMap g = ZerosLike(s.after);
    auto loss = LossAndGradients(s.after, tok.data(), b, t, &g);
    EXPECT_TRUE(loss.ok()) << loss.status().message();
    s.loss = loss.ok() ? *loss : 0;
    AdamWStep(&s.after, g, 1e-3f, AdamWOptions{}, &st);
  }
  SetNumThreads(0);
  return s;
}

TEST(TrainThreads, TwoStepsBitwiseTheSameOnOneAndTwoThreads) {
  const Step one = TwoSteps(1), two = TwoSteps(2);
  EXPECT_EQ(std::memcmp(&one.loss, &two.loss, sizeof(double)), 0) << one.loss << " vs " << two.loss;
  ASSERT_EQ(one.after.weights.size(), two.after.weights.size());
  for (const auto& [name, w] : one.after.weights) {
    const Tensor& v = two.after.W(name);
    ASSERT_EQ(w.data.size(), v.data.size()) << name;
    EXPECT_EQ(std::memcmp(w.data.data(), v.data.data(), w.data.size() * sizeof(float)), 0) << name;
  }
  // The steps did train: the weights moved from the start.
  const Model start = InitModel(Config(), 7);
  EXPECT_NE(start.W("model.layers.0.mlp.down_proj.weight").data, one.after.W("model.layers.0.mlp.down_proj.weight").data);
}

}  // namespace
}  // namespace ql::train
