// The numerics version: a number that changes whenever a change to quantlab alters any result it
// computes (a kernel's rounding, a summation order, a metric's definition, a protocol's windows). It
// enters every cell's identity in place of the code version, so a README edit re-runs nothing and a
// numerics change re-runs everything. tests/sweep/golden_test.cc holds the default model's numbers for
// the current version and fails when they move without a bump here.
#pragma once

namespace ql {

// 1: the first versioned numerics (thread-count-independent forward pass, schema 3).
// 2: llama.cpp mixes in sweeps through LlamaMixScheme (Q4_K_M falls back to q5_0 / q8_0 for rows that are
//    not whole 256-blocks, as llama-quantize does; before, such rows were partial q4_k / q6_k blocks).
// 3: GPTQ and GPTAQ on quantlab's own kernels: the Hessian, the factor of its inverse, GPTAQ's D and P
//    (kernels/spd.h) and the lazy-batch updates (kernels/gemm.h, ops::Axpy) instead of OpenBLAS's dsyrk,
//    LAPACK, dgemm, sgemm and saxpy, so their numbers no longer depend on the OpenBLAS core.
inline constexpr int kNumericsVersion = 3;

}  // namespace ql
