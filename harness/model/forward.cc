// The optimized forward pass: kernels/gemm.h for every linear over all tokens of the window at once,
// kernels/attention.h for both attention products in FP32 (bitwise the Gemms it replaced; BF16 keeps
// kernels/gemm_bf16.h), Highway ops (kernels/ops.h) for norms, RoPE and SiLU, and blocked causal
// attention parallel over (KV head, query block). The scalar oracle is
// tests/harness/reference_forward.h. Not a sampler: see harness/model/generate.h.
// Threads: NumThreads() (kernels/parallel.h). Deterministic: every work partition (GEMM tiles,
// attention items) is fixed by the shapes alone and no sum is split across threads, so the logits
// are bitwise the same for any thread count (tests/harness/forward_determinism_test.cc).
#include "harness/model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "harness/model/generate.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

// Everything one call needs besides the weights; sized once per call.
struct Workspace {
  std::vector<float> x;      // [n, dim] residual stream
  std::vector<float> xn;     // [n, max(dim, q_out)] normed input of a linear / attention output
  std::vector<float> q;      // [n, H*hd]
  std::vector<float> gate;   // [n, max(F, D)]
  std::vector<float> up;     // [n, max(F, D)]
  std::vector<float> hook;   // [n, max in_features] copy of a linear's input for the linear_input hook
  std::vector<float> cos, sin;  // [n, hd] RoPE tables for positions pos0..pos0+n-1
  std::vector<float> scores;    // [threads, kBlock, n_keys] attention scratch
  std::vector<float> kpack;     // [KV, AttentionKeyPanelFloats(n_keys, hd)] keys packed for CausalScores
  std::vector<int> valid;       // [threads, group * kBlock] visible keys of each stacked attention row
};

constexpr int kBlock = 64;                 // query rows per attention work item
constexpr double kMinParallelFlops = 5e7;  // attention below this runs on the calling thread
constexpr int kRowChunk = 64;              // token rows per item of the per-row (elementwise) steps
constexpr size_t kMinParallelFloats = 1 << 17;  // per-row steps over fewer floats stay on one thread

// fn(t0, t1) over token rows [0, n) in fixed chunks of kRowChunk rows, on NumThreads() threads when
// the step touches at least kMinParallelFloats (n * width) floats: RMSNorm, RoPE, SiLU and residual
// adds are per row (each element computed the same way wherever its chunk starts), so the split
// changes no bit; below the cut-off waking a pool worker (a futex wake, then its wake-up latency:
// microseconds, far more when the cores are shared) costs more than the step.
template <class Fn>
void ForRows(int n, size_t width, const Fn& fn) {
  const int chunks = (n + kRowChunk - 1) / kRowChunk;
  const int threads = size_t(n) * width < kMinParallelFloats ? 1 : NumThreads();
  ParallelFor(chunks, threads, [&](int c, int) { fn(c * kRowChunk, std::min(n, (c + 1) * kRowChunk)); });
}

// The one switch between the FP32 and the BF16 arithmetic (harness/model/model.h MatmulPrecision).
void MatMul(MatmulPrecision p, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
            BLayout layout, float* C, int ldc, int threads) {
  if (p == MatmulPrecision::kBf16) return GemmBf16(M, N, K, alpha, A, lda, B, ldb, layout, C, ldc, threads);
  Gemm(M, N, K, alpha, A, lda, B, ldb, layout, C, ldc, threads);
}

