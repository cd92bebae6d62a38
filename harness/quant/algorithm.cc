// The algorithm list and parameter checking (see algorithm.h). RTN lives here; the calibrated
// algorithms (GPTQ, AWQ, …) each get their own file and one line in Algorithms().
#include "harness/quant/algorithm.h"

#include "harness/quant/autoround.h"
#include "harness/quant/awq.h"
#include "harness/quant/gptaq.h"
#include "harness/quant/gptq.h"
#include "harness/quant/hqq.h"
#include "harness/quant/imatrix.h"
#include "harness/quant/llm_int8.h"
#include "harness/quant/qat.h"
#include "harness/quant/qlora.h"
#include "harness/quant/quant_util.h"
#include "harness/quant/rotation.h"
#include "harness/quant/smoothquant.h"
#include "harness/quant/spinquant.h"
#include "harness/quant/squeezellm.h"
#include "harness/quant/static_act.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

// Round-to-nearest with the scheme's own scale rule: every targeted weight fake-quantized
// independently. The baseline every other algorithm is compared with.
Status ApplyRtn(Model& model, const AlgorithmContext& ctx) { return RtnAll(model, ctx); }

}  // namespace

const std::vector<AlgorithmInfo>& Algorithms() {
  static const std::vector<AlgorithmInfo> kList = {
      {"rtn", "round-to-nearest with the scheme's scale rule (absmax, minmax, percentile, mse)",
       nlohmann::json::object(), false, ApplyRtn, {}, /*changes_only_targets=*/true},
      GptqAlgorithm(),
      GptaqAlgorithm(),
      AwqAlgorithm(),
      SmoothQuantAlgorithm(),
      LlmInt8Algorithm(),
      RotationAlgorithm(),
      StaticActAlgorithm(),
      QatAlgorithm(),
      HqqAlgorithm(),
      SqueezeLlmAlgorithm(),
      QloraAlgorithm(),
      AutoRoundAlgorithm(),
      ImatrixAlgorithm(),
      SpinQuantAlgorithm(),
  };
  return kList;
}

StatusOr<const AlgorithmInfo*> FindAlgorithm(const std::string& name) {
  std::string names;
  for (const auto& a : Algorithms()) {
    if (a.name == name) return &a;
    names += (names.empty() ? "" : ", ") + a.name;
  }
  return Status::Errorf("unknown algorithm '{}' (registered: {})", name, names);
}

StatusOr<nlohmann::json> ResolveAlgorithmParams(const AlgorithmInfo& algo, const nlohmann::json& params) {
  nlohmann::json out = algo.defaults;
  if (!params.is_object()) return Status::Errorf("algorithm '{}': parameters must be a map", algo.name);
  for (const auto& [k, v] : params.items()) {
    const bool optional = algo.optional_defaults.contains(k);
    if (!algo.defaults.contains(k) && !optional) {
      std::string allowed;
      for (const auto& [dk, dv] : algo.defaults.items()) allowed += (allowed.empty() ? "" : ", ") + dk;
      for (const auto& [dk, dv] : algo.optional_defaults.items()) allowed += (allowed.empty() ? "" : ", ") + dk;
      return Status::Errorf("algorithm '{}' has no parameter '{}' (allowed: {})", algo.name, k,
                            allowed.empty() ? "none" : allowed);
    }
    const auto& d = optional ? algo.optional_defaults[k] : algo.defaults[k];
    const bool same = (d.is_number() && v.is_number()) || d.type() == v.type();
    if (!same) return Status::Errorf("algorithm '{}': parameter '{}' = {} has the wrong type (default is {})",
                                     algo.name, k, v.dump(), d.dump());
    // A whole number given for a real parameter is stored as the real ("dropout: 0" is "dropout: 0.0"), so
    // the two spellings are one cell with one id.
    out[k] = d.is_number_float() && v.is_number_integer() ? nlohmann::json(v.get<double>()) : v;
  }
  return out;
}

bool NeedsCalibration(const AlgorithmInfo& algo, const nlohmann::json& params) {
  if (!algo.needs_calibration_for) return algo.needs_calibration;
  return algo.needs_calibration_for(params.is_null() ? nlohmann::json::object() : params);
}

}  // namespace ql
