// Elementwise and reduction ops of the transformer forward pass (RMSNorm, RoPE, softmax, SiLU·mul,
// dot, axpy), SIMD via Highway with runtime dispatch, each beside a plain scalar *Ref oracle.
// Ops take raw pointers and sizes and know nothing of models; matrix products: kernels/gemm.h.
#pragma once

#include <cstddef>

namespace ql::ops {

// y[i] = x[i] * w[i] / sqrt(mean(x²) + eps), i < n. y may alias x. Cost: 2 passes over n.
void RmsNorm(const float* x, const float* w, size_t n, float eps, float* y);
void RmsNormRef(const float* x, const float* w, size_t n, float eps, float* y);

// Rotary position embedding tables for one position, expanded to one entry per lane so the kernel
// is a single fused multiply-add: x'[j] = x[j] * cos[j] + partner(x)[j] * sin[j], where
//   interleaved (llama2.c / GGUF): pairs (2i, 2i+1), partner(x)[2i] = x[2i+1], partner(x)[2i+1] = x[2i]
//   rotate-half (Hugging Face):    pairs (i, i+h), h = head_dim/2, partner(x)[i] = x[i+h], [i+h] = x[i]
// with angle pos * theta^(-2i/head_dim) for pair i (same frequencies in both layouts), and sin signed
// (-sin for the first member of a pair, +sin for the second).
// cos, sin: [n_pos, head_dim], row r for position pos0 + r. head_dim must be even.
void RopeTables(size_t pos0, size_t n_pos, size_t head_dim, float theta, bool interleaved, float* cos, float* sin);
// Rotates n_heads consecutive vectors of head_dim floats at one position (x: [n_heads, head_dim])
// using that position's rows of RopeTables.
void Rope(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin, bool interleaved);
// Oracle: computes the angles itself in double from pos and theta.
void RopeRef(float* x, size_t n_heads, size_t head_dim, size_t pos, float theta, bool interleaved);

// x[0..n) <- exp(x - max) / sum(exp(x - max)), in place, numerically stable. n >= 1.
void Softmax(float* x, size_t n);
void SoftmaxRef(float* x, size_t n);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void SiluMul(const float* gate, const float* up, size_t n, float* out);
void SiluMulRef(const float* gate, const float* up, size_t n, float* out);

// sum_i a[i] * b[i]
float Dot(const float* a, const float* b, size_t n);
float DotRef(const float* a, const float* b, size_t n);

// y[i] += alpha * x[i]
void Axpy(float alpha, const float* x, float* y, size_t n);
void AxpyRef(float alpha, const float* x, float* y, size_t n);

// y[i] += x[i] (residual add)
void Add(const float* x, float* y, size_t n);

}  // namespace ql::ops