// y[n, out] = x[n, in] · W[out, in]ᵀ (+ b). With a linear_input hook the hook sees (and may change)
// a private copy of x, so every linear fed by the same activations (q/k/v, gate/up) sees them
// unmodified by the hooks of its siblings. False (y untouched): the pass stops here
// (ForwardHooks::stop_at_input), and the caller returns.
// skip: rows of the product not computed (y's first rows left untouched; the hook sees all n).
[[nodiscard]] bool Linear(const Model& model, const std::string& path, const float* x, int n, int in, float* y,
                          const ForwardHooks* hooks, Workspace& ws, bool bias, const std::string& weight_name = "",
                          int skip = 0) {
  const Tensor& w = model.W(weight_name.empty() ? path + ".weight" : weight_name);
  const int out = int(w.rows());
  QL_CHECK(w.cols() == in, "{}: in_features {} != {}", path, w.cols(), in);
  if (hooks && hooks->linear_input) {
    std::memcpy(ws.hook.data(), x, sizeof(float) * size_t(n) * in);
    hooks->linear_input(path, ws.hook.data(), n, in);
    x = ws.hook.data();
  }
  if (hooks && !hooks->stop_at_input.empty() && hooks->stop_at_input == path) return false;
  MatMul(model.matmul, n - skip, out, in, 1.0f, x + size_t(skip) * in, in, w.data.data(), in, BLayout::kNK,
         y + size_t(skip) * out, out, NumThreads());
  if (bias) {
    QL_CHECK(skip == 0, "{}: rows skipped with a bias", path);
    const float* b = model.W(path + ".bias").data.data();
    ForRows(n, out, [&](int t0, int t1) {
      for (int t = t0; t < t1; ++t) ops::Add(b, y + size_t(t) * out, out);
    });
  }
  return true;
}

// One attention item on the FP32 causal kernels (kernels/attention.h): qg [group*rows, hd] holds the
// stacked query rows (head j's row r at j*rows + r, at absolute position q_pos0 + r), kp the packed
// keys and v [keys, hd] (ldv) the values of the KV head, s [group*rows, keys] is scratch and og
// [group*rows, hd] receives the output. valid: [group*rows] scratch.
void CausalItem(int q_pos0, int rows, int group, const float* kp, const float* v, int ldv, int hd, float scale,
                const float* qg, float* s, int keys, int* valid, float* og, const ForwardHooks* hooks, int layer,
                int g) {
  const int m = group * rows;
  for (int i = 0; i < m; ++i) valid[i] = q_pos0 + i % rows + 1;
  CausalScores(qg, hd, m, hd, kp, keys, valid, scale, s, keys);
  for (int i = 0; i < m; ++i) ops::Softmax(s + size_t(i) * keys, valid[i]);
  if (hooks && hooks->attn_probs) {
    auto mask = [&] {
      for (int i = 0; i < m; ++i) std::fill(s + size_t(i) * keys + valid[i], s + size_t(i + 1) * keys, 0.0f);
    };
    mask();
    for (int j = 0; j < group; ++j)
      hooks->attn_probs(layer, g * group + j, q_pos0, s + size_t(j) * rows * keys, rows, keys);
    mask();  // the mask is not the hook's to change
  }
  CausalPV(s, keys, m, valid, v, ldv, hd, og, hd);
}

// One attention item on the GEMMs (BF16, or too few rows for the causal kernels): as CausalItem, with
// k [keys, hd] (ldk) and v in place; every product runs over all `keys` with the masked P entries 0.
void GemmItem(MatmulPrecision prec, int q_pos0, int rows, int group, const float* k, const float* v, int ldkv, int hd,
              float scale, const float* qg, float* s, int keys, float* og, const ForwardHooks* hooks, int layer,
              int g) {
  const int m = group * rows;
  // Each item's products run on its own thread: the items are the parallelism here.
  MatMul(prec, m, keys, hd, scale, qg, hd, k, ldkv, BLayout::kNK, s, keys, 1);
  for (int i = 0; i < m; ++i) {
    float* row = s + size_t(i) * keys;
    const int valid = q_pos0 + i % rows + 1;
    ops::Softmax(row, valid);
    std::fill(row + valid, row + keys, 0.0f);
  }
  if (hooks && hooks->attn_probs) {
    for (int j = 0; j < group; ++j)
      hooks->attn_probs(layer, g * group + j, q_pos0, s + size_t(j) * rows * keys, rows, keys);
    for (int i = 0; i < m; ++i) {  // the mask is not the hook's to change
      const int valid = q_pos0 + i % rows + 1;
      std::fill(s + size_t(i) * keys + valid, s + size_t(i + 1) * keys, 0.0f);
    }
  }
  MatMul(prec, m, hd, keys, 1.0f, s, keys, v, ldkv, BLayout::kKN, og, hd, 1);
}

