// Packed forward pass (harness/model/forward_packed.h): the layer sequence of harness/model/forward.cc
// over rows that belong to many token tries, with attention restricted to each row's ancestors.
#include "harness/model/forward_packed.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"

namespace ql {

int PackedBatch::Add(int token, int parent_row) {
  tokens.push_back(token);
  parent.push_back(parent_row);
  return int(tokens.size()) - 1;
}

namespace {

// Buffers of one call; M = max(R, kGemmDotRows) rows, the padding rows zero.
struct PackedWorkspace {
  std::vector<float> x;            // [M, dim] residual stream
  std::vector<float> xn;           // [M, max(dim, q_out)] normed input / attention output
  std::vector<float> q;            // [M, H*hd]
  std::vector<float> k, v;         // [M, KV*hd] this layer's keys / values
  std::vector<float> gate, up;     // [M, max(F, dim)]
  std::vector<float> cos, sin;     // [max_pos + 1, hd] RoPE tables by position
  std::vector<float> scratch;      // [threads, max_pos + 1] attention scores
  std::vector<int> pos;            // [R] position (depth) of each row
  std::vector<int> anc_start;      // [R] offset of row r's ancestor list in anc
  std::vector<int> anc;            // rows of r's sequence at positions 0..pos[r], in position order
};

Status CheckBatch(const ModelConfig& c, const PackedBatch& b, PackedWorkspace& ws) {
  const int R = b.rows();
  if (R == 0) return Status::Error("packed forward: empty batch (need at least one row)");
  if (int(b.parent.size()) != R) return Status::Errorf("packed forward: {} tokens but {} parents", R, b.parent.size());
  ws.pos.assign(R, 0);
  ws.anc_start.assign(R, 0);
  ws.anc.clear();
  for (int r = 0; r < R; ++r) {
    if (b.tokens[r] < 0 || b.tokens[r] >= c.vocab_size)
      return Status::Errorf("packed forward: token id {} in row {} is outside the vocabulary [0, {})", b.tokens[r], r,
                            c.vocab_size);
    const int p = b.parent[r];
    if (p >= r || p < -1) return Status::Errorf("packed forward: row {} has parent {} (must be -1 or an earlier row)", r, p);
    ws.pos[r] = p < 0 ? 0 : ws.pos[p] + 1;
    if (c.max_seq_len > 0 && ws.pos[r] >= c.max_seq_len)
      return Status::Errorf("packed forward: row {} sits at position {}, past the model's max_seq_len {}", r, ws.pos[r],
                            c.max_seq_len);
    ws.anc_start[r] = int(ws.anc.size());
    if (p >= 0) {  // the parent's list, then r itself
      const int from = ws.anc_start[p];
      for (int j = 0; j <= ws.pos[p]; ++j) ws.anc.push_back(ws.anc[from + j]);
    }
    ws.anc.push_back(r);
  }
  for (int r : b.logit_rows)
    if (r < 0 || r >= R) return Status::Errorf("packed forward: logit row {} outside the {} rows", r, R);
  return Status::Ok();
}

// y[M, out] = x[M, in] · W[out, in]ᵀ (+ b): kernels/gemm.h's FMA chain, M >= kGemmDotRows.
void PackedLinear(const Model& model, const std::string& path, const float* x, int M, int in, float* y, bool bias,
                  const std::string& weight_name = "") {
  const Tensor& w = model.W(weight_name.empty() ? path + ".weight" : weight_name);
  const int out = int(w.rows());
  QL_CHECK(w.cols() == in, "{}: in_features {} != {}", path, w.cols(), in);
  Gemm(M, out, in, 1.0f, x, in, w.data.data(), in, BLayout::kNK, y, out, NumThreads());
  if (bias) {
    const float* b = model.W(path + ".bias").data.data();
    for (int t = 0; t < M; ++t) ops::Add(b, y + size_t(t) * out, out);
  }
}

// Row r, head h: softmax(q·kᵀ·scale) over r's ancestors, times their values, summed in position order.
// q: [M, H*hd]; k, v: [M, KV*hd]; out: [M, H*hd]. Cost 4·H·hd·(pos+1) flops per row.
void PackedAttention(const ModelConfig& c, int R, PackedWorkspace& ws, float* out) {
  const int H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim, group = H / KV;
  const int q_stride = H * hd, kv_stride = KV * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  const int max_keys = *std::max_element(ws.pos.begin(), ws.pos.end()) + 1;
  const int threads = std::min(NumThreads(), R);
  ws.scratch.resize(size_t(threads) * max_keys);
  ParallelFor(R, threads, [&](int r, int tid) {
    float* s = ws.scratch.data() + size_t(tid) * max_keys;  // [keys]
    const int* anc = ws.anc.data() + ws.anc_start[r];
    const int keys = ws.pos[r] + 1;
    for (int h = 0; h < H; ++h) {
      const float* qh = ws.q.data() + size_t(r) * q_stride + h * hd;
      const int g = h / group;
      for (int j = 0; j < keys; ++j) s[j] = ops::Dot(qh, ws.k.data() + size_t(anc[j]) * kv_stride + g * hd, hd) * scale;
      ops::Softmax(s, keys);
      float* o = out + size_t(r) * q_stride + h * hd;
      std::fill(o, o + hd, 0.0f);
      for (int j = 0; j < keys; ++j) ops::Axpy(s[j], ws.v.data() + size_t(anc[j]) * kv_stride + g * hd, o, hd);
    }
  });
}

void RmsNormRows(const float* x, const float* w, int rows, int D, float eps, float* y) {
  for (int t = 0; t < rows; ++t) ops::RmsNorm(x + size_t(t) * D, w, D, eps, y + size_t(t) * D);
}

// One decoder block on the packed rows (forward.cc's order: norm, q/k/v, qk-norm, RoPE, attention,
// o_proj + residual, norm, gate/up, SiLU·, down + residual).
void PackedBlock(const Model& model, int l, int R, int M, PackedWorkspace& ws) {
  const ModelConfig& c = model.config;
  const int D = c.dim, F = c.hidden_dim, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  const int q_out = H * hd, kv_out = KV * hd;
  const std::string p = LayerPrefix(l);
  RmsNormRows(ws.x.data(), model.W(p + "input_layernorm.weight").data.data(), M, D, c.norm_eps, ws.xn.data());
  PackedLinear(model, p + "self_attn.q_proj", ws.xn.data(), M, D, ws.q.data(), c.qkv_bias);
  PackedLinear(model, p + "self_attn.k_proj", ws.xn.data(), M, D, ws.k.data(), c.qkv_bias);
  PackedLinear(model, p + "self_attn.v_proj", ws.xn.data(), M, D, ws.v.data(), c.qkv_bias);
  const float* qn = c.qk_norm ? model.W(p + "self_attn.q_norm.weight").data.data() : nullptr;
  const float* kn = c.qk_norm ? model.W(p + "self_attn.k_norm.weight").data.data() : nullptr;
  for (int t = 0; t < R; ++t) {
    float* qt = &ws.q[size_t(t) * q_out];
    float* kt = &ws.k[size_t(t) * kv_out];
    if (c.qk_norm) {
      for (int h = 0; h < H; ++h) ops::RmsNorm(qt + h * hd, qn, hd, c.norm_eps, qt + h * hd);
      for (int h = 0; h < KV; ++h) ops::RmsNorm(kt + h * hd, kn, hd, c.norm_eps, kt + h * hd);
    }
    const float* cs = &ws.cos[size_t(ws.pos[t]) * hd];
    const float* sn = &ws.sin[size_t(ws.pos[t]) * hd];
    ops::Rope(qt, H, hd, cs, sn, c.rope_interleaved);
    ops::Rope(kt, KV, hd, cs, sn, c.rope_interleaved);
  }
  float* att = ws.xn.data();  // [M, H*hd]; padding rows stay zero
  std::fill(att, att + size_t(M) * q_out, 0.0f);
  PackedAttention(c, R, ws, att);
  float* o = ws.gate.data();  // [M, D]
  PackedLinear(model, p + "self_attn.o_proj", att, M, q_out, o, false);
  ops::Add(o, ws.x.data(), size_t(M) * D);
  RmsNormRows(ws.x.data(), model.W(p + "post_attention_layernorm.weight").data.data(), M, D, c.norm_eps,
              ws.xn.data());
  PackedLinear(model, p + "mlp.gate_proj", ws.xn.data(), M, D, ws.gate.data(), false);
  PackedLinear(model, p + "mlp.up_proj", ws.xn.data(), M, D, ws.up.data(), false);
  ops::SiluMul(ws.gate.data(), ws.up.data(), size_t(M) * F, ws.gate.data());
  float* down = ws.up.data();  // [M, D]
  PackedLinear(model, p + "mlp.down_proj", ws.gate.data(), M, F, down, false);
  ops::Add(down, ws.x.data(), size_t(M) * D);
}

}  // namespace

Status ForwardPacked(const Model& model, const PackedBatch& batch, float* logits) {
  const ModelConfig& c = model.config;
  QL_RETURN_IF_ERROR(c.Validate());
  if (model.matmul != MatmulPrecision::kFp32)
    return Status::Error("packed forward: only FP32 matmuls are supported (use ForwardWindow for BF16 compute)");
  thread_local PackedWorkspace ws;  // reused: fresh multi-MB buffers would page-fault on every call
  QL_RETURN_IF_ERROR(CheckBatch(c, batch, ws));
  const int R = batch.rows(), M = std::max(R, kGemmDotRows);
  const int D = c.dim, F = c.hidden_dim, q_out = c.n_heads * c.head_dim, kv_out = c.n_kv_heads * c.head_dim;
  ws.x.assign(size_t(M) * D, 0.0f);
  ws.xn.resize(size_t(M) * std::max(D, q_out));
  ws.q.resize(size_t(M) * q_out);
  ws.k.resize(size_t(M) * kv_out);
  ws.v.resize(size_t(M) * kv_out);
  ws.gate.resize(size_t(M) * std::max(F, D));
  ws.up.resize(size_t(M) * std::max(F, D));
  const int n_pos = *std::max_element(ws.pos.begin(), ws.pos.end()) + 1;
  ws.cos.resize(size_t(n_pos) * c.head_dim);
  ws.sin.resize(size_t(n_pos) * c.head_dim);
  ops::RopeTables(0, n_pos, c.head_dim, c.rope_theta, c.rope_interleaved, ws.cos.data(), ws.sin.data());

  const float* emb = model.W("model.embed_tokens.weight").data.data();  // [vocab, D]
  for (int t = 0; t < R; ++t) std::memcpy(&ws.x[size_t(t) * D], emb + size_t(batch.tokens[t]) * D, sizeof(float) * D);
  for (int l = 0; l < c.n_layers; ++l) PackedBlock(model, l, R, M, ws);

  // Final norm and LM head for the wanted rows only, gathered (padded to kGemmDotRows rows).
  const int L = int(batch.logit_rows.size());
  if (L == 0) return Status::Ok();
  const int ML = std::max(L, kGemmDotRows);
  std::vector<float>& xl = ws.q;  // [ML, D]: q is dead after the last block
  xl.assign(size_t(ML) * D, 0.0f);
  const float* w_final = model.W("model.norm.weight").data.data();
  for (int i = 0; i < L; ++i)
    ops::RmsNorm(&ws.x[size_t(batch.logit_rows[i]) * D], w_final, D, c.norm_eps, &xl[size_t(i) * D]);
  const std::string head = c.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  if (ML == L) {
    PackedLinear(model, "lm_head", xl.data(), ML, D, logits, false, head);
  } else {  // the caller's buffer holds L rows: run the padded product in scratch
    std::vector<float> padded(size_t(ML) * c.vocab_size);
    PackedLinear(model, "lm_head", xl.data(), ML, D, padded.data(), false, head);
    std::memcpy(logits, padded.data(), sizeof(float) * size_t(L) * c.vocab_size);
  }
  return Status::Ok();
}

}  // namespace ql
