// Hadamard rotation of a Llama-family model (QuaRot / SpinQuant style, docs/algorithms.md §5): RMSNorm weights
// fused into the following linears, R1 = diag(±1)·H/√n (seeded) on the residual stream, R2 = H_hd/√hd
// per head between v_proj and o_proj (SpinQuant's offline placement: no online op, works for any
// number of heads), R4 = H/√F before down_proj (down_proj weight ← W·R4ᵀ offline, input ← R4·x online
// through the runtime hook). Then the cell's weights are rounded to nearest (quantizer: rtn) or
// quantized by GPTQ on the rotated model (quantizer: gptq, QuaRot's best setting; calibration runs with
// the online R4 active). Without quantization the rotated model computes the same function. Not
// learned rotations (SpinQuant's Cayley SGD).
#pragma once

#include "harness/quant/algorithm.h"

namespace ql {

struct RotationOptions {
  bool r1 = true, r2 = true, r4 = true;
  uint64_t seed = 0;
};

// Rotates `model` in place (no quantization). When R4 is applied, *online_r4 receives the transform
// to run on every down_proj input (left empty when R4 is off or impossible: `note` says why).
// r1_out (optional) receives R1 ([dim, dim] row-major; the residual stream becomes h·R1), left empty
// when R1 is off.
Status RotateModel(Model& model, const RotationOptions& opt,
                   std::function<void(std::string_view, float*, int, int)>* online_r4, std::string* note,
                   std::vector<float>* r1_out = nullptr);

AlgorithmInfo RotationAlgorithm();

}  // namespace ql
