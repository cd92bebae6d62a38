// LoRA adapters as a trainable path beside frozen linears, with PEFT's lora_dropout on the adapter's input
// (Hu et al. 2021; QLoRA, Dettmers et al. 2023, arXiv:2305.14314, trains with dropout 0.05–0.1):
//   y = x·Wᵀ + s · (drop(x)·Aᵀ)·Bᵀ,   drop(x) = x ⊙ m / (1 − p),   m_ij = 1 with probability 1 − p,
// every adapter with its own mask, as PEFT gives every LoRA layer its own nn.Dropout. Training only:
// evaluation folds the adapters into the weights, without dropout (qlora.cc). Not the optimizer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/train/train_model.h"

namespace ql {

// The mask of element (row i, column j) of weight `name`'s input at step k is a counter-based hash of
// (seed, k, name, i·in + j): the same for any thread count, and recomputed in backward instead of stored.
class LoraDropoutPath : public train::LinearAdapters {
 public:
  // trainable holds "<weight>.A" [rank, in] and "<weight>.B" [out, rank] (read at every call); grads the
  // same names (Backward ADDS to them). scale = alpha / rank, p in [0, 1).
  LoraDropoutPath(const Model* trainable, train::TensorMap* grads, float scale, double p, uint64_t seed);

  // Selects the masks of one optimizer step.
  void SetStep(int64_t step) { step_ = step; }

  bool Has(const std::string& weight) const override;
  void Forward(const std::string& weight, const float* x, int n, int in, int out, float* y) override;
  void Backward(const std::string& weight, const float* x, const float* dy, int n, int in, int out,
                float* dx) override;

  // out [n, in] = drop(x [n, in]) with weight `name`'s mask of the current step (x ⊙ m / (1 − p)).
  void Drop(const std::string& weight, const float* x, int n, int in, float* out) const;

 private:
  const Model* trainable_;
  train::TensorMap* grads_;
  float scale_;
  double p_;
  uint64_t seed_;
  int64_t step_ = 0;
  std::map<std::string, std::vector<float>> xa_;  // weight -> drop(x)·Aᵀ [n, rank] of its last Forward
};

}  // namespace ql
