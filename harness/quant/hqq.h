// HQQ, Half-Quadratic Quantization (Badri & Shaji 2023, mobiusml/hqq; docs/algorithms.md §HQQ): calibration-free
// optimisation of each group's zero point for an lp-norm (p < 1) weight error by half-quadratic splitting,
// with the scale fixed at the scheme's own min/max scale. Integer asym schemes of g<N> or channel
// granularity. Not a rounding rule of its own: the scheme's asym grid with the chosen (fp16 or integer) zeros.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/quant/algorithm.h"
#include "kernels/scheme.h"
#include "kernels/status.h"

namespace ql {

struct HqqOptions {
  double lp_norm = 0.7;  // p of the sparsity-promoting error norm
  double beta = 10.0;    // initial penalty of the split W_e = W - W_r
  double kappa = 1.01;   // beta *= kappa after every iteration
  int iters = 20;
  bool early_stop = true;  // stop at the first iteration whose mean |W - W_r| does not decrease
  // The stored zero point: fp16 (the reference's; 16 bits per group where the scheme packs b: int4:g32
  // +0.375 bits/weight, which HqqQuantizeWeight reports and the cell counts) or the scheme's own b-bit integer
  // (exactly the scheme's storage; the rounding usually undoes the optimisation, see docs/algorithms.md §8).
  bool fp16_zero = true;
};

// The proximal step of |x|^p (generalised soft threshold, HQQ's shrink_lp_op):
// sign(x) · max(0, |x| − |x + 1e-8|^(p−1) / beta)   (the reference adds 1e-8 to |x| before the power).
float HqqShrink(float x, float beta, float p);

// The closed-form zero update of one group (x [n], fixed scale s, code range [0, qmax]) from zero z:
// W_q = clamp(round(x/s + z), 0, qmax), W_e = shrink(x − (W_q − z)·s), z' = mean(W_q − (x − W_e)/s).
float HqqZeroStep(const float* x, int64_t n, float s, int qmax, float z, float beta, float p);

// HQQ on one weight w ([rows, cols] row-major, in place: dequantized values of the scheme's grid).
// trace (optional): mean |W − W_r| of every iteration run, in order (the reference's `current_error`).
// extra_bytes (optional): bytes stored beyond the scheme's own: with fp16 zeros 2 per group minus the
// scheme's packed b-bit zeros, else 0.
Status HqqQuantizeWeight(const Scheme& scheme, float* w, int64_t rows, int64_t cols, const HqqOptions& opt,
                         std::vector<double>* trace = nullptr, int64_t* extra_bytes = nullptr);

AlgorithmInfo HqqAlgorithm();

}  // namespace ql
