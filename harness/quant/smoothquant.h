// SmoothQuant (Xiao et al. 2023; docs/algorithms.md §3): migrates activation outliers into the weights with
// per-channel scales s_j = a_j^α / w_j^(1−α) folded into the RMSNorms before q/k/v and gate/up, then
// round-to-nearest of the weights with the cell's scheme. Activations are quantized by the cell's
// activation scheme (W8A8: int8 per token, dynamic), applied by the runner.
#pragma once

#include <vector>

#include "harness/quant/algorithm.h"

namespace ql {

// s_j = clamp(a_j^α / max(w_j, 1e-5)^(1−α), 1e-5): a = per-channel max |x|, w = per-channel max |W|
// over every linear sharing the input.
std::vector<float> SmoothQuantScales(const std::vector<float>& act_absmax, const std::vector<float>& w_absmax,
                                     double alpha);

AlgorithmInfo SmoothQuantAlgorithm();

}  // namespace ql