// Causal grouped-query attention for n queries at positions pos0..pos0+n-1 over keys 0..pos0+n-1.
// q: [n, H*hd]; k, v: [pos0+n, KV*hd]; out: [n, H*hd]. Work item = (KV head g, block of kBlock query
// positions): the `group` = H/KV query heads sharing g are stacked into one [group*rows, hd] matrix so
// each product reads K/V once for all of them:
//   S = Qg·K_gᵀ·scale, row softmax over each row's causal prefix, Og = P·V_g.
// FP32 (CausalItem): the keys are packed once per layer and both products stop at the last key a
// row tile sees, cost ≈ 2·H·hd·n·(pos0 + n/2) flops plus a tile's edge. BF16 (GemmItem): both run
// over the block's whole key range end, ≈ 2·H·hd·n·(pos0 + n/2 + kBlock/2) flops.
// hooks->attn_probs (if set) sees each query head's rows of P before the P·V product.
void Attention(const ModelConfig& c, MatmulPrecision prec, const float* q, const float* k, const float* v, int n,
               int pos0, float* out, Workspace& ws, const ForwardHooks* hooks, int layer) {
  const int H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim, group = H / KV;
  const int q_stride = H * hd, kv_stride = KV * hd;
  const int n_blocks = (n + kBlock - 1) / kBlock;
  const int n_items = KV * n_blocks;
  const float scale = 1.0f / std::sqrt(float(hd));
  const int max_keys = pos0 + n;
  // Threads only pay off for real work: a parallel region's fork/join costs microseconds when the
  // cores are free and milliseconds when they are shared (threads wait for a descheduled sibling).
  const double flops = 2.0 * H * hd * double(n) * (pos0 + 0.5 * n + 0.5 * kBlock) * 2;
  const int threads = flops < kMinParallelFlops ? 1 : std::min(NumThreads(), n_items);
  const size_t per_thread = size_t(group) * kBlock * (size_t(max_keys) + 2 * hd);
  ws.scores.resize(size_t(threads) * per_thread);
  // The causal kernels (FP32) match Gemm's packed path bit for bit on items of >= kGemmDotRows rows
  // (fewer take its dot-product path), so an item takes them when it has that many; the keys are
  // packed once per layer when some item will.
  const bool fp32 = prec == MatmulPrecision::kFp32;
  const bool pack = fp32 && group * std::min(n, kBlock) >= kGemmDotRows;
  const size_t kp_floats = pack ? AttentionKeyPanelFloats(max_keys, hd) : 0;
  float* kp = nullptr;
  if (pack) {
    ws.kpack.resize(size_t(KV) * kp_floats);
    ws.valid.resize(size_t(threads) * group * kBlock);
    kp = ws.kpack.data();
    ParallelFor(KV, threads,
                [&](int g, int) { PackAttentionKeys(k + g * hd, kv_stride, max_keys, hd, kp + g * kp_floats); });
  }
  ParallelFor(n_items, threads, [&](int item, int tid) {
    // Largest blocks (last queries) first for a better dynamic schedule.
    const int blk = n_blocks - 1 - item / KV, g = item % KV;
    const int r0 = blk * kBlock, rows = std::min(kBlock, n - r0);
    const int keys = pos0 + r0 + rows;  // causal: the last row of the block sees this many keys
    const int m = group * rows;         // stacked rows: head j's row r at j*rows + r
    float* qg = ws.scores.data() + size_t(tid) * per_thread;  // [m, hd]
    float* og = qg + size_t(m) * hd;                          // [m, hd]
    float* s = og + size_t(m) * hd;                           // [m, keys]
    for (int j = 0; j < group; ++j)
      for (int r = 0; r < rows; ++r)
        std::memcpy(qg + (size_t(j) * rows + r) * hd, q + size_t(r0 + r) * q_stride + (g * group + j) * hd,
                    sizeof(float) * hd);
    if (fp32 && m >= kGemmDotRows) {
      CausalItem(pos0 + r0, rows, group, kp + size_t(g) * kp_floats, v + g * hd, kv_stride, hd, scale, qg, s, keys,
                 ws.valid.data() + size_t(tid) * group * kBlock, og, hooks, layer, g);
    } else {
      GemmItem(prec, pos0 + r0, rows, group, k + g * hd, v + g * hd, kv_stride, hd, scale, qg, s, keys, og, hooks,
               layer, g);
    }
    for (int j = 0; j < group; ++j)
      for (int r = 0; r < rows; ++r)
        std::memcpy(out + size_t(r0 + r) * q_stride + (g * group + j) * hd, og + (size_t(j) * rows + r) * hd,
                    sizeof(float) * hd);
  });
}

