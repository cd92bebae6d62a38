// Hadamard rotation of a Llama-family model (QuaRot / SpinQuant style, docs/algorithms.md §5): RMSNorm weights
// fused into the following linears, R1 = diag(±1)·H/√n (seeded) on the residual stream, R2 = H_hd/√hd
// per head between v_proj and o_proj (SpinQuant's offline placement: no online op, works for any
// number of heads), R4 = H/√F before down_proj (down_proj weight ← W·R4ᵀ offline, input ← R4·x online
// through the runtime hook). Then the cell's weights are rounded to nearest (quantizer: rtn) or
// quantized by GPTQ on the rotated model (quantizer: gptq, QuaRot's best setting; calibration runs with
// the online R4 active). Without quantization the rotated model computes the same function. Learned
// rotations (SpinQuant's Cayley SGD) are spinquant.h, which fuses them with RotateModel.
#pragma once

#include "harness/quant/algorithm.h"

namespace ql {

struct RotationOptions {
  bool r1 = true, r2 = true, r4 = true;
  uint64_t seed = 0;
  // Rotations to use instead of the Hadamard ones (SpinQuant's learned ones): R1 [dim, dim] and one R2
  // [head_dim, head_dim] per layer, row-major. Empty: HadamardR1(dim, seed) and HadamardR2(head_dim).
  std::vector<float> r1_matrix;
  std::vector<std::vector<float>> r2_matrices;
};

// The default rotations: R1 = diag(±1) · H/√dim (row i negated when the seeded generator's i-th draw is
// odd) and R2 = H/√head_dim, both [n, n] row-major. Errors name the size without a Hadamard construction.
StatusOr<std::vector<float>> HadamardR1(int dim, uint64_t seed);
StatusOr<std::vector<float>> HadamardR2(int head_dim);

// Rotates `model` in place (no quantization). When R4 is applied, *online_r4 receives the transform
// to run on every down_proj input (left empty when R4 is off or impossible: `note` says why).
// r1_out (optional) receives R1 ([dim, dim] row-major; the residual stream becomes h·R1), left empty
// when R1 is off.
Status RotateModel(Model& model, const RotationOptions& opt,
                   std::function<void(std::string_view, float*, int, int)>* online_r4, std::string* note,
                   std::vector<float>* r1_out = nullptr);

// The second half of the rotation algorithm, after RotateModel: installs the runtime transforms (online R4,
// the R1 basis map of the residual stream, the weights before rounding) and quantizes the cell's weights by
// `quantizer` ("rtn", or "gptq" with gptq_params checked against GPTQ's defaults). `who` names the
// algorithm in errors.
Status QuantizeRotatedModel(Model& model, const AlgorithmContext& ctx,
                            std::function<void(std::string_view, float*, int, int)> online_r4,
                            std::vector<float> r1, const std::string& quantizer, const nlohmann::json& gptq_params,
                            const std::string& who);

AlgorithmInfo RotationAlgorithm();

}  // namespace ql
