// SqueezeLLM's dense part (Kim et al. 2023; docs/algorithms.md): per-row non-uniform codebooks (lut<b>:channel,
// kernels/lut.h) fitted by k-means weighted with a sensitivity per input column from the calibration pass.
// quantlab's weight is the layer Hessian diagonal, the calibration inputs' mean x² per column (the paper
// uses the Fisher diagonal, squared gradients per weight; the per-column Hessian diagonal is the
// calibration-input proxy GPTQ and its successors use). The sparse outlier part is not implemented.
// `rtn` on a lut scheme is the unweighted fit.
#pragma once

#include "harness/quant/algorithm.h"

namespace ql {

AlgorithmInfo SqueezeLlmAlgorithm();

}  // namespace ql