Status CheckTokens(const ModelConfig& c, std::span<const int> tokens, int pos0) {
  if (tokens.empty()) return Status::Error("forward: empty token window (need at least one token)");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      return Status::Errorf("forward: token id {} at position {} is outside the vocabulary [0, {})", tokens[i],
                            pos0 + i, c.vocab_size);
  }
  const int64_t end = int64_t(pos0) + int64_t(tokens.size());
  if (c.max_seq_len > 0 && end > c.max_seq_len)
    return Status::Errorf("forward: {} positions exceed the model's max_seq_len {} (use shorter windows)", end,
                          c.max_seq_len);
  return Status::Ok();
}

// The one implementation behind ForwardWindow and ForwardCached. tokens sit at positions
// pos0..pos0+n-1; k_layer[l]/v_layer[l]: [pos0+n, KV*hd] hold rows < pos0 already and receive the new
// rows. logits: [n, vocab], or [1, vocab] for the last token when last_only.
Status ForwardCore(const Model& model, std::span<const int> tokens, int pos0, float* const* k_layer,
                   float* const* v_layer, float* logits, bool last_only, const ForwardHooks* hooks) {
  const ModelConfig& c = model.config;
  QL_RETURN_IF_ERROR(c.Validate());
  QL_RETURN_IF_ERROR(CheckTokens(c, tokens, pos0));
  const int n = int(tokens.size());
  const int D = c.dim, F = c.hidden_dim, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  const int q_out = H * hd, kv_out = KV * hd;
  const float eps = c.norm_eps;

  // Reused across calls on this thread: fresh multi-MB buffers would page-fault on every window.
  // Hence a hook must not itself run a forward pass on the calling thread (it would clobber ws).
  // Lambdas below name `ws` through this reference: a thread_local named directly in a lambda run
  // by a ParallelFor worker would be the worker's own (empty) instance.
  thread_local Workspace tls_ws;
  Workspace& ws = tls_ws;
  ws.x.resize(size_t(n) * D);
  ws.xn.resize(size_t(n) * std::max(D, q_out));
  ws.q.resize(size_t(n) * q_out);
  ws.gate.resize(size_t(n) * std::max(F, D));  // also holds o_proj's output [n, D]
  ws.up.resize(size_t(n) * std::max(F, D));    // also holds down_proj's output [n, D]
  if (hooks && hooks->linear_input) ws.hook.resize(size_t(n) * std::max({D, F, q_out}));
  ws.cos.resize(size_t(n) * hd);
  ws.sin.resize(size_t(n) * hd);

  const float* emb = model.W("model.embed_tokens.weight").data.data();  // [vocab, D]
  const int first_layer = hooks && hooks->start_hidden ? hooks->start_layer : 0;
  QL_CHECK(first_layer <= c.n_layers, "start_layer {} > n_layers {}", first_layer, c.n_layers);
  const bool mlp_first = hooks && hooks->start_hidden && hooks->start_mlp;  // layer first_layer: its MLP only
  // A RoPE table row depends on its position alone, so the rows split like any per-row step.
  ForRows(n, D + 2 * hd, [&](int t0, int t1) {
    ops::RopeTables(pos0 + t0, t1 - t0, hd, c.rope_theta, c.rope_interleaved, &ws.cos[size_t(t0) * hd],
                    &ws.sin[size_t(t0) * hd]);
    float* x = &ws.x[size_t(t0) * D];
    if (first_layer > 0 || mlp_first) {
      std::memcpy(x, hooks->start_hidden + size_t(t0) * D, sizeof(float) * size_t(t1 - t0) * D);
      return;
    }
    for (int t = t0; t < t1; ++t) std::memcpy(&ws.x[size_t(t) * D], emb + size_t(tokens[t]) * D, sizeof(float) * D);
  });

  for (int l = first_layer; l < c.n_layers; ++l) {
    const std::string p = LayerPrefix(l);
    const bool attention = !(mlp_first && l == first_layer);
    float* o = ws.gate.data();  // [n, D] o_proj's output (gate's buffer is free until the MLP)
    if (attention) {
      // ---- attention block ----
      const float* w_in = model.W(p + "input_layernorm.weight").data.data();
      ForRows(n, D, [&](int t0, int t1) {
        for (int t = t0; t < t1; ++t) ops::RmsNorm(&ws.x[size_t(t) * D], w_in, D, eps, &ws.xn[size_t(t) * D]);
      });
      float* kl = k_layer[l] + size_t(pos0) * kv_out;  // [n, KV*hd] new rows
      float* vl = v_layer[l] + size_t(pos0) * kv_out;
      if (!Linear(model, p + "self_attn.q_proj", ws.xn.data(), n, D, ws.q.data(), hooks, ws, c.qkv_bias))
        return Status::Ok();
      if (!Linear(model, p + "self_attn.k_proj", ws.xn.data(), n, D, kl, hooks, ws, c.qkv_bias)) return Status::Ok();
      if (!Linear(model, p + "self_attn.v_proj", ws.xn.data(), n, D, vl, hooks, ws, c.qkv_bias)) return Status::Ok();
      const float* qn = c.qk_norm ? model.W(p + "self_attn.q_norm.weight").data.data() : nullptr;
      const float* kn = c.qk_norm ? model.W(p + "self_attn.k_norm.weight").data.data() : nullptr;
      ForRows(n, q_out + kv_out, [&](int t0, int t1) {
        for (int t = t0; t < t1; ++t) {
          float* qt = &ws.q[size_t(t) * q_out];
          float* kt = kl + size_t(t) * kv_out;
          if (c.qk_norm) {  // Qwen3: per-head RMSNorm over head_dim, before RoPE
            for (int h = 0; h < H; ++h) ops::RmsNorm(qt + h * hd, qn, hd, eps, qt + h * hd);
            for (int h = 0; h < KV; ++h) ops::RmsNorm(kt + h * hd, kn, hd, eps, kt + h * hd);
          }
          const float* cs = &ws.cos[size_t(t) * hd];
          const float* sn = &ws.sin[size_t(t) * hd];
          ops::Rope(qt, H, hd, cs, sn, c.rope_interleaved);
          ops::Rope(kt, KV, hd, cs, sn, c.rope_interleaved);
        }
      });
      if (hooks && hooks->kv) hooks->kv(l, kl, vl, n);
      if (hooks && hooks->attn_q) hooks->attn_q(l, ws.q.data(), n);
      float* att = ws.xn.data();  // [n, H*hd]: the normed input is dead once q/k/v exist
      Attention(c, model.matmul, ws.q.data(), k_layer[l], v_layer[l], n, pos0, att, ws, hooks, l);
      if (!Linear(model, p + "self_attn.o_proj", att, n, q_out, o, hooks, ws, false)) return Status::Ok();
    }

    // ---- MLP block: down(silu(gate x) ⊙ up x) ----
    const float* w_post = model.W(p + "post_attention_layernorm.weight").data.data();
    ForRows(n, D, [&](int t0, int t1) {  // residual add of o_proj, then the MLP's norm
      float* x = &ws.x[size_t(t0) * D];
      if (attention) ops::Add(o + size_t(t0) * D, x, size_t(t1 - t0) * D);
      for (int t = t0; t < t1; ++t) ops::RmsNorm(&ws.x[size_t(t) * D], w_post, D, eps, &ws.xn[size_t(t) * D]);
    });
    if (hooks && hooks->attn_residual) hooks->attn_residual(l, ws.x.data(), n);
    if (!Linear(model, p + "mlp.gate_proj", ws.xn.data(), n, D, ws.gate.data(), hooks, ws, false)) return Status::Ok();
    if (!Linear(model, p + "mlp.up_proj", ws.xn.data(), n, D, ws.up.data(), hooks, ws, false)) return Status::Ok();
    ForRows(n, F, [&](int t0, int t1) {
      const size_t off = size_t(t0) * F;
      ops::SiluMul(ws.gate.data() + off, ws.up.data() + off, size_t(t1 - t0) * F, ws.gate.data() + off);
    });
    float* down = ws.up.data();  // [n, D]
    if (!Linear(model, p + "mlp.down_proj", ws.gate.data(), n, F, down, hooks, ws, false)) return Status::Ok();
    ForRows(n, D, [&](int t0, int t1) {
      ops::Add(down + size_t(t0) * D, ws.x.data() + size_t(t0) * D, size_t(t1 - t0) * D);
    });
    if (hooks && hooks->block_output) hooks->block_output(l, ws.x.data(), n);
    if (hooks && hooks->stop_after_layer == l) return Status::Ok();
  }

  const int first = last_only ? n - 1 : 0, rows = n - first;
  const float* w_final = model.W("model.norm.weight").data.data();
  ForRows(rows, D, [&](int t0, int t1) {
    for (int t = first + t0; t < first + t1; ++t)
      ops::RmsNorm(&ws.x[size_t(t) * D], w_final, D, eps, &ws.xn[size_t(t - first) * D]);
  });
  const std::string head = c.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  // Rows skipped by logits_from_row: never so many that fewer than kGemmDotRows remain.
  const int skip = last_only || !hooks ? 0 : std::clamp(hooks->logits_from_row, 0, std::max(0, rows - kGemmDotRows));
  (void)Linear(model, "lm_head", ws.xn.data(), rows, D, logits, hooks, ws, false, head, skip);  // stopped or not: done
  return Status::Ok();
}

}  // namespace

