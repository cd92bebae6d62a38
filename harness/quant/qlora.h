// QLoRA (Dettmers et al. 2023, arXiv:2305.14314) as an algorithm: the cell's weights are quantized once
// (round to nearest with the cell's scheme, e.g. nf4 or nf4:dq) and frozen; low-rank adapters
// W_eff = Q(W) + (alpha / rank) · B · A are trained on the calibration windows with quantlab's trainer,
// then kept beside the base in BF16 (merge: false) or folded in and re-quantized (merge: true).
// Optional LoftQ initialisation (init: loftq) of base and adapters from the quantization residual, and
// LoRA dropout on the adapters' inputs during training (dropout > 0, harness/quant/lora_dropout.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/quant/algorithm.h"
#include "kernels/status.h"

namespace ql {

struct CalibrationSet;
struct Scheme;

// One adapter of a linear W [out, in]: A [rank, in], B [out, rank].
struct LoraAdapter {
  int rank = 0, in = 0, out = 0;
  std::vector<float> a;  // [rank, in]
  std::vector<float> b;  // [out, rank]
};

// w_eff [out, in] = base + scale · B·A, each element's sum in double and rounded to fp32 once; with
// B = 0 (or A = 0) w_eff is base bit for bit.
void LoraEffectiveWeight(const float* base, const LoraAdapter& ad, float scale, float* w_eff);
// From g = dL/dW_eff [out, in]: da [rank, in] += scale · Bᵀ·g, db [out, rank] += scale · g·Aᵀ (the exact
// chain rule, W_eff being linear in A and in B).
void LoraBackward(const float* g, const LoraAdapter& ad, float scale, float* da, float* db);
// PEFT's initialisation: A uniform in ±1/sqrt(in) (kaiming_uniform with a = sqrt(5)), B = 0, so training
// starts from the quantized base exactly. Deterministic in (seed, name).
LoraAdapter InitLoraAdapter(int rank, int in, int out, uint64_t seed, const std::string& name);
// LoftQ (Li et al. 2023, "LoftQ: LoRA-Fine-Tuning-Aware Quantization for Large Language Models",
// arXiv:2310.08659, Algorithm 1) for one weight w [out, in]: from s·B·A = 0, `iters` alternations of
//   q ← Q(w − s·B·A) (the scheme's round to nearest),   s·B·A ← the rank-r truncated SVD of w − q,
// split as B = U·sqrt(Σ)/sqrt(s), A = sqrt(Σ)·Vᵀ/sqrt(s). iters = 0 leaves q = Q(w) and *ad as given (the
// plain init). trace (optional) gets ‖w − q − s·B·A‖_F before the first and after every alternation.
Status LoftqInit(const Scheme& scheme, const float* w, float scale, int iters, std::vector<float>* q, LoraAdapter* ad,
                 std::vector<double>* trace = nullptr);
// Rounds A and B to BF16 (their stored precision) in place.
void RoundAdapterToBf16(LoraAdapter* ad);

struct QloraOptions {
  int rank = 8;
  double alpha = 16;            // scale = alpha / rank
  int steps = 200;              // optimizer steps
  int batch = 8;                // windows per step
  double lr = 2e-4;             // constant after a linear warm-up (the paper's schedule)
  int warmup = 6;               // warm-up steps (the paper's warm-up ratio 0.03 of 200)
  double clip = 0.3;            // global gradient-norm clip over the adapters (the paper's max_grad_norm)
  bool distill = false;         // loss: false = next-token cross-entropy; true = KL to the unquantized model
  bool merge = false;           // fold the adapters in and re-quantize (no adapters kept)
  std::string targets = "all";  // adapter modules: "all" or comma-separated names ("q_proj,v_proj")
  int loftq_iters = 0;          // init: loftq's alternations (0 = PEFT's plain init: Q(W), B = 0)
  double dropout = 0;           // LoRA dropout on the adapters' inputs while training, in [0, 1)
  uint64_t seed = 0;            // adapter init and window order
};

struct QloraLog {
  std::vector<double> loss;        // training loss per step
  int64_t adapter_params = 0;      // Σ rank · (in + out)
  int64_t adapter_bytes = 0;       // stored in BF16: 2 per parameter
  int64_t training_state_bytes = 0;  // fp32 master adapters + gradients + AdamW m and v: 16 per parameter
};

// Quantizes the weights of `weight_schemes` (weight name -> scheme text), trains adapters on those whose
// module matches options.targets and leaves model holding the weights to evaluate: Q(W) + scale·B·A with
// BF16 adapters (merge false) or Q(Q(W) + scale·B·A) (merge true). Everything else stays frozen.
Status RunQlora(Model& model, const std::map<std::string, std::string>& weight_schemes, const CalibrationSet& data,
                const QloraOptions& options, QloraLog* log);

AlgorithmInfo QloraAlgorithm();

}  // namespace ql
