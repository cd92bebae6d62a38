// Forward + backward of the whole model, AdamW, schedule, clipping, initialisation (see train_model.h).
#include "harness/train/train_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "harness/train/train_ops.h"
#include "harness/util/hash.h"
#include "kernels/parallel.h"

namespace ql::train {
namespace {

void AddInto(const std::vector<float>& a, std::vector<float>* y) {
  const int64_t n = int64_t(a.size());
  float* yp = y->data();
  const float* ap = a.data();
  ParallelForChunks(n, kElementChunk, NumThreads(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) yp[i] += ap[i];
  });
}

// y [n, out] = x [n, in] · W[name]ᵀ, plus the adapter path when `ad` has one for the weight.
void AdaptedLinearForward(const Model& model, const std::string& name, const float* x, int n, int in, int out,
                          float* y, LinearAdapters* ad) {
  LinearForward(x, model.W(name).data.data(), n, in, out, y);
  if (ad && ad->Has(name)) ad->Forward(name, x, n, in, out, y);
}

// LinearBackward (dw null: a frozen weight) plus the adapter path's input gradient and its own gradients.
void AdaptedLinearBackward(const Model& model, const std::string& name, const float* x, const float* dy, int n,
                           int in, int out, float* dx, float* dw, LinearAdapters* ad) {
  LinearBackward(x, model.W(name).data.data(), dy, n, in, out, dx, dw);
  if (ad && ad->Has(name)) ad->Backward(name, x, dy, n, in, out, dx);
}

// The gradient buffer of `name`; null (frozen) when grads lacks it and an adapter path is training.
float* GradOf(TensorMap* grads, const std::string& name, const LinearAdapters* ad) {
  auto it = grads->find(name);
  if (it == grads->end() && ad) return nullptr;
  QL_CHECK(it != grads->end());
  return it->second.data.data();
}

}  // namespace

void LayerForward(const Model& model, int l, int b, int t, const float* cos, const float* sin,
                  std::vector<float>* x_io, LayerActs* acts, LinearAdapters* adapters) {
  const ModelConfig& c = model.config;
  const int D = c.dim, F = c.hidden_dim, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  const int qd = H * hd, kvd = KV * hd, N = b * t;
  const float eps = c.norm_eps;
  std::vector<float>& x = *x_io;                 // [N, D]
  std::vector<float> tmp(size_t(N) * D);         // [N, D] block outputs before the residual add
  const std::string p = LayerPrefix(l);
  LayerActs& a = *acts;
  a.x_in = x;
  a.xn1.resize(size_t(N) * D);
  a.rstd1.resize(N);
  RmsNormForward(x.data(), model.W(p + "input_layernorm.weight").data.data(), N, D, eps, a.xn1.data(),
                 a.rstd1.data());
  a.q.resize(size_t(N) * qd);
  a.k.resize(size_t(N) * kvd);
  a.v.resize(size_t(N) * kvd);
  AdaptedLinearForward(model, p + "self_attn.q_proj.weight", a.xn1.data(), N, D, qd, a.q.data(), adapters);
  AdaptedLinearForward(model, p + "self_attn.k_proj.weight", a.xn1.data(), N, D, kvd, a.k.data(), adapters);
  AdaptedLinearForward(model, p + "self_attn.v_proj.weight", a.xn1.data(), N, D, kvd, a.v.data(), adapters);
  RopeApply(a.q.data(), N, t, H, hd, cos, sin, c.rope_interleaved, false);
  RopeApply(a.k.data(), N, t, KV, hd, cos, sin, c.rope_interleaved, false);
  a.probs.resize(size_t(b) * H * t * t);
  a.att.resize(size_t(N) * qd);
  AttentionForward(a.q.data(), a.k.data(), a.v.data(), b, t, H, KV, hd, a.probs.data(), a.att.data());
  AdaptedLinearForward(model, p + "self_attn.o_proj.weight", a.att.data(), N, qd, D, tmp.data(), adapters);
  for (size_t i = 0; i < size_t(N) * D; ++i) x[i] += tmp[i];
  a.x_mid = x;
  a.xn2.resize(size_t(N) * D);
  a.rstd2.resize(N);
  RmsNormForward(x.data(), model.W(p + "post_attention_layernorm.weight").data.data(), N, D, eps, a.xn2.data(),
                 a.rstd2.data());
  a.gate.resize(size_t(N) * F);
  a.up.resize(size_t(N) * F);
  a.act.resize(size_t(N) * F);
  AdaptedLinearForward(model, p + "mlp.gate_proj.weight", a.xn2.data(), N, D, F, a.gate.data(), adapters);
  AdaptedLinearForward(model, p + "mlp.up_proj.weight", a.xn2.data(), N, D, F, a.up.data(), adapters);
  SwiGluForward(a.gate.data(), a.up.data(), int64_t(N) * F, a.act.data());
  AdaptedLinearForward(model, p + "mlp.down_proj.weight", a.act.data(), N, F, D, tmp.data(), adapters);
  for (size_t i = 0; i < size_t(N) * D; ++i) x[i] += tmp[i];
}

