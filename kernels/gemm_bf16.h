// C = alpha · bf16(A) · op(bf16(B)) with FP32 accumulation: the matrix product of the true BF16
// compute mode (what BF16 deployments run: weights and GEMM inputs in BF16, products exact in FP32,
// sums in FP32). On CPUs with AVX512_BF16 it is VDPBF16PS; elsewhere a scalar emulation of the same
// arithmetic (correct but slow: use fp32 there). Not a format quantizer (kernels/half.h rounds weights).
//
// Rounding of inputs: nearest-even to BF16 (kernels/half.h F32ToBf16). Summation order, fixed by the
// instruction and independent of the thread count: K is taken in pairs p = 0, 1, ... (an odd K padded
// with a zero), and for each pair acc = acc + a[2p+1]·b[2p+1], then acc = acc + a[2p]·b[2p], each one
// rounding to FP32 (Intel SDM, VDPBF16PS; the BF16 products are exact in FP32, so each step is a fused
// multiply-add), BF16 denormal inputs read as zero and denormal sums flushed to zero. Then one
// multiply by alpha. Work items are fixed tiles of C as in kernels/gemm.h.
#pragma once

#include "kernels/gemm.h"

namespace ql {

void GemmBf16(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, BLayout layout,
              float* C, int ldc, int threads);

// Oracle: the arithmetic above written out element by element (bitwise what VDPBF16PS computes on
// normal numbers).
void GemmBf16Ref(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 BLayout layout, float* C, int ldc);

bool HasAvx512Bf16();  // this CPU runs VDPBF16PS (else GemmBf16 takes the scalar emulation)

}  // namespace ql
