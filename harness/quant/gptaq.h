// GPTAQ / GPTQv2 (Li, Yin, Lee, Xiao, Panda 2025, "GPTAQ: Efficient Finetuning-Free Quantization for
// Asymmetric Calibration", arXiv:2504.02692; docs/algorithms.md §14): GPTQ whose layer objective is
// ‖W·X − Q·X̃‖² — the quantized layer's input X̃ comes from the already-quantized prefix, the target from the
// full-precision model's input X — instead of GPTQ's ‖W·X̃ − Q·X̃‖². Its column update adds, beside GPTQ's
// error feedback, each column's share of the asymmetric residual w_q·ΔX_q (ΔX = X − X̃) projected on the later
// columns: w_F += α·w_q·P[q, F], P = triu₁(ΔX·X̃ᵀ·Uᵀ)·U with H⁻¹ = UᵀU (so P[q, F] = (ΔX·X̃ᵀ)[q, F]·H_FF⁻¹).
// This file: P, the full-precision stream beside GPTQ's driver, and the registry entry. GPTQ's column loop
// and driver are gptq.cc's (GptqOptions::asym_p, RunGptq).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/model/model.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/gptq.h"
#include "kernels/status.h"

namespace ql {

struct CalibrationSet;
struct LinearStats;

// P = α·triu₁(D·Uᵀ)·U ([cols, cols] row-major, float) in the factor's column order (act_order's
// permutation), from the cross-covariance D = (2/n)·ΔX·X̃ᵀ ([cols, cols] row-major, double, original order,
// scaled as GPTQ's H) and the factor's U. Columns of dead inputs (factor.dead) are zeroed in D first.
std::vector<float> GptaqP(const GptqFactor& factor, std::vector<double> d, double alpha);

// GPTQ's column loop with P (GptqQuantizeWeight, gptq.cc). Column `col` (index i of the lazy batch starting
// at i1, pre-rounding values wc [rows]) is kept in pre [rows] and adds P[col, i1 + j]·wc to the batch's
// columns j in [j0, count) (w1 [count, rows]); after the batch [i1, i2) every later column of wt [cols, rows]
// gets P[i1:i2, i2:]ᵀ·pre ([i2 − i1, rows]).
void GptaqColumnUpdate(const std::vector<float>& p, int64_t cols, int64_t col, const float* wc, int64_t rows,
                       int64_t j0, int64_t count, int64_t i1, float* w1, float* pre);
void GptaqBlockUpdate(const std::vector<float>& p, int64_t cols, int64_t rows, int64_t i1, int64_t i2,
                      const float* pre, float* wt);

// The full-precision model's residual stream beside RunGptq's quantized one: per layer, the fp inputs X of
// a linear, from which and the quantized prefix's inputs X̃ (LinearStats::inputs) D and P are formed.
class GptaqStream {
 public:
  using Transform = std::function<bool(std::string_view, float*, int, int)>;
  GptaqStream(Model fp, const CalibrationSet* calib, double alpha, Transform transform);
  // P for the modules reading `module`'s input at `layer`; quantized: that input's stats with inputs.
  StatusOr<std::vector<float>> P(int layer, const std::string& module, const LinearStats& quantized,
                                 const GptqFactor& factor);
  // Moves the fp stream past `layer` (the fp model's input of layer + 1).
  Status Advance(int layer);

 private:
  Model fp_;
  const CalibrationSet* calib_;
  double alpha_;
  Transform transform_;
  std::vector<std::vector<float>> hidden_, next_;  // per window [seqlen, dim]: fp input of the current layer
};

AlgorithmInfo GptaqAlgorithm();

}  // namespace ql
