// Test oracle: a plain scalar Llama-family forward pass written straight from the definitions
// (docs/formats.md §5.2/§5.3), naive loops with double accumulation, no SIMD, no BLAS, no kernels/ops. Slow by
// design; only for small models. Hook semantics match harness/model/forward.h: each linear's hook sees
// a private copy of that linear's input; attn_q sees Q after RoPE (unscaled); attn_probs sees each
// (head, query) probability row alone, exactly its causal prefix (rows = 1, cols = t + 1).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "harness/model/forward.h"
#include "harness/model/model.h"

namespace ql::testing_ref {

using Mat = std::vector<float>;  // row-major

// y[T, out] = x[T, in] · W[out, in]ᵀ + b
inline Mat RefLinear(const Model& m, const std::string& path, Mat x, int T, int in, bool bias,
                     const ForwardHooks* hooks, const std::string& weight = "") {
  if (hooks && hooks->linear_input) hooks->linear_input(path, x.data(), T, in);
  const Tensor& W = m.W(weight.empty() ? path + ".weight" : weight);
  const int out = int(W.shape[0]);
  Mat y(size_t(T) * out);
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < out; ++o) {
      double s = bias ? m.W(path + ".bias").data[o] : 0.0;
      for (int i = 0; i < in; ++i) s += double(x[size_t(t) * in + i]) * W.data[size_t(o) * in + i];
      y[size_t(t) * out + o] = float(s);
    }
  return y;
}

// RMSNorm of each length-n row of x (rows = x.size()/n) with weight w.
inline Mat RefRmsNorm(const Mat& x, const float* w, int n, double eps) {
  Mat y(x.size());
  for (size_t r = 0; r < x.size() / n; ++r) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i) y[r * n + i] = float(x[r * n + i] * inv * w[i]);
  }
  return y;
}

// Rotates every head of row t (n_h heads of hd) by position t.
inline void RefRope(Mat& x, int T, int n_h, int hd, double theta, bool interleaved) {
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < n_h; ++h) {
      float* v = &x[(size_t(t) * n_h + h) * hd];
      for (int i = 0; i < hd / 2; ++i) {
        const double freq = 1.0 / std::pow(theta, 2.0 * i / hd);
        const double a = t * freq;
        const int j0 = interleaved ? 2 * i : i;
        const int j1 = interleaved ? 2 * i + 1 : i + hd / 2;
        const double x0 = v[j0], x1 = v[j1];
        v[j0] = float(x0 * std::cos(a) - x1 * std::sin(a));
        v[j1] = float(x0 * std::sin(a) + x1 * std::cos(a));
      }
    }
}

// logits: [T, vocab]
inline Mat ReferenceForward(const Model& m, const std::vector<int>& tokens, const ForwardHooks* hooks = nullptr) {
  const ModelConfig& c = m.config;
  const int T = int(tokens.size()), D = c.dim, F = c.hidden_dim, H = c.n_heads, KV = c.n_kv_heads,
            hd = c.head_dim;
  Mat x(size_t(T) * D);  // residual stream [T, D]
  const Tensor& E = m.W("model.embed_tokens.weight");
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < D; ++i) x[size_t(t) * D + i] = E.data[size_t(tokens[t]) * D + i];

  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Mat xn = RefRmsNorm(x, m.W(p + "input_layernorm.weight").data.data(), D, c.norm_eps);
    Mat q = RefLinear(m, p + "self_attn.q_proj", xn, T, D, c.qkv_bias, hooks);  // [T, H*hd]
    Mat k = RefLinear(m, p + "self_attn.k_proj", xn, T, D, c.qkv_bias, hooks);  // [T, KV*hd]
    Mat v = RefLinear(m, p + "self_attn.v_proj", xn, T, D, c.qkv_bias, hooks);  // [T, KV*hd]
    if (c.qk_norm) {
      q = RefRmsNorm(q, m.W(p + "self_attn.q_norm.weight").data.data(), hd, c.norm_eps);
      k = RefRmsNorm(k, m.W(p + "self_attn.k_norm.weight").data.data(), hd, c.norm_eps);
    }
    RefRope(q, T, H, hd, c.rope_theta, c.rope_interleaved);
    RefRope(k, T, KV, hd, c.rope_theta, c.rope_interleaved);
    if (hooks && hooks->kv) hooks->kv(l, k.data(), v.data(), T);
    if (hooks && hooks->attn_q) hooks->attn_q(l, q.data(), T);

    Mat att(size_t(T) * H * hd, 0.0f);  // [T, H*hd]
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / KV);
      for (int t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int u = 0; u <= t; ++u) {
          double d = 0;
          for (int i = 0; i < hd; ++i)
            d += double(q[(size_t(t) * H + h) * hd + i]) * k[(size_t(u) * KV + g) * hd + i];
          s[u] = d / std::sqrt(double(hd));
          mx = std::max(mx, s[u]);
        }
        double z = 0;
        for (int u = 0; u <= t; ++u) z += (s[u] = std::exp(s[u] - mx));
        if (hooks && hooks->attn_probs) {  // P rounded to float, as the optimized path holds it
          std::vector<float> pr(t + 1);
          for (int u = 0; u <= t; ++u) pr[u] = float(s[u] / z);
          hooks->attn_probs(l, h, t, pr.data(), 1, t + 1);
          for (int u = 0; u <= t; ++u) s[u] = pr[u];
          z = 1.0;
        }
        for (int i = 0; i < hd; ++i) {
          double o = 0;
          for (int u = 0; u <= t; ++u) o += s[u] / z * v[(size_t(u) * KV + g) * hd + i];
          att[(size_t(t) * H + h) * hd + i] = float(o);
        }
      }
    }
    Mat o = RefLinear(m, p + "self_attn.o_proj", att, T, H * hd, false, hooks);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];

    xn = RefRmsNorm(x, m.W(p + "post_attention_layernorm.weight").data.data(), D, c.norm_eps);
    Mat gate = RefLinear(m, p + "mlp.gate_proj", xn, T, D, false, hooks);  // [T, F]
    Mat up = RefLinear(m, p + "mlp.up_proj", xn, T, D, false, hooks);      // [T, F]
    Mat act(size_t(T) * F);
    for (size_t i = 0; i < act.size(); ++i) {
      const double g = gate[i];
      act[i] = float(g / (1.0 + std::exp(-g)) * up[i]);
    }
    Mat down = RefLinear(m, p + "mlp.down_proj", act, T, F, false, hooks);
    for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
    if (hooks && hooks->block_output) hooks->block_output(l, x.data(), T);
  }
  Mat xf = RefRmsNorm(x, m.W("model.norm.weight").data.data(), D, c.norm_eps);
  return RefLinear(m, "lm_head", xf, T, D, false, hooks,
                   c.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
}

// ‖got − ref‖₂ / ‖ref‖₂ (sizes must match).
inline double RelErr(const std::vector<float>& got, const std::vector<float>& ref) {
  QL_CHECK(got.size() == ref.size(), "RelErr: sizes {} and {}", got.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

// T deterministic token ids below vocab (salt varies the sequence).
inline std::vector<int> Tokens(int T, int vocab, int salt = 0) {
  std::vector<int> t(T);
  for (int i = 0; i < T; ++i) t[i] = int((i * 7919u + 13u * salt + 1u) % unsigned(vocab));
  return t;
}

}  // namespace ql::testing_ref
