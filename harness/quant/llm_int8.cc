// LLM.int8() (see llm_int8.h).
#include "harness/quant/llm_int8.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "harness/quant/quant_util.h"

namespace ql {

int LlmInt8Input(float* x, int T, int in, float threshold) {
  std::vector<char> outlier(in, 0);
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < in; ++j)
      if (std::fabs(x[size_t(t) * in + j]) >= threshold) outlier[j] = 1;
  for (int t = 0; t < T; ++t) {
    float* r = x + size_t(t) * in;
    float amax = 0;
    for (int j = 0; j < in; ++j)
      if (!outlier[j]) amax = std::max(amax, std::fabs(r[j]));
    if (amax == 0) continue;  // only outliers (or zeros): nothing to quantize
    for (int j = 0; j < in; ++j) {
      if (outlier[j]) continue;
      // CA = round(X·127/absmax) (int8_vectorwise_quant), dequantized with absmax/127.
      const float q = std::nearbyint(r[j] * 127.0f / amax);
      r[j] = q * (amax / 127.0f);
    }
  }
  return int(std::count(outlier.begin(), outlier.end(), 1));
}

namespace {

Status ApplyLlmInt8(Model& model, const AlgorithmContext& ctx) {
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(LlmInt8Algorithm(), ctx));
  const float threshold = p["threshold"].get<float>();
  if (!ctx.runtime) return Status::Error("llm_int8: needs the runner's runtime hooks (AlgorithmContext::runtime)");
  QL_RETURN_IF_ERROR(RtnAll(model, ctx));
  std::set<std::string> modules;
  for (const auto& [m, s] : SchemeMap(ctx)) modules.insert(m);
  ctx.runtime->linear_input = [modules, threshold](std::string_view path, float* x, int T, int in) {
    if (!modules.count(std::string(path))) return false;
    LlmInt8Input(x, T, in, threshold);
    return true;  // activations done here; the cell's activation scheme is not applied on top
  };
  return Status::Ok();
}

}  // namespace

AlgorithmInfo LlmInt8Algorithm() {
  return {"llm_int8",
          "LLM.int8() (Dettmers et al. 2022): int8 per-token activations with outlier feature columns "
          "(|x| >= threshold) in full precision; weights by the cell's scheme, int8:channel in the paper",
          {{"threshold", 6.0}}, false, ApplyLlmInt8};
}

}  // namespace ql
