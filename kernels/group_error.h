// The output error of a quantized weight on calibration inputs, group by group of input columns, in
// one fused pass per weight row block: quantize (or take) the group, subtract the original, dot with
// every calibration row, square, sum. The inner step of AWQ's clip search (docs/algorithms.md §2),
// without materializing the quantized matrix or one small GEMM per group. Not a quantizer of record:
// nothing is stored but the error sums. Highway SIMD, dispatched at run time, beside a scalar oracle.
#pragma once

#include <cstdint>

namespace ql {

// For every row r of w [rows, cols] and group g of `group` columns (c0 = g·group, the last one may be
// narrower), with d = q − w over that group:
//   err[r·n_groups + g] = Σ_{t = 0}^{n−1} e_t²,   e_t = Σ_{k = 0}^{width−1} x[t, c0 + k] · d[r, c0 + k]
// where e_t is ONE float FMA chain over k ascending from 0 (the element rule of kernels/gemm.h, so e_t
// equals Gemm's C element bit for bit on FMA targets) and the sum is in double, t ascending (e_t² is
// exact in double, so fused or not gives the same bits). x is [n, cols]. With `bound` ([rows, n_groups],
// may be null) a sum may stop early once err / n >= bound (t only adds non-negative terms, so the final
// err / n would be >= bound too): err is then some value with err / n >= bound. Rows are split over
// `threads` in fixed blocks: any thread count gives the same bits. Cost 2·rows·cols·n flops.
void GroupOutputErrors(const float* w, const float* q, int64_t rows, int64_t cols, int64_t group, const float* x,
                       int64_t n, const double* bound, double* err, int threads);

// The same with q computed in the pass: per (r, g), the clipped group c = clamp(w, −m, m) with
// m = clip[r·n_groups + g], quantized by the symmetric integer rule of kernels/act_quant.h
// (s = max|c| / qmax, q = rne(clamp(c / s, −qmax, qmax)) · s, +0 when s = 0) on that same group: bitwise
// FakeQuantize of the clipped matrix for `int<b>:g<group>` (and `:channel` with group = cols), sym, max
// clipping, fp32 scales. Returns false, with err unspecified, when w or clip holds a non-finite value
// (the caller then takes FakeQuantize and GroupOutputErrors). 1 <= qmax.
bool ClipOutputErrorsIntSym(const float* w, const float* clip, int64_t rows, int64_t cols, int64_t group, int qmax,
                            const float* x, int64_t n, const double* bound, double* err, int threads);

// Oracle of GroupOutputErrors (no bound, full sums), in scalar code with std::fma.
void GroupOutputErrorsRef(const float* w, const float* q, int64_t rows, int64_t cols, int64_t group, const float* x,
                          int64_t n, double* err);

const char* GroupErrorTarget();  // the Highway target the kernels dispatch to here

}  // namespace ql
