// Small helpers shared by the algorithms in harness/quant/: weight names of modules, per-layer module
// groups, RTN of a list of modules. Not an algorithm.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "harness/model/model.h"
#include "harness/quant/algorithm.h"
#include "kernels/status.h"

namespace ql {

// The tensor a module's weight lives in: "<module>.weight"; a tied lm_head is the embedding table.
std::string WeightKey(const Model& model, const std::string& module);
// Layer index of "model.layers.<i>.…", or -1.
int ModuleLayer(const std::string& module);
// module -> scheme text of the cell.
std::map<std::string, std::string> SchemeMap(const AlgorithmContext& ctx);
// Fake-quantizes one module's weight in place with a scheme (round to nearest).
Status RtnModule(Model& model, const std::string& module, const std::string& scheme_text);
// AlgorithmRuntime::rounding_inputs: the module's weight as it is now, about to be rounded (when asked for).
void KeepRoundingInput(const AlgorithmContext& ctx, const Model& model, const std::string& module);
// RTN of every module of the cell (what ApplyRtn does), for algorithms that first transform the model.
Status RtnAll(Model& model, const AlgorithmContext& ctx);
// The cell's parameters overlaid on the algorithm's defaults (checked).
StatusOr<nlohmann::json> Params(const AlgorithmInfo& info, const AlgorithmContext& ctx);
// Error when the runner gave no calibration data.
Status NeedCalibration(const AlgorithmContext& ctx, const std::string& algo);

}  // namespace ql
