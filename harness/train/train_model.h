// Training math for the Llama-family model of harness/model/model.h: forward + backward over a batch of
// token windows with cross-entropy loss, the AdamW optimizer, the warm-up + cosine learning-rate schedule
// and global-norm gradient clipping. Llama layout only (no q/k/v bias, no q/k norm). Not the data loop
// or checkpointing: see train_loop.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::train {

using TensorMap = std::map<std::string, Tensor>;

// A trainable path beside some linears (LoRA adapters with dropout, harness/quant/lora_dropout.h): the
// layers add Forward's output to each named linear's output and Backward's input gradient to the linear's
// dx. The linears' own weights are then frozen: the gradient maps given to the trainer may omit them (and
// any other weight), whose gradients are then not computed. Forward/Backward must not depend on the
// thread count (the trainer's step is bitwise the same on any, tests/harness/train_threads_test.cc).
class LinearAdapters {
 public:
  virtual ~LinearAdapters() = default;
  virtual bool Has(const std::string& weight) const = 0;
  // y [n, out] += adapter(x [n, in]), x being the linear's input.
  virtual void Forward(const std::string& weight, const float* x, int n, int in, int out, float* y) = 0;
  // dx [n, in] += d adapter / d x · dy [n, out]; the adapter's own parameter gradients are accumulated by it.
  virtual void Backward(const std::string& weight, const float* x, const float* dy, int n, int in, int out,
                        float* dx) = 0;
};

// Zero tensors of the shapes of model.weights (same names).
TensorMap ZerosLike(const Model& model);
void SetZero(TensorMap* tensors);

// tokens: [b, t + 1] row-major: inputs are columns 0..t-1, targets columns 1..t. Returns the mean
// cross-entropy (nats per target token). If grads is non-null, d(mean loss)/d(weight) is ADDED to it.
// Errors: unsupported config (qkv_bias, qk_norm), t > max_seq_len, ids outside the vocabulary.
// With teacher_probs ([b * t, V], row bi * t + i = the teacher's next-token distribution at position i of
// window bi), the loss is instead the mean KL(teacher || model) (distillation; targets are not used).
// With adapters, each linear they name gets their path added (see LinearAdapters).
StatusOr<double> LossAndGradients(const Model& model, const int* tokens, int b, int t, TensorMap* grads,
                                  const float* teacher_probs = nullptr, LinearAdapters* adapters = nullptr);

// What one decoder layer's backward needs from its forward (N = b * t rows).
struct LayerActs {
  std::vector<float> x_in;    // [N, D] residual stream entering the layer
  std::vector<float> xn1;     // [N, D] input_layernorm output
  std::vector<float> rstd1;   // [N]
  std::vector<float> q;       // [N, H*hd] after RoPE
  std::vector<float> k;       // [N, KV*hd] after RoPE
  std::vector<float> v;       // [N, KV*hd]
  std::vector<float> probs;   // [B, H, T, T]
  std::vector<float> att;     // [N, H*hd] attention output before o_proj
  std::vector<float> x_mid;   // [N, D] residual after the attention block
  std::vector<float> xn2;     // [N, D] post_attention_layernorm output
  std::vector<float> rstd2;   // [N]
  std::vector<float> gate;    // [N, F]
  std::vector<float> up;      // [N, F]
  std::vector<float> act;     // [N, F] silu(gate) * up
};

// One decoder layer l over b windows of t tokens (the pieces of LossAndGradients, for block-wise
// objectives such as AutoRound's). cos/sin: RopeTables(t, ...) [T, hd]. Forward: x [N, D] in place
// (layer input -> layer output), saving acts. Backward: dx [N, D] in place (d/d output -> d/d input);
// the gradients of the layer's nine weights are ADDED to grads (which must hold those names, unless
// adapters is given: then the names grads lacks are frozen).
void LayerForward(const Model& model, int l, int b, int t, const float* cos, const float* sin,
                  std::vector<float>* x, LayerActs* acts, LinearAdapters* adapters = nullptr);
void LayerBackward(const Model& model, int l, int b, int t, const float* cos, const float* sin,
                   const LayerActs& acts, std::vector<float>* dx, TensorMap* grads,
                   LinearAdapters* adapters = nullptr);

// Global L2 norm over all gradients (accumulated in double).
double GlobalNorm(const TensorMap& grads);
// Scales every gradient by s.
void ScaleAll(TensorMap* grads, float s);

struct ScheduleOptions {
  int total_steps = 1000;
  int warmup_steps = 100;
  float max_lr = 1e-3f;
  float min_lr = 1e-4f;
};
// Step s (0-based): linear warm-up max_lr * (s + 1) / warmup for s < warmup, then cosine from max_lr
// down to min_lr at s = total_steps - 1; min_lr after that.
float LearningRate(int step, const ScheduleOptions& o);

struct AdamWOptions {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;  // decoupled (Loshchilov & Hutter 2019); not applied to 1-D tensors (norms)
};

// AdamW state: first and second moments per weight, and the number of updates taken (bias correction).
struct AdamWState {
  TensorMap m, v;
  int64_t t = 0;
};
AdamWState NewAdamW(const Model& model);
// One update of every weight from its gradient with learning rate lr:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd p).
void AdamWStep(Model* model, const TensorMap& grads, float lr, const AdamWOptions& o, AdamWState* state);

// Weights for training from scratch (GPT-2 recipe): every matrix N(0, 0.02), the output projections
// (o_proj, down_proj) N(0, 0.02 / sqrt(2 n_layers)), norms 1. Deterministic in (config, seed).
Model InitModel(const ModelConfig& config, uint64_t seed);

}  // namespace ql::train
