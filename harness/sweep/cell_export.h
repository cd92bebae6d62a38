// A sweep cell as a GGUF file: the type of every weight comes from the cell pipeline's own CellModuleSchemes
// (harness/sweep/cell_pipeline.h), so `quantlab export --cell / --recipe` writes exactly the weights that the
// cell evaluated. Not the writer (harness/io/gguf_export.h), not the CLI (harness/cli/cmd_export.cc).
//
// The rule: export re-runs the cell's quantization as the cell pipeline does (the model at the baseline
// precision, the head untied when the cell unties it, the cell's algorithm with its parameters, seed and
// calibration: same config + seed give bitwise the same weights) and writes the result:
// - rtn and imatrix quantize the reference weights with the GGUF codecs (imatrix with the cell's
//   importances), so the file holds the codes llama-quantize (--imatrix) chooses, byte for byte;
// - every other algorithm (gptq, awq, smoothquant, ...) is re-run keeping the values it rounded last
//   (AlgorithmRuntime::rounding_inputs: RtnAll, GPTQ's final pass), which the codecs encode to the very codes
//   the evaluation used; an algorithm without such a record has its dequantized weights packed again, which
//   is exact only where a type's fit finds its own grid again (tests/kernels/gguf_repack_test.cc).
// Either way every tensor of the file must decode bit for bit to the weights the cell evaluated
// (GgufExportOptions::expect), else nothing is written and the error lists the tensors. Refused up front: a
// cell any of whose modules has a scheme without a GGUF type (listing them), and algorithms that leave
// something a GGUF file cannot hold (an online transform of linear inputs, unmerged adapters). Modules the
// cell does not quantize are written at the baseline precision (bf16; f32 for `baseline: fp32`). Activation,
// KV-cache and attention settings are evaluation settings and are not in the file (activations: llamacpp is
// what llama.cpp's CPU kernels do anyway).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/io/gguf_export.h"
#include "harness/model/model.h"
#include "harness/sweep/experiment.h"
#include "kernels/status.h"

namespace ql {

// One cell with the experiment fields CellModuleSchemes reads (targets, baseline, tied_head).
struct ExportableCell {
  Experiment experiment;
  Cell cell;
  std::string model_path;  // where the cell's model was loaded from ("" when unknown)
  // From a results store (empty for a recipe): the full id, the stored canonical configuration and the model
  // and text hashes the id was made of, to check a calibration file given for the cell (UseCalibrationFile).
  std::string id, model_hash, data_hash;
  nlohmann::json canonical;
};

// The cell with id `id` (or a unique prefix of at least 8 characters) of the results store in `dir`, read
// back from its canonical configuration (the cells.config column) and its model's recorded path.
StatusOr<ExportableCell> CellFromResults(const std::string& dir, const std::string& id);

// The one cell of an experiment file, e.g. the recipe `quantlab search --out` writes; an error naming the
// count when its grid has more than one cell.
StatusOr<ExportableCell> CellFromRecipe(const std::string& path);

// `export --calib FILE` for a cell from a results store, whose calibration text is recorded only as a hash:
// the file must give back the cell's id (with the stored model and text hashes), else an error says so.
Status UseCalibrationFile(const std::string& path, ExportableCell* c);

// `export --imatrix FILE` with --cell / --recipe: an rtn cell becomes the imatrix cell with that file
// (algorithm imatrix, file=FILE), as llama-quantize --imatrix quantizes a mix; the mix's rules see the
// imatrix (IQ4_NL / IQ4_XS choose differently with one). Any other algorithm is refused.
Status UseImatrixFile(const std::string& path, ExportableCell* c);

// The model as the cell quantizes it: at the baseline precision, the head untied when the cell unties it.
StatusOr<Model> CellExportModel(const Model& loaded, const ExportableCell& c);

// GGUF types (and general.file_type) for every weight of `model` (from CellExportModel) under the cell;
// the scheme refusals above, in one error each.
StatusOr<io::GgufExportOptions> CellGgufTypes(const Model& model, const ExportableCell& c);

// What `export --cell / --recipe` writes. Holds pointers into itself: fill it in place, do not move it.
struct CellExportPlan {
  // What the codecs encode: for rtn and imatrix the reference weights (CellExportModel); for other algorithms
  // the evaluated model with each weight the algorithm rounded last replaced by its rounding input
  // (AlgorithmRuntime::rounding_inputs), so the codes are the evaluation's own; a weight without a record
  // (an algorithm that rounds elsewhere) is its evaluated values, re-packed.
  Model reference;
  Model evaluated;   // the weights after the cell's algorithm: what every tensor must decode to
  const Model* encode = nullptr;  // &reference
  std::map<std::string, std::vector<float>> importance;  // an imatrix cell's, by GGUF weight name
  io::GgufExportOptions options;  // types, file type, importance, quantize.imatrix.* keys, expect
};

// Re-runs the cell's quantization on `loaded` (see the rule above) and plans the file. A calibrated
// algorithm needs the experiment's calibration text (a recipe's, or UseCalibrationFile for a stored cell).
Status PlanCellExport(const Model& loaded, const ExportableCell& c, CellExportPlan* plan);

}  // namespace ql
