// Fake quantization of the attention matmul inputs: the queries (after RoPE, before the 1/sqrt(d)
// scale) feeding QKᵀ and the softmax output P feeding P·V, installed through ForwardHooks::attn_q /
// attn_probs. Keys and values (the other operands) are the KV-cache quantization (kv_quant.h).
// Not a quantized attention kernel: values are rounded in fp32 and the matmuls stay fp32.
//
// Granularity (row-local only, so prefill and token-by-token decoding give the same numbers):
//   Q: per token and per head: each head's [T, head_dim] slice quantized with the scheme, so "token"
//      = one scale per (token, head), "g<N>" = groups along head_dim, block formats along head_dim.
//   P: per query row: "token" = one scale per (query, head) row over its causal prefix, "g<N>" =
//      groups along the keys, "noscale" = a plain cast (P is in [0, 1], so fp8_e4m3:noscale works).
//   Rejected: tensor, channel, channel_in and b<R>x<C> tiles (they would share a scale across tokens).
#pragma once

#include <mutex>
#include <optional>

#include "harness/model/forward.h"
#include "kernels/scheme.h"
#include "kernels/status.h"

namespace ql {

// Ok when `s` quantizes each row on its own (see above); otherwise an error naming the scheme.
// `what` names the operand in the message ("attention q").
Status CheckRowLocalScheme(const Scheme& s, std::string_view what);

// p: [rows, cols] row-major, fake-quantized in place, each row with its own scale(s).
Status FakeQuantizeRows(const Scheme& s, float* p, int rows, int cols);

// Owns the schemes and the first error; Install() points a ForwardHooks at it, so it must outlive
// every forward pass that uses those hooks. Thread-safe (attn_probs runs on attention threads).
class AttentionQuantizer {
 public:
  AttentionQuantizer(std::optional<Scheme> q, std::optional<Scheme> p, int n_heads, int head_dim)
      : q_(std::move(q)), p_(std::move(p)), n_heads_(n_heads), head_dim_(head_dim) {}
  AttentionQuantizer(const AttentionQuantizer&) = delete;
  AttentionQuantizer& operator=(const AttentionQuantizer&) = delete;

  // Sets hooks->attn_q when a Q scheme is given and hooks->attn_probs when a P scheme is given.
  void Install(ForwardHooks* hooks);
  // The first quantization error seen by any hook call (Ok when none).
  Status status() const;

 private:
  void Fail(const Status& s);
  std::optional<Scheme> q_, p_;
  int n_heads_, head_dim_;
  mutable std::mutex mu_;
  Status first_error_;
};

}  // namespace ql
