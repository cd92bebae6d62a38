// llama.cpp's activation conversion before each CPU matrix product (see llamacpp_act.h).
#include "harness/quant/llamacpp_act.h"

#include <algorithm>
#include <cmath>

#include "harness/io/gguf_export.h"
#include "kernels/gguf_blocks.h"
#include "kernels/half.h"

namespace ql {
namespace {

// ggml type id -> vec_dot_type, from ggml-cpu.c's type_traits_cpu (llama.cpp as vendored by llama-cpp-python
// 0.3.36; the same table since the K-quants were added).
struct VecDotRow {
  int ggml_type;
  VecDotType vec_dot;
};
constexpr VecDotRow kVecDot[] = {
    {0, VecDotType::kF32},   {1, VecDotType::kF16},   {30, VecDotType::kBf16},  {2, VecDotType::kQ8_0},
    {3, VecDotType::kQ8_1},  {6, VecDotType::kQ8_0},  {7, VecDotType::kQ8_1},   {8, VecDotType::kQ8_0},
    {10, VecDotType::kQ8_K}, {11, VecDotType::kQ8_K}, {12, VecDotType::kQ8_K},  {13, VecDotType::kQ8_K},
    {14, VecDotType::kQ8_K}, {20, VecDotType::kQ8_0}, {23, VecDotType::kQ8_K},
};

// ggml-cpu's AVX2 quantize_row_q8_0 / q8_1 on one block of 32, dequantized.
void RoundBlockQ8_0(float* x) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = F16ToF32(F32ToF16(amax / 127.f));
  const float id = amax != 0.0f ? 127.f / amax : 0.0f;
  for (int j = 0; j < 32; ++j) x[j] = std::nearbyint(x[j] * id) * d;  // default FP mode: half to even
}

// quantize_row_q8_K_ref on one block of 256 (quantlab's bit-exact copy), dequantized.
void RoundBlockQ8_K(float* x) {
  gguf::BlockQ8_K b;
  gguf::QuantizeBlockQ8_K(x, &b);
  gguf::DequantizeBlockQ8_K(b, x);
}

}  // namespace

const char* VecDotTypeName(VecDotType t) {
  switch (t) {
    case VecDotType::kF32: return "f32";
    case VecDotType::kF16: return "f16";
    case VecDotType::kBf16: return "bf16";
    case VecDotType::kQ8_0: return "q8_0";
    case VecDotType::kQ8_1: return "q8_1";
    case VecDotType::kQ8_K: return "q8_K";
  }
  return "?";
}

int VecDotBlock(VecDotType t) {
  switch (t) {
    case VecDotType::kQ8_0:
    case VecDotType::kQ8_1: return 32;
    case VecDotType::kQ8_K: return 256;
    default: return 1;
  }
}

StatusOr<VecDotType> LlamaCppVecDotType(const std::string& scheme) {
  const int type = io::GgufTypeOfScheme(scheme);
  for (const VecDotRow& r : kVecDot)
    if (r.ggml_type == type) return r.vec_dot;
  return Status::Errorf("weight scheme '{}' has no GGUF type that llama.cpp multiplies (pick a GGUF type: q4_0..q8_0, "
                        "q2_k..q6_k, iq4_nl, iq4_xs, f32, fp16, bf16)", scheme);
}

Status RoundLikeGgmlVecDot(VecDotType t, float* x, int T, int in) {
  const int block = VecDotBlock(t);
  if (in % block != 0)
    return Status::Errorf("{} inputs are not whole {}-element {} blocks (llama.cpp cannot multiply this row length)",
                          in, block, VecDotTypeName(t));
  const size_t n = size_t(T) * size_t(in);
  switch (t) {
    case VecDotType::kF32: break;
    case VecDotType::kF16:
      for (size_t i = 0; i < n; ++i) x[i] = F16ToF32(F32ToF16(x[i]));
      break;
    case VecDotType::kBf16:
      for (size_t i = 0; i < n; ++i) x[i] = Bf16ToF32(F32ToBf16(x[i]));
      break;
    case VecDotType::kQ8_0:
    case VecDotType::kQ8_1:
      for (size_t i = 0; i < n; i += 32) RoundBlockQ8_0(x + i);
      break;
    case VecDotType::kQ8_K:
      for (size_t i = 0; i < n; i += 256) RoundBlockQ8_K(x + i);
      break;
  }
  return Status::Ok();
}

StatusOr<std::map<std::string, VecDotType>> LlamaCppActivationTypes(
    const Model& model, const std::vector<std::pair<std::string, std::string>>& module_schemes,
    const std::string& unquantized_scheme) {
  std::map<std::string, std::string> scheme_of(module_schemes.begin(), module_schemes.end());
  std::map<std::string, VecDotType> out;
  std::string bad;
  for (const std::string& m : model.LinearModules()) {
    const auto it = scheme_of.find(m);
    const std::string& scheme = it != scheme_of.end() ? it->second : unquantized_scheme;
    StatusOr<VecDotType> t = LlamaCppVecDotType(scheme);
    if (t.ok()) out[m] = *t;
    else bad += (bad.empty() ? "" : ", ") + m + " (" + scheme + ")";
  }
  if (!bad.empty())
    return Status::Errorf("activations 'llamacpp': llama.cpp has no matrix product for the weight scheme of {} "
                          "(give these modules GGUF types)", bad);
  return out;
}

}  // namespace ql