Status ForwardWindow(const Model& model, std::span<const int> tokens, float* logits, const ForwardHooks* hooks) {
  const ModelConfig& c = model.config;
  // One layer's keys/values at a time: the window needs no cache beyond the layer being computed.
  // Kept by the thread, as ForwardCore's workspace: two fresh buffers per window were returned to the
  // kernel on free (glibc trims the heap top) and page-faulted in again, ~5% of a 135M window.
  // Every row is written by the layer's k/v projections before attention reads it.
  const size_t kv = std::max<size_t>(1, tokens.size()) * size_t(std::max(0, c.n_kv_heads * c.head_dim));
  thread_local std::vector<float> tls_k, tls_v;
  std::vector<float>& k = tls_k;  // [T, KV*hd]
  std::vector<float>& v = tls_v;
  if (k.size() < kv) k.resize(kv), v.resize(kv);
  std::vector<float*> ks(std::max(0, c.n_layers), k.data()), vs(std::max(0, c.n_layers), v.data());
  return ForwardCore(model, tokens, 0, ks.data(), vs.data(), logits, false, hooks);
}

Status ForwardFromBlock(const Model& model, std::span<const int> tokens, int k, const float* hidden, float* logits,
                        const ForwardHooks* hooks) {
  if (k == 0) return ForwardWindow(model, tokens, logits, hooks);
  ForwardHooks from = hooks ? *hooks : ForwardHooks{};
  from.start_layer = k;
  from.start_hidden = hidden;
  from.start_mlp = false;
  return ForwardWindow(model, tokens, logits, &from);
}

