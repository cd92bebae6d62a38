// LLM.int8() (Dettmers et al. 2022; docs/algorithms.md §4) as fake quantization: weights int8 per output row
// (the cell's weight scheme, int8:channel for the paper's setting), and at evaluation every targeted
// linear input split into outlier feature columns (any |x| >= threshold among the window's tokens),
// kept in full precision, and the rest quantized int8 per token (absmax/127).
//
// Why an input transform reproduces the mixed-precision matmul: bitsandbytes computes
//   out = dequant(CA · CBᵀ) + X[:, outliers] · (CB[:, outliers] · SCB/127)ᵀ
// where both terms use the same int8-dequantized weight Ŵ, so out = (Q_tok(X_regular) + X_outliers) · Ŵᵀ.
// The runtime hook replaces x by Q_tok(x with outlier columns zeroed) + x's outlier columns, and the
// weight is Ŵ; the GEMM then computes exactly that sum (up to float summation order).
#pragma once

#include "harness/quant/algorithm.h"

namespace ql {

// x: [T, in], in place. Returns the number of outlier columns.
int LlmInt8Input(float* x, int T, int in, float threshold);

AlgorithmInfo LlmInt8Algorithm();

}  // namespace ql