void LayerBackward(const Model& model, int l, int b, int t, const float* cos, const float* sin,
                   const LayerActs& a, std::vector<float>* dx_io, TensorMap* grads, LinearAdapters* adapters) {
  const ModelConfig& c = model.config;
  const int D = c.dim, F = c.hidden_dim, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  const int qd = H * hd, kvd = KV * hd, N = b * t;
  auto G = [&](const std::string& name) { return GradOf(grads, name, adapters); };
  std::vector<float> frozen_norm;  // [D] where a frozen norm's gradient goes
  auto GN = [&](const std::string& name) {
    float* g = G(name);
    if (g) return g;
    frozen_norm.assign(size_t(D), 0.0f);
    return frozen_norm.data();
  };
  std::vector<float>& dx = *dx_io;                                               // [N, D]
  std::vector<float> dxn(size_t(N) * D), dtmp(size_t(N) * D);                    // [N, D]
  std::vector<float> dact(size_t(N) * F), dgate(size_t(N) * F), dup(size_t(N) * F);  // [N, F]
  std::vector<float> datt(size_t(N) * qd), dq(size_t(N) * qd);                      // [N, H*hd]
  std::vector<float> dk(size_t(N) * kvd), dv(size_t(N) * kvd);                      // [N, KV*hd]
  const std::string p = LayerPrefix(l);
  // MLP block: x_out = x_mid + down(act),  act = silu(gate(xn2)) * up(xn2),  xn2 = norm(x_mid)
  const std::string wd = p + "mlp.down_proj.weight", wg = p + "mlp.gate_proj.weight",
                    wu = p + "mlp.up_proj.weight", wn2 = p + "post_attention_layernorm.weight";
  AdaptedLinearBackward(model, wd, a.act.data(), dx.data(), N, F, D, dact.data(), G(wd), adapters);
  SwiGluBackward(a.gate.data(), a.up.data(), dact.data(), int64_t(N) * F, dgate.data(), dup.data());
  AdaptedLinearBackward(model, wg, a.xn2.data(), dgate.data(), N, D, F, dxn.data(), G(wg), adapters);
  AdaptedLinearBackward(model, wu, a.xn2.data(), dup.data(), N, D, F, dtmp.data(), G(wu), adapters);
  AddInto(dtmp, &dxn);
  RmsNormBackward(a.x_mid.data(), model.W(wn2).data.data(), a.rstd2.data(), dxn.data(), N, D, dtmp.data(),
                  GN(wn2));
  AddInto(dtmp, &dx);  // dx = d loss / d x_mid
  // Attention block: x_mid = x_in + o(att(rope(q(xn1)), rope(k(xn1)), v(xn1))),  xn1 = norm(x_in)
  const std::string wo = p + "self_attn.o_proj.weight", wq = p + "self_attn.q_proj.weight",
                    wk = p + "self_attn.k_proj.weight", wv = p + "self_attn.v_proj.weight",
                    wn1 = p + "input_layernorm.weight";
  AdaptedLinearBackward(model, wo, a.att.data(), dx.data(), N, qd, D, datt.data(), G(wo), adapters);
  AttentionBackward(a.q.data(), a.k.data(), a.v.data(), a.probs.data(), datt.data(), b, t, H, KV, hd, dq.data(),
                    dk.data(), dv.data());
  RopeApply(dq.data(), N, t, H, hd, cos, sin, c.rope_interleaved, true);
  RopeApply(dk.data(), N, t, KV, hd, cos, sin, c.rope_interleaved, true);
  AdaptedLinearBackward(model, wq, a.xn1.data(), dq.data(), N, D, qd, dxn.data(), G(wq), adapters);
  AdaptedLinearBackward(model, wk, a.xn1.data(), dk.data(), N, D, kvd, dtmp.data(), G(wk), adapters);
  AddInto(dtmp, &dxn);
  AdaptedLinearBackward(model, wv, a.xn1.data(), dv.data(), N, D, kvd, dtmp.data(), G(wv), adapters);
  AddInto(dtmp, &dxn);
  RmsNormBackward(a.x_in.data(), model.W(wn1).data.data(), a.rstd1.data(), dxn.data(), N, D, dtmp.data(),
                  GN(wn1));
  AddInto(dtmp, &dx);  // dx = d loss / d x_in
}