Status ForwardFromMlp(const Model& model, std::span<const int> tokens, int k, const float* hidden, float* logits,
                      const ForwardHooks* hooks) {
  QL_CHECK(k >= 0 && k < model.config.n_layers, "ForwardFromMlp: block {} of {}", k, model.config.n_layers);
  ForwardHooks from = hooks ? *hooks : ForwardHooks{};
  from.start_layer = k;
  from.start_hidden = hidden;
  from.start_mlp = true;
  return ForwardWindow(model, tokens, logits, &from);
}

Status ForwardWindows(const Model& model, std::span<const std::span<const int>> windows,
                      std::span<float* const> logits, const ForwardHooks* hooks, int threads) {
  if (windows.size() != logits.size())
    return Status::Errorf("forward: {} windows but {} logits buffers", windows.size(), logits.size());
  std::vector<Status> status(windows.size());
  ParallelFor(int(windows.size()), threads > 0 ? threads : NumThreads(),
              [&](int i, int) { status[i] = ForwardWindow(model, windows[i], logits[i], hooks); });
  for (size_t i = 0; i < status.size(); ++i)
    if (!status[i].ok()) return Status::Errorf("window {}: {}", i, status[i].message());
  return Status::Ok();
}

Status ForwardWindowsEach(const Model& model, std::span<const std::span<const int>> windows,
                          const ForwardHooks* hooks, int threads,
                          const std::function<Status(int window, int tid, const float* logits)>& consume,
                          const std::function<void(int window, ForwardHooks* h)>& per_window) {
  size_t t_max = 0;
  for (const auto& w : windows) t_max = std::max(t_max, w.size());
  threads = std::max(1, std::min<int>(threads > 0 ? threads : NumThreads(), int(windows.size())));
  std::vector<std::vector<float>> logits(threads);  // [threads][T_max, vocab], sized on first use
  std::vector<Status> status(windows.size());
  ParallelFor(int(windows.size()), threads, [&](int i, int tid) {
    logits[tid].resize(t_max * size_t(model.config.vocab_size));
    if (per_window) {
      ForwardHooks h = hooks ? *hooks : ForwardHooks{};
      per_window(i, &h);
      status[i] = ForwardWindow(model, windows[i], logits[tid].data(), &h);
    } else {
      status[i] = ForwardWindow(model, windows[i], logits[tid].data(), hooks);
    }
    if (status[i].ok()) status[i] = consume(i, tid, logits[tid].data());
  });
  for (size_t i = 0; i < status.size(); ++i)
    if (!status[i].ok()) return Status::Errorf("window {}: {}", i, status[i].message());
  return Status::Ok();
}

