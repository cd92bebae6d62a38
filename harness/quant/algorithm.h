// The registry of quantization algorithms: how the stored values are chosen (RTN, GPTQ, AWQ, …),
// as opposed to formats (kernels/), which say how numbers are stored. One entry per algorithm in
// the list in algorithm.cc; the CLI, the experiment parser and the runner all use that list.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/model/model.h"
#include "harness/util/progress.h"
#include "kernels/status.h"

namespace ql {

struct Scheme;
struct CalibrationSet;

// What an algorithm leaves behind for evaluation beyond changed weights: an online transform of
// linear inputs (LLM.int8()'s outlier split, QuaRot's online Hadamard before down_proj). The runner
// calls it on every linear input before its own activation fake quantization; a true return means
// "this input is already quantized", and the runner's activation scheme is skipped for it.
struct AlgorithmRuntime {
  std::function<bool(std::string_view module_path, float* x, int T, int in_features)> linear_input;
  // Arrays the algorithm wants kept with the cell (HDF5 arrays/<cell>.h5), e.g. QAT's loss curve.
  std::map<std::string, std::vector<float>> arrays;
  // Algorithms that change the basis of the residual stream (rotation: h ← h·R1) map a reference
  // residual stream h [T, dim] into their model's basis in place, so per-layer output errors compare
  // like with like. Empty: same basis.
  std::function<void(float* h, int T, int dim)> residual_to_model_basis;
  // Tensor name → its values after the algorithm's function-preserving transform and before rounding
  // (rotation). Per-tensor weight errors compare with these: the reference's weights live in another
  // basis. Empty for algorithms that do not transform.
  std::map<std::string, std::vector<float>> weights_before_rounding;
  // Bytes the algorithm stores beyond the quantized weights and the rest of the model (QLoRA's unmerged
  // BF16 adapters): counted in the cell's model size and in its bits per quantized weight.
  int64_t extra_weight_bytes = 0;
  // Set by `quantlab export --cell` (off in sweeps: it holds a copy of every weight): algorithms whose last
  // step is the scheme's own rounding (RtnAll, GPTQ's final pass over block schemes) keep, by tensor name,
  // the values they rounded (weight = FakeQuantize(scheme, these)), so export packs the very codes the cell
  // evaluated instead of re-fitting dequantized values, which GGUF's fitted scales do not reproduce.
  bool keep_rounding_inputs = false;
  std::map<std::string, std::vector<float>> rounding_inputs;
};

// What an algorithm gets for one cell: the weight scheme (parsed), the modules to quantize with it
// (already targets − ignore, with per-module scheme overrides resolved), and its parameters with
// defaults filled in.
struct AlgorithmContext {
  const std::vector<std::pair<std::string, std::string>>* module_schemes = nullptr;  // (module path, scheme)
  nlohmann::json params;
  int64_t seed = 0;
  const CalibrationSet* calibration = nullptr;  // set by the runner when needs_calibration
  AlgorithmRuntime* runtime = nullptr;          // may be null (then online transforms are errors)
  ProgressFn progress;  // optional: a long algorithm reports its units (GPTQ/AWQ layers, QAT steps)
};

struct AlgorithmInfo {
  std::string name;          // registry name, stored in the DB: "rtn", "gptq", …
  std::string description;
  nlohmann::json defaults;   // every parameter with its default; unknown parameters are errors
  bool needs_calibration = false;
  // Quantizes `model`'s weights in place (fake quantization: dequantized values stored back as fp32).
  std::function<Status(Model& model, const AlgorithmContext& ctx)> apply;
  // When set, whether a cell with these (resolved or raw) parameters needs calibration data; overrides
  // needs_calibration (rotation needs it only with quantizer: gptq). Use NeedsCalibration().
  std::function<bool(const nlohmann::json& params)> needs_calibration_for = {};
  // What the cell pipeline restores afterwards: true = only the weights of the modules it was given
  // (round-to-nearest); false = anything (norms, other tensors, the config: the whole model).
  bool changes_only_targets = false;
  // Parameters added after cells were recorded: accepted and checked like `defaults`, but filled in only
  // when given, so cells that do not use them keep their identity (gptq's mse options). The algorithm reads
  // them with these defaults.
  nlohmann::json optional_defaults = nlohmann::json::object();
};

const std::vector<AlgorithmInfo>& Algorithms();
StatusOr<const AlgorithmInfo*> FindAlgorithm(const std::string& name);
// Checks every key of `params` against the algorithm's defaults (name, type) and returns the full
// parameter set (defaults overlaid with params).
StatusOr<nlohmann::json> ResolveAlgorithmParams(const AlgorithmInfo& algo, const nlohmann::json& params);
// needs_calibration_for(params) when the algorithm has it, else needs_calibration. params may be null.
bool NeedsCalibration(const AlgorithmInfo& algo, const nlohmann::json& params);

}  // namespace ql
