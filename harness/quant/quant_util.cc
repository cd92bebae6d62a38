// Shared helpers of the algorithms (see quant_util.h).
#include "harness/quant/quant_util.h"

#include <cstdio>

#include "kernels/act_quant.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {

std::string WeightKey(const Model& model, const std::string& module) {
  if (module == "model.embed_tokens") return "model.embed_tokens.weight";
  if (module == "lm_head" && !model.Has("lm_head.weight")) return "model.embed_tokens.weight";
  return module + ".weight";
}

int ModuleLayer(const std::string& module) {
  int layer = -1;
  if (std::sscanf(module.c_str(), "model.layers.%d.", &layer) != 1) return -1;
  return layer;
}

std::map<std::string, std::string> SchemeMap(const AlgorithmContext& ctx) {
  std::map<std::string, std::string> m;
  if (ctx.module_schemes)
    for (const auto& [mod, s] : *ctx.module_schemes) m[mod] = s;
  return m;
}

Status RtnModule(Model& model, const std::string& module, const std::string& scheme_text) {
  QL_ASSIGN_OR_RETURN(Scheme scheme, ParseScheme(scheme_text));
  const std::string key = WeightKey(model, module);
  Tensor& w = model.W(key);
  // In place and bitwise FakeQuantize; the symmetric integer schemes take the SIMD kernel on quantlab's
  // threads (kernels/act_quant.h), the rest FakeQuantize itself.
  Status s = FakeQuantizeInPlace(scheme, w.data.data(), w.rows(), w.cols());
  if (!s.ok()) return Status::Errorf("{}: {}", key, s.message());
  return Status::Ok();
}

void KeepRoundingInput(const AlgorithmContext& ctx, const Model& model, const std::string& module) {
  if (ctx.runtime == nullptr || !ctx.runtime->keep_rounding_inputs) return;
  const std::string key = WeightKey(model, module);
  ctx.runtime->rounding_inputs[key] = model.W(key).data;
}

Status RtnAll(Model& model, const AlgorithmContext& ctx) {
  if (!ctx.module_schemes) return Status::Ok();
  for (const auto& [module, scheme] : *ctx.module_schemes) {
    KeepRoundingInput(ctx, model, module);
    QL_RETURN_IF_ERROR(RtnModule(model, module, scheme));
  }
  return Status::Ok();
}

StatusOr<nlohmann::json> Params(const AlgorithmInfo& info, const AlgorithmContext& ctx) {
  return ResolveAlgorithmParams(info, ctx.params.is_null() ? nlohmann::json::object() : ctx.params);
}

Status NeedCalibration(const AlgorithmContext& ctx, const std::string& algo) {
  if (ctx.calibration) return Status::Ok();
  return Status::Errorf("algorithm {} needs calibration data (add a calibration: section to the experiment)",
                        algo);
}

}  // namespace ql
