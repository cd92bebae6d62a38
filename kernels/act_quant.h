// Dynamic symmetric integer fake quantization of activations, in place and vectorized (Highway,
// dispatched at run time): the hot path of activation cells (W8A8's int8:token linear inputs). Bitwise
// the same as kernels/quantizer.h FakeQuantize on the schemes it accepts (`int<b>:token`,
// `int<b>:channel` and `int<b>:g<N>` with sym mode, max clipping and fp32 scales); anything else, and
// any non-finite input, is the caller's to send to FakeQuantize. Not a weight quantizer (no codes kept).
#pragma once

#include <cstdint>

#include "kernels/scheme.h"
#include "kernels/status.h"

namespace ql {

// Per run of `group` columns of each row of x [rows, cols] (group = cols: one scale per token):
//   amax = max |x|, s = amax / qmax (fp32), x ← rne(clamp(x / s, −qmax, qmax)) · s, or +0 when s = 0,
// the rounding of kernels/quantizer.cc (ties to even, −0 codes dequantize to +0). Rows are split over
// `threads` threads (per-element arithmetic: any count gives the same bits). Returns false, and
// leaves x untouched, when some value is NaN or ±Inf. group >= 1, 1 <= qmax.
bool FakeQuantIntSymRows(float* x, int64_t rows, int64_t cols, int64_t group, int qmax, int threads);

// Oracle: the rule above element by element, in scalar code.
bool FakeQuantIntSymRowsRef(float* x, int64_t rows, int64_t cols, int64_t group, int qmax);

// The (group, qmax) FakeQuantIntSymRows computes `s` with on rows of `cols` values, or false when the
// scheme is outside the accepted set (then use FakeQuantize).
bool IntSymRowsParams(const Scheme& s, int64_t cols, int64_t* group, int* qmax);

// FakeQuantize(scheme, x, rows, cols, x) in place for any scheme: FakeQuantIntSymRows (on NumThreads()
// threads) where IntSymRowsParams accepts the scheme and x is finite, else FakeQuantize in place (its
// result and its error message; x is unchanged on an error).
Status FakeQuantizeInPlace(const Scheme& scheme, float* x, int64_t rows, int64_t cols);

const char* ActQuantTarget();  // the Highway target FakeQuantIntSymRows dispatches to here

}  // namespace ql
