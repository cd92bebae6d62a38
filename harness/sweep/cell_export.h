// A sweep cell as a GGUF file: the type of every weight comes from the cell pipeline's own CellModuleSchemes
// (harness/sweep/cell_pipeline.h), so `quantlab export --cell / --recipe` writes exactly the weights that the
// cell evaluated. Not the writer (harness/io/gguf_export.h), not the CLI (harness/cli/cmd_export.cc).
//
// The rule: export re-quantizes the reference weights (the model at the experiment's baseline precision)
// with each module's GGUF codec, which is what the `rtn` algorithm evaluates. A cell of any other algorithm
// (gptq, awq, rotation, ...) changed the weights in ways a GGUF file does not carry, and is refused; so is a
// cell any of whose modules has a scheme without a GGUF type (listing them). Modules the cell does not
// quantize are written at the baseline precision (bf16; f32 for `baseline: fp32`). Activation, KV-cache and
// attention settings are evaluation settings and are not in the file (activations: llamacpp is what
// llama.cpp's CPU kernels do anyway).
#pragma once

#include <string>

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
};

// The cell with id `id` (or a unique prefix of at least 8 characters) of the results store in `dir`, read
// back from its canonical configuration (the cells.config column) and its model's recorded path.
StatusOr<ExportableCell> CellFromResults(const std::string& dir, const std::string& id);

// The one cell of an experiment file, e.g. the recipe `quantlab search --out` writes; an error naming the
// count when its grid has more than one cell.
StatusOr<ExportableCell> CellFromRecipe(const std::string& path);

// The model as the cell quantizes it: at the baseline precision, the head untied when the cell unties it.
StatusOr<Model> CellExportModel(const Model& loaded, const ExportableCell& c);

// GGUF types (and general.file_type) for every weight of `model` (from CellExportModel) under the cell;
// the refusals above, in one error each.
StatusOr<io::GgufExportOptions> CellGgufTypes(const Model& model, const ExportableCell& c);

}  // namespace ql
