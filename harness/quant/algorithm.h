// The registry of quantization algorithms: how the stored values are chosen (RTN, GPTQ, AWQ, …),
// as opposed to formats (kernels/), which say how numbers are stored. One entry per algorithm in
// the list in algorithm.cc; the CLI, the experiment parser and the runner all use that list.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql {

struct Scheme;

// What an algorithm gets for one cell: the weight scheme (parsed), the modules to quantize with it
// (already targets − ignore, with per-module scheme overrides resolved), and its parameters with
// defaults filled in.
struct AlgorithmContext {
  const std::vector<std::pair<std::string, std::string>>* module_schemes = nullptr;  // (module path, scheme)
  nlohmann::json params;
  int64_t seed = 0;
};

struct AlgorithmInfo {
  std::string name;          // registry name, stored in the DB: "rtn", "gptq", …
  std::string description;
  nlohmann::json defaults;   // every parameter with its default; unknown parameters are errors
  bool needs_calibration = false;
  // Quantizes `model`'s weights in place (fake quantization: dequantized values stored back as fp32).
  std::function<Status(Model& model, const AlgorithmContext& ctx)> apply;
};

const std::vector<AlgorithmInfo>& Algorithms();
StatusOr<const AlgorithmInfo*> FindAlgorithm(const std::string& name);
// Checks every key of `params` against the algorithm's defaults (name, type) and returns the full
// parameter set (defaults overlaid with params).
StatusOr<nlohmann::json> ResolveAlgorithmParams(const AlgorithmInfo& algo, const nlohmann::json& params);

}  // namespace ql