TensorMap ZerosLike(const Model& model) {
  TensorMap g;
  for (const auto& [name, t] : model.weights) {
    Tensor z;
    z.shape = t.shape;
    z.data.assign(t.data.size(), 0.0f);
    g.emplace(name, std::move(z));
  }
  return g;
}

void SetZero(TensorMap* tensors) {
  for (auto& [name, t] : *tensors) std::fill(t.data.begin(), t.data.end(), 0.0f);
}

StatusOr<double> LossAndGradients(const Model& model, const int* tokens, int b, int t, TensorMap* grads,
                                  const float* teacher_probs, LinearAdapters* adapters) {
  const ModelConfig& c = model.config;
  QL_RETURN_IF_ERROR(c.Validate());
  if (c.qkv_bias || c.qk_norm)
    return Status::Errorf("train: model_type '{}' with q/k/v bias or q/k norm is not supported (Llama layout only)",
                          c.arch);
  if (c.max_seq_len > 0 && t > c.max_seq_len)
    return Status::Errorf("train: window of {} tokens exceeds max_seq_len {}", t, c.max_seq_len);
  const int D = c.dim, hd = c.head_dim, V = c.vocab_size, N = b * t;
  const float eps = c.norm_eps;

  std::vector<int> in(N), tg(N);  // [N] inputs and targets
  for (int bi = 0; bi < b; ++bi)
    for (int i = 0; i < t; ++i) {
      in[bi * t + i] = tokens[size_t(bi) * (t + 1) + i];
      tg[bi * t + i] = tokens[size_t(bi) * (t + 1) + i + 1];
    }
  for (int i = 0; i < N; ++i)
    if (in[i] < 0 || in[i] >= V || tg[i] < 0 || tg[i] >= V)
      return Status::Errorf("train: token id {} outside the vocabulary [0, {})",
                            (in[i] < 0 || in[i] >= V) ? in[i] : tg[i], V);

  std::vector<float> cos, sin;  // [T, hd]
  RopeTables(t, hd, c.rope_theta, c.rope_interleaved, &cos, &sin);
  const std::string head_name = c.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";

  // ---- forward ----
  const float* emb = model.W("model.embed_tokens.weight").data.data();  // [V, D]
  std::vector<float> x(size_t(N) * D);                                  // [N, D] residual stream
  for (int i = 0; i < N; ++i) std::memcpy(&x[size_t(i) * D], emb + size_t(in[i]) * D, sizeof(float) * D);
  std::vector<LayerActs> acts(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) LayerForward(model, l, b, t, cos.data(), sin.data(), &x, &acts[l], adapters);
  std::vector<float> xnf(size_t(N) * D), rstdf(N);  // final norm output [N, D]
  RmsNormForward(x.data(), model.W("model.norm.weight").data.data(), N, D, eps, xnf.data(), rstdf.data());
  const float* w_head = model.W(head_name).data.data();  // [V, D]
  std::vector<float> logits(size_t(N) * V);              // [N, V], becomes dlogits
  LinearForward(xnf.data(), w_head, N, D, V, logits.data());
  const double loss = teacher_probs ? KlToTeacher(logits.data(), teacher_probs, N, V, grads ? logits.data() : nullptr)
                                    : CrossEntropy(logits.data(), tg.data(), N, V, grads ? logits.data() : nullptr);
  if (!grads) return loss;

  // ---- backward ----
  auto G = [&](const std::string& name) { return GradOf(grads, name, adapters); };
  std::vector<float> dxn(size_t(N) * D), dx(size_t(N) * D);  // [N, D]
  std::vector<float> frozen_norm(G("model.norm.weight") ? 0 : size_t(D));  // [D] a frozen norm's gradient
  LinearBackward(xnf.data(), w_head, logits.data(), N, D, V, dxn.data(), G(head_name));
  RmsNormBackward(x.data(), model.W("model.norm.weight").data.data(), rstdf.data(), dxn.data(), N, D, dx.data(),
                  frozen_norm.empty() ? G("model.norm.weight") : frozen_norm.data());
  for (int l = c.n_layers - 1; l >= 0; --l) {
    LayerBackward(model, l, b, t, cos.data(), sin.data(), acts[l], &dx, grads, adapters);
    acts[l] = LayerActs{};  // free this layer's activations early
  }
  float* demb = G("model.embed_tokens.weight");
  if (!demb) return loss;  // frozen embedding
  for (int i = 0; i < N; ++i) {
    float* row = demb + size_t(in[i]) * D;
    const float* g = &dx[size_t(i) * D];
    for (int j = 0; j < D; ++j) row[j] += g[j];
  }
  return loss;
}

