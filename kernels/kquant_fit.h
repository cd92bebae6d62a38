// The scale searches of the GGUF k-quants, vectorised across sub-blocks: ggml's make_qkx2_quants (the
// (scale, min) fit of Q4_K / Q5_K / Q2_K sub-blocks) and make_qx_quants with rmse_type 1 (Q6_K's
// symmetric fit), run on many independent sub-blocks at once, one SIMD lane per sub-block (Highway,
// dispatched at run time). Each lane executes the scalar reference's operations in the scalar's order
// (no FMA, the same sums in the same element order), so every result is bitwise the reference's:
// kernels/gguf_blocks.h MakeQkx2Quants / MakeQxQuants are the oracles (tests/kernels/kquant_fit_test.cc).
// Cost: (nstep + 2) · n multiply-adds per sub-block for qkx2, 20 · n for qx, over min(8, lanes) lanes.
#pragma once

#include <cstdint>

namespace ql::gguf {

// For s in [0, n_sub): scales[s] = MakeQkx2Quants(n, nmax, x + s·n, weights + s·n, L + s·n, &mins[s],
// laux, rmin, rdelta, nstep, use_mad). x, weights, L: [n_sub, n]; n <= 32; nmax <= 255.
void MakeQkx2QuantsBatch(int n_sub, int n, int nmax, const float* x, const float* weights, uint8_t* L,
                         float* scales, float* mins, float rmin, float rdelta, int nstep, bool use_mad);

// For s in [0, n_sub): scales[s] = MakeQxQuants(n, nmax, x + s·n, L + s·n, nullptr) (weights x²).
// x, L: [n_sub, n]; n <= 32.
void MakeQxQuantsBatch(int n_sub, int n, int nmax, const float* x, int8_t* L, float* scales);

const char* KquantFitTarget();  // the Highway target the batches dispatch to here

}  // namespace ql::gguf
