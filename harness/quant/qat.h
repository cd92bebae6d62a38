// Quantization-aware training (QAT) as an algorithm: fine-tunes the model on the calibration windows
// with the cell's weights fake-quantized in the forward pass and the straight-through estimator
// (Bengio et al. 2013) in the backward pass, then leaves the fake-quantized fine-tuned weights. The loss
// is next-token cross-entropy or, with distill, the KL divergence to the unquantized model's outputs.
// Weight-only: activation / KV schemes of the cell are applied at evaluation, not during training.
// Learned scales (LSQ) are not implemented: scales follow the scheme's rule on the current weights.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/quant/algorithm.h"

namespace ql {

struct CalibrationSet;

struct QatOptions {
  int steps = 200;             // optimizer steps
  int batch = 8;               // windows per step (drawn from the calibration windows)
  double lr = 1e-4;            // peak learning rate (AdamW)
  double min_lr = 1e-5;        // end of the cosine
  int warmup = 10;             // linear warm-up steps
  double weight_decay = 0.0;   // decoupled, matrices only
  double clip = 1.0;           // global gradient-norm clip (0: off)
  bool train_all = true;       // false: only the quantized weights are updated (norms, embeddings frozen)
  bool distill = false;        // loss: false = next-token cross-entropy on the data; true = KL(teacher || student)
                               // to the model as it was before QAT (knowledge distillation, as LLM-QAT)
  uint64_t seed = 0;           // order of the windows
  ProgressFn progress;         // optional: steps done
};

struct QatLog {
  std::vector<double> loss;    // training loss (on fake-quantized weights) per step
};

// Fine-tunes `model` in place. `weight_schemes` maps weight tensor names ("model.layers.0.mlp.up_proj.weight")
// to their scheme text. On return the quantized tensors hold fake-quantized values (the master
// weights they were rounded from are dropped); the others hold their fine-tuned values. With an empty
// map this is plain fine-tuning (the control run: how much of QAT's gain is the extra training).
Status RunQat(Model& model, const std::map<std::string, std::string>& weight_schemes, const CalibrationSet& data,
              const QatOptions& options, QatLog* log);

AlgorithmInfo QatAlgorithm();

}  // namespace ql