double GlobalNorm(const TensorMap& grads) {
  double ss = 0;
  for (const auto& [name, g] : grads)
    for (float v : g.data) ss += double(v) * v;
  return std::sqrt(ss);
}

void ScaleAll(TensorMap* grads, float s) {
  for (auto& [name, g] : *grads)
    for (float& v : g.data) v *= s;
}

float LearningRate(int step, const ScheduleOptions& o) {
  if (step < o.warmup_steps) return o.max_lr * float(step + 1) / float(o.warmup_steps);
  const int decay = std::max(1, o.total_steps - 1 - o.warmup_steps);
  if (step >= o.total_steps - 1) return o.min_lr;
  const double frac = double(step - o.warmup_steps) / decay;  // 0 .. 1
  return float(o.min_lr + 0.5 * (o.max_lr - o.min_lr) * (1.0 + std::cos(std::numbers::pi * frac)));
}

AdamWState NewAdamW(const Model& model) {
  AdamWState s;
  s.m = ZerosLike(model);
  s.v = ZerosLike(model);
  return s;
}

void AdamWStep(Model* model, const TensorMap& grads, float lr, const AdamWOptions& o, AdamWState* state) {
  state->t += 1;
  const double bc1 = 1.0 - std::pow(double(o.beta1), double(state->t));
  const double bc2 = 1.0 - std::pow(double(o.beta2), double(state->t));
  for (auto& [name, w] : model->weights) {
    const float* g = grads.at(name).data.data();
    float* m = state->m.at(name).data.data();
    float* v = state->v.at(name).data.data();
    float* p = w.data.data();
    const float wd = w.shape.size() >= 2 ? o.weight_decay : 0.0f;
    const int64_t n = int64_t(w.data.size());
    const float b1 = o.beta1, b2 = o.beta2, eps = o.eps;
    const float inv_bc1 = float(1.0 / bc1), inv_bc2 = float(1.0 / bc2);
    ParallelForChunks(n, kElementChunk, NumThreads(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        const float mh = m[i] * inv_bc1, vh = v[i] * inv_bc2;
        p[i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * p[i]);
      }
    });
  }
}

Model InitModel(const ModelConfig& config, uint64_t seed) {
  QL_CHECK(config.Validate().ok());
  Model model;
  model.config = config;
  const double out_std = 0.02 / std::sqrt(2.0 * std::max(1, config.n_layers));
  for (const auto& [name, shape] : model.ExpectedTensors()) {
    Tensor t;
    t.shape = shape;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    t.data.resize(n);
    if (shape.size() == 1) {
      std::fill(t.data.begin(), t.data.end(), name.ends_with(".bias") ? 0.0f : 1.0f);
    } else {
      const bool out_proj = name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight");
      const double std_dev = out_proj ? out_std : 0.02;
      const uint64_t stream = SplitMix64(seed ^ Fnv1a64(name, kTrainerFnvBasis));
      for (int64_t i = 0; i < n; ++i) {  // Box-Muller on two counter-based uniforms
        const double u1 = (double(SplitMix64(stream + 2 * uint64_t(i)) >> 11) + 0.5) * 0x1.0p-53;
        const double u2 = double(SplitMix64(stream + 2 * uint64_t(i) + 1) >> 11) * 0x1.0p-53;
        t.data[i] = float(std_dev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
      }
    }
    model.weights.emplace(name, std::move(t));
  }
  return model;
}

}  // namespace ql::train
