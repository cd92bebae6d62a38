// Static activation quantization: every targeted linear input is quantized with scales fixed ahead of
// time from the calibration data's max |x| (per tensor, or per input channel), instead of the dynamic
// per-token scales of an activation scheme like W8A8's int8:token. Weights: RTN with the cell's scheme.
#pragma once

#include "harness/quant/algorithm.h"

namespace ql {

AlgorithmInfo StaticActAlgorithm();

}  // namespace ql