// Whole windows on separate threads when the widest per-layer product of one window (2·T·dim·hidden
// flops) is below this: ~1 ms on one core, where the fork/join of every product and the tiles that
// do not divide evenly cost more than the window split loses at its tail (compare with
// bench/forward_bench.cc BM_ForwardStories260KWindows). SmolLM2-135M at T=512 (9e8) is above it,
// stories260K (1.1e7) and quantlab-tiny at T=256 (9.2e7) below.
constexpr double kWindowSplitFlops = 1e8;

int WindowThreads(const ModelConfig& c, int T, int n_windows) {
  const double widest = 2.0 * T * double(c.dim) * std::max(c.dim, c.hidden_dim);
  if (n_windows < 2 || widest >= kWindowSplitFlops) return 1;
  return std::min(NumThreads(), n_windows);
}

KvCache KvCache::ForModel(const ModelConfig& c, int capacity) {
  KvCache cache;
  cache.capacity = capacity;
  cache.k.assign(c.n_layers, std::vector<float>(size_t(capacity) * c.n_kv_heads * c.head_dim));
  cache.v.assign(c.n_layers, std::vector<float>(size_t(capacity) * c.n_kv_heads * c.head_dim));
  return cache;
}

namespace {
Status ForwardCachedImpl(const Model& model, std::span<const int> tokens, KvCache* cache, float* logits,
                         bool last_only, const ForwardHooks* hooks) {
  const ModelConfig& c = model.config;
  if (int(cache->k.size()) != c.n_layers || int(cache->v.size()) != c.n_layers)
    return Status::Errorf("forward: KV cache has {} layers, the model {} (build it with KvCache::ForModel)",
                          cache->k.size(), c.n_layers);
  if (cache->length + int64_t(tokens.size()) > cache->capacity)
    return Status::Errorf("forward: KV cache holds {} positions, {} needed", cache->capacity,
                          cache->length + tokens.size());
  std::vector<float*> ks(c.n_layers), vs(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) ks[l] = cache->k[l].data(), vs[l] = cache->v[l].data();
  QL_RETURN_IF_ERROR(ForwardCore(model, tokens, cache->length, ks.data(), vs.data(), logits, last_only, hooks));
  cache->length += int(tokens.size());
  return Status::Ok();
}
}  // namespace

Status ForwardCached(const Model& model, std::span<const int> tokens, KvCache* cache, float* last_logits,
                     const ForwardHooks* hooks) {
  return ForwardCachedImpl(model, tokens, cache, last_logits, /*last_only=*/true, hooks);
}

Status ForwardCachedAll(const Model& model, std::span<const int> tokens, KvCache* cache, float* logits,
                        const ForwardHooks* hooks) {
  return ForwardCachedImpl(model, tokens, cache, logits, /*last_only=*/false, hooks);
}

}  // namespace ql
