// The batched forward pass of the Llama-family model (harness/model/model.h) over one causal window.
// Reads weights from the Model at call time, so a quantized copy of the weight table takes effect.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "harness/model/model.h"

namespace ql {

// Hooks let algorithms observe or change activations without touching the forward pass.
// Every hook is optional. Shapes are row-major; T = tokens in the window.
struct ForwardHooks {
  // Input of each linear layer, x: [T, in_features]; may modify x in place (activation fake-quant)
  // or record statistics (calibration). module_path e.g. "model.layers.0.mlp.down_proj".
  std::function<void(std::string_view module_path, float* x, int T, int in_features)> linear_input;
  // Keys and values of a layer after RoPE, k/v: [T, n_kv_heads * head_dim]; may modify in place.
  std::function<void(int layer, float* k, float* v, int T)> kv;
  // Queries of a layer after RoPE (and qk-norm), q: [T, n_heads * head_dim], the left operand of QKᵀ;
  // may modify in place (attention-input fake-quant). Called after `kv`. The 1/sqrt(head_dim) score
  // scale is NOT applied yet (it scales the product, as K carries none either), so a scheme sees the
  // same Q a kernel with a separate softmax scale would quantize. The keys and values as inputs of QKᵀ
  // and P·V are the `kv` hook's. With a KV cache only the new tokens' rows are passed.
  std::function<void(int layer, float* q, int T)> attn_q;
  // Softmax output of one query head, the left operand of P·V, p: [rows, cols] row-major; row r is
  // the query at absolute position q_pos0 + r and holds its probabilities over keys 0..q_pos0 + r;
  // entries past that (causally masked) are 0 and are reset to 0 after the hook. May modify in place
  // (attention-probability fake-quant: quantize row by row). cols >= q_pos0 + rows. Called from the
  // attention worker threads, concurrently for different (head, rows): must be thread-safe.
  std::function<void(int layer, int head, int q_pos0, float* p, int rows, int cols)> attn_probs;
  // Residual stream after each decoder block, h: [T, dim] (read-only: per-layer output error).
  std::function<void(int layer, const float* h, int T)> block_output;
  // Residual stream after a block's attention (o_proj added; the input of its MLP's norm), h: [T, dim]
  // (read-only: kept for starting a model changed only in that block's MLP there).
  std::function<void(int layer, const float* h, int T)> attn_residual;
  // >= 0: ForwardWindow returns right after this layer (logits are left untouched). Calibration
  // capturing the inputs of layer l needs nothing beyond it.
  int stop_after_layer = -1;
  // Non-empty (a module path, e.g. "model.layers.3.mlp.down_proj" or "lm_head"): ForwardWindow returns
  // right after that linear's linear_input hook, before its product (logits are left untouched).
  // Calibration of a module needs nothing past its input.
  std::string stop_at_input;
  // > 0: ForwardWindow starts at this layer with the residual stream start_hidden ([T, dim], the
  // input of that layer, e.g. saved by block_output of the layer before); the embedding and earlier
  // layers are skipped. Layer-by-layer calibration (GPTQ) runs one layer at a time with it.
  // start_layer = n_layers runs only the final norm and the LM head.
  int start_layer = 0;
  const float* start_hidden = nullptr;
  // With start_hidden: start_hidden is the residual after start_layer's attention (attn_residual's),
  // and that layer runs its MLP only (start_layer 0 included).
  bool start_mlp = false;
  // > 0: the LM head's product runs on token rows >= this only (a protocol scores the later rows of
  // a window: llama.cpp's the second half); logits rows before it are left untouched. The final norm
  // and the head's linear_input hook still see every row, and each logit row is one FMA chain over
  // its own input row (kernels/gemm.h), so the rows computed are bitwise those of the whole product;
  // at least kGemmDotRows rows always run (a shorter product would take the dot-product path).
  int logits_from_row = 0;
};

// tokens: [T] with T <= config.max_seq_len (or any T when max_seq_len is 0); logits: [T, vocab].
Status ForwardWindow(const Model& model, std::span<const int> tokens, float* logits,
                     const ForwardHooks* hooks = nullptr);

// The window from block k on (0 <= k <= n_layers): hidden [T, dim] is the residual stream entering
// block k (k = n_layers: the final norm's input). Bitwise the same logits as ForwardWindow when hidden
// is what ForwardWindow computes there, since nothing before block k is read. k = 0 ignores hidden.
// `hooks` as ForwardWindow's (their start fields are replaced).
Status ForwardFromBlock(const Model& model, std::span<const int> tokens, int k, const float* hidden, float* logits,
                        const ForwardHooks* hooks = nullptr);

// The window from block k's MLP on (0 <= k < n_layers): hidden [T, dim] is the residual after block k's
// attention (ForwardHooks::attn_residual). Bitwise the same logits as ForwardWindow when hidden is what
// ForwardWindow computes there: block k's MLP reads nothing of its attention but that stream.
Status ForwardFromMlp(const Model& model, std::span<const int> tokens, int k, const float* hidden, float* logits,
                      const ForwardHooks* hooks = nullptr);

// Independent windows on `threads` threads (0 = NumThreads()), one whole window per thread at a time,
// its products on that thread alone: for models too small to fill the cores from one window
// (stories260K). logits[i]: [windows[i].size(), vocab]. Bitwise the same as ForwardWindow on each in
// turn, for any thread count. `hooks` apply to every window and are called concurrently from several
// threads for different windows: they must be thread-safe. Returns the first failing window's error.
Status ForwardWindows(const Model& model, std::span<const std::span<const int>> windows,
                      std::span<float* const> logits, const ForwardHooks* hooks = nullptr, int threads = 0);

// ForwardWindows without holding every window's logits: consume(i, tid, logits) runs on the thread
// that computed window i, right after it, with logits [windows[i].size(), vocab] in that thread's
// scratch (valid during the call only); tid in [0, threads) names the thread for private scratch.
// Memory: one [T_max, vocab] buffer per thread. The first failing window's (or consumer's) error.
// per_window (optional): adjusts a copy of `hooks` for window i before it runs (e.g. a block_output
// that knows which window it sees).
Status ForwardWindowsEach(const Model& model, std::span<const std::span<const int>> windows,
                          const ForwardHooks* hooks, int threads,
                          const std::function<Status(int window, int tid, const float* logits)>& consume,
                          const std::function<void(int window, ForwardHooks* h)>& per_window = {});

// Threads for whole windows (ForwardWindowsEach) when an evaluator has `n_windows` windows of up to
// T tokens: NumThreads() (at most n_windows) when one window cannot fill the cores, else 1 (one window
// after another, each splitting its own products). See the threshold in forward.cc.
int WindowThreads(const ModelConfig& c, int T, int n_windows);

}  // namespace ql
