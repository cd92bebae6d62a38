// Forward and backward of the ops the trainer needs (linear, RMSNorm, rotate-half/interleaved RoPE,
// causal GQA attention, SwiGLU, embedding, cross-entropy), float32 with kernels/gemm.h for the matmuls.
// Backward functions ACCUMULATE into parameter gradients (dw +=) and OVERWRITE input gradients (dx =)
// unless stated otherwise. Not an autograd system: each op is a pair of plain functions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ql::train {

// Elementwise loops run on kernels/parallel.h's pool in chunks of this many elements (a cut that does
// not depend on the thread count; each element is computed alone, so any count gives the same bits).
inline constexpr int64_t kElementChunk = int64_t(1) << 14;

// y[N, out] = x[N, in] · W[out, in]^T.
void LinearForward(const float* x, const float* w, int n, int in, int out, float* y);
// dx[N, in] = dy · W (overwrites; may be null to skip);  dw[out, in] += dy^T · x.
void LinearBackward(const float* x, const float* w, const float* dy, int n, int in, int out, float* dx,
                    float* dw);

// y[N, D] = x * rstd * w with rstd[N] = 1 / sqrt(mean(x^2) + eps) (saved for backward).
void RmsNormForward(const float* x, const float* w, int n, int d, float eps, float* y, float* rstd);
// dx (overwrites) and dw += from dy, the saved rstd and the forward input x.
void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int n, int d,
                     float* dx, float* dw);

// RoPE tables for positions 0..t-1 as kernels/ops.h RopeTables lays them out: cos/sin [T, hd].
void RopeTables(int t, int head_dim, float theta, bool interleaved, std::vector<float>* cos,
                std::vector<float>* sin);
// In place on x[N = B*T, heads*hd]: row r is position r % T. inverse = true applies the transpose
// rotation (the backward of the forward rotation).
void RopeApply(float* x, int n, int t, int heads, int hd, const float* cos, const float* sin, bool interleaved,
               bool inverse);

// Causal grouped-query attention over B sequences of T tokens.
//   q [B*T, H*hd], k/v [B*T, KV*hd] -> out [B*T, H*hd]; probs [B, H, T, T] saved for backward
//   (upper triangle zero). Scale 1/sqrt(hd).
void AttentionForward(const float* q, const float* k, const float* v, int b, int t, int h, int kv, int hd,
                      float* probs, float* out);
// dq (overwrites), dk, dv (overwrite) from dout.
void AttentionBackward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                       int b, int t, int h, int kv, int hd, float* dq, float* dk, float* dv);

// out[n] = silu(gate) * up.
void SwiGluForward(const float* gate, const float* up, int64_t n, float* out);
// dgate, dup (overwrite) from dout.
void SwiGluBackward(const float* gate, const float* up, const float* dout, int64_t n, float* dgate, float* dup);

// Mean cross-entropy of logits [N, V] against targets [N] (ids; a negative target is ignored).
// Returns the mean loss over counted rows; if dlogits is non-null it receives d(mean loss)/d(logits)
// (may alias logits). Accumulates in double.
double CrossEntropy(float* logits, const int* targets, int n, int v, float* dlogits);

// Mean KL divergence KL(p || softmax(logits)) over n rows of a teacher's probabilities p [n, v] (knowledge
// distillation). If dlogits is non-null it receives d(mean KL)/d(logits) = (softmax(logits) − p) / n
// (may alias logits). Accumulates in double; terms with p = 0 contribute nothing.
double KlToTeacher(float* logits, const float* teacher_probs, int n, int v, float* dlogits);

}  // namespace ql::train
