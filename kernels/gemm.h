// C = alpha · A · op(B) in FP32: the matrix product of the forward pass (every linear, both
// attention products), Highway SIMD chosen at run time from CPUID, beside a scalar oracle. Not a
// BLAS: row-major only, no beta, no transposed A.
//
// Deterministic by construction: every element of C is ONE chain of fused multiply-adds over
// k = 0, 1, ..., K-1 in that order (acc = fma(a[i,k], b[k,j], acc), acc starting at 0), then one
// multiply by alpha. No split of K, no reduction across threads: work items are fixed tiles of C
// whose boundaries depend only on the shape, so the thread count and the schedule change nothing.
// Exception, also thread-independent: with B stored [N, K] and M < kGemmDotRows (decoding), each
// element is a dot product of two contiguous rows in lane-parallel partial sums with a fixed final
// tree (packing B would cost more than the product). Results differ between SIMD targets (AVX-512 vs
// AVX2 lane counts), never between runs on one machine.
#pragma once

#include <cstddef>

namespace ql {

enum class BLayout {
  kNK,  // B stored [N, K] row-major (a linear weight [out, in]): C = A · Bᵀ
  kKN,  // B stored [K, N] row-major: C = A · B
};

inline constexpr int kGemmDotRows = 4;  // M below this with kNK takes the dot-product path

// C[M, N] (leading dim ldc) = alpha · A[M, K] (lda) · op(B) (ldb). threads >= 1; any value gives the
// same bits. Cost 2·M·N·K flops plus one copy of B per 96-row block of A (packing).
void Gemm(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, BLayout layout,
          float* C, int ldc, int threads);

// Oracle: double accumulation, straight from the definition.
void GemmRef(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, BLayout layout,
             float* C, int ldc);

// Name of the SIMD target Gemm dispatches to on this machine (e.g. "AVX3"), for benchmarks and logs.
const char* GemmTarget();

}  // namespace ql
