// `act: llamacpp`: llama.cpp's CPU arithmetic for every linear, as an activation fake quantization. ggml's CPU
// matrix product converts the input rows to the weight type's vec_dot_type (ggml-cpu.c, type_traits_cpu) and
// multiplies integer codes; quantlab rounds the input [T, in] to exactly those values and lets its FP32 GEMM do
// the product: equal to ggml-cpu's own ggml_mul_mat up to FP32 summation order (~1e-7 of the sum of |terms|,
// tests/interop/llamacpp_matmul_interop_test.cc), except Q4_1/Q5_1 (below). Not attention (llama.cpp's F16
// K/V cache and flash attention: compare with `-ctk f32 -ctv f32 -fa off`, docs/gguf.md), not the weights.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql {

// The activation scheme name that selects this mode (`activations: llamacpp`).
inline constexpr const char* kLlamaCppActivations = "llamacpp";

// ggml's vec_dot_type of a weight type: what its CPU matrix product converts the activations to.
enum class VecDotType { kF32, kF16, kBf16, kQ8_0, kQ8_1, kQ8_K };

const char* VecDotTypeName(VecDotType t);  // ggml's spelling: "f32", "f16", "bf16", "q8_0", "q8_1", "q8_K"
int VecDotBlock(VecDotType t);             // elements per block: 1, 32 or 256

// The vec_dot_type of a weight stored as `scheme` (a GGUF export scheme: "q4_k", "iq4_nl", "f32", "fp16",
// "bf16", ...): Q4_0, Q5_0, Q8_0, IQ4_NL -> Q8_0; Q4_1, Q5_1 -> Q8_1; Q2_K..Q6_K, IQ4_XS -> Q8_K; F16 -> F16;
// BF16 -> BF16; F32 -> F32. An error for a scheme that has no GGUF type (llama.cpp cannot run it).
StatusOr<VecDotType> LlamaCppVecDotType(const std::string& scheme);

// Rounds x [T, in] in place, row by row, to the values ggml's from_float for `t` stores (dequantized):
//   Q8_0 / Q8_1 (ggml-cpu's AVX2 quantize_row_q8_0/_1): per 32, amax; d = amax/127 stored as fp16;
//     q = round-half-even(x · (127/amax)); value q · fp16(d). Q8_1 also stores s = fp16(d · Σq) from the fp32
//     d, and vec_dot_q4_1/q5_1 add the weight block's minimum × s, where quantlab's product has minimum ×
//     fp16(d) · Σq: a difference of up to half an fp16 ulp of that term (≤ 3e-4 of the sum of |terms|
//     measured) that rounding the inputs cannot express.
//   Q8_K (quantize_row_q8_K_ref): per 256, m = the element of largest |x|; iscale = −127/m;
//     q = min(127, nearest_int(iscale · x)); value q · (1/iscale) (fp32 scale).
//   F16 / BF16: round to nearest even. F32: unchanged.
// Error when `in` is not a whole number of blocks (ggml asserts it).
Status RoundLikeGgmlVecDot(VecDotType t, float* x, int T, int in);

// Per linear module of `model` (Model::LinearModules order), its vec_dot_type: a module in
// `module_schemes` (path, scheme) at its scheme, any other at `unquantized_scheme` ("bf16" or "f32": what
// the baseline precision exports as). One error listing every module whose scheme llama.cpp cannot run.
StatusOr<std::map<std::string, VecDotType>> LlamaCppActivationTypes(
    const Model& model, const std::vector<std::pair<std::string, std::string>>& module_schemes,
    const std::string& unquantized_scheme);

}  // namespace ql
