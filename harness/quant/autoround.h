// AutoRound (Cheng et al., "Optimize Weight Rounding via Signed Gradient Descent for the Quantization of
// LLMs", arXiv:2309.05516) as an algorithm: per decoder block, learns a rounding offset V ∈ [−0.5, 0.5] per
// weight and factors α, β ∈ [0.5, 1] on each group's min and max with signed gradient descent, minimising
// the mean squared difference between the block's output with quantized weights (on the inputs the already
// quantized blocks produce) and its full-precision output. Integer element schemes with the max rule only
// (int<b>:g<n>|channel|tensor, sym / symfull / asym, fp32/fp16/bf16 scales); not MX/NVFP4/NF4 (their
// codebook rounding has no offset to learn in this form; see docs/algorithms.md §11).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/quant/algorithm.h"
#include "kernels/scheme.h"

namespace ql {

struct CalibrationSet;

// The integer grid of one weight tensor under a scheme: tile shape, code range, scale rule.
struct AutoRoundGrid {
  TileShape tiles;
  int64_t rows = 0, cols = 0;
  int qmin = 0, qmax = 0;  // integer code range (asym: 0 .. 2^b − 1)
  float range_div = 1;     // s = range / range_div, as kernels/quantizer.cc
  bool asym = false;
  ScaleDtype scale_dtype = ScaleDtype::kFp32;
};
// Errors name the scheme when it is not an integer element scheme with the max rule and an fp32 / fp16 /
// bf16 scale.
StatusOr<AutoRoundGrid> MakeAutoRoundGrid(const Scheme& scheme, int64_t rows, int64_t cols);

// The learned parameters of one weight.
struct AutoRoundParams {
  std::vector<float> v;      // [rows, cols] rounding offsets, in [−0.5, 0.5]
  std::vector<float> alpha;  // [tiles] factor on the tile's min, in [0.5, 1]
  std::vector<float> beta;   // [tiles] factor on the tile's max, in [0.5, 1]
};
AutoRoundParams InitialAutoRoundParams(const AutoRoundGrid& g);  // V = 0, α = β = 1: round to nearest

// wq [rows, cols] from w: per tile lo = α·min, hi = β·max; sym: s = max(|lo|, |hi|)/range_div; asym:
// s = (max(hi, 0) − min(lo, 0))/range_div, z = rne(clamp(−min(lo, 0)/s, 0, qmax)); s rounded to its dtype;
// q = clamp(rne(w/s + V) + z, qmin, qmax), wq = (q − z)·s. At V = 0, α = β = 1 this is FakeQuantize bit for
// bit. identity_rounding replaces rne by the identity: the smooth surrogate whose exact gradient is the
// straight-through estimate (for finite-difference tests).
void AutoRoundQuantize(const AutoRoundGrid& g, const float* w, const AutoRoundParams& p, bool identity_rounding,
                       float* wq);
// From dwq = dL/dwq [rows, cols]: dL/dV, dL/dα, dL/dβ (overwritten; sized like p) by the straight-through
// estimator (d rne(x)/dx := 1, clamp passes the gradient inside its range, scale rounding treated as 1).
void AutoRoundBackward(const AutoRoundGrid& g, const float* w, const AutoRoundParams& p, bool identity_rounding,
                       const float* dwq, AutoRoundParams* grad);

struct AutoRoundOptions {
  int iters = 200;          // signed-gradient steps per block (the paper's default)
  double lr = 0;            // step size of V, α, β; 0 = 1/iters (the paper's default), decayed linearly to 0
  int batch = 8;            // calibration windows per step
  uint64_t seed = 0;        // batch order
};

// The block objective on windows `idx` of the saved inputs: x [n_windows, t, D] (block inputs), y
// [n_windows, t, D] (full-precision block outputs); the layer's quantized weights are taken from `params`
// (weight name -> (grid, params)), the other tensors from `model`. Returns mean((out − y)²); with grads
// non-null, their dL/dV, dL/dα, dL/dβ (overwritten).
struct AutoRoundTensor {
  AutoRoundGrid grid;
  AutoRoundParams params;
};
StatusOr<double> AutoRoundBlockLoss(const Model& model, int layer, const std::vector<float>& x,
                                    const std::vector<float>& y, int t, const std::vector<int>& idx,
                                    const std::map<std::string, AutoRoundTensor>& tensors, bool identity_rounding,
                                    std::map<std::string, AutoRoundParams>* grads);

struct AutoRoundLog {
  // Per block: the objective on all windows at RTN (a batch at a time) and at the result (from the outputs
  // the next block is given). With iters 0 the block stays at RTN and rtn_loss is final_loss.
  std::vector<double> rtn_loss, final_loss;
};

// Quantizes model's weights (weight name -> scheme text) block by block; weights outside decoder blocks
// (lm_head) by round to nearest. windows: calibration token windows of equal length.
Status RunAutoRound(Model& model, const std::map<std::string, std::string>& weight_schemes,
                    const CalibrationSet& data, const AutoRoundOptions& options, AutoRoundLog* log);

AlgorithmInfo AutoRoundAlgorithm();

}  // namespace ql
