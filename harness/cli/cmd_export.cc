// `quantlab export`: writes a loaded model (HF directory, GGUF, llama2.c .bin) as a GGUF file llama.cpp
// loads, every weight in one GGUF type (--scheme q4_k, or f32 / fp16 / bf16 for an unquantized copy) or in
// a llama.cpp mix (--preset Q4_K_M, harness/quant/llama_mixes.h), or as a sweep cell evaluated it (--cell,
// --recipe, any algorithm whose weights sit on GGUF grids: harness/sweep/cell_export.h). A GGUF input's
// metadata is carried over.
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/cli/commands.h"
#include "harness/io/gguf.h"
#include "harness/io/gguf_export.h"
#include "harness/io/hf.h"
#include "harness/io/imatrix.h"
#include "harness/io/load.h"
#include "harness/quant/llama_mixes.h"
#include "harness/sweep/cell_export.h"
#include "kernels/scheme.h"

namespace ql::cli {
namespace {

struct ExportOptions {
  std::string model, scheme, preset, format = "gguf", out;
  std::string cell, results = "quantlab-results", recipe;  // a sweep cell (harness/sweep/cell_export.h)
  std::string imatrix;  // --imatrix FILE (llama-imatrix / quantlab imatrix, GGUF or .dat)
  std::string calib;    // --calib FILE: a stored calibrated cell's calibration text
};

// The scheme's canonical spelling ("Q4_K" -> "q4_k", "half" -> "fp16"); f32 is not a quantlab scheme but
// is the unquantized GGUF type.
std::string CanonicalScheme(const std::string& text) {
  std::string lower = text;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "f32" || lower == "fp32" || lower == "float32") return "f32";
  StatusOr<Scheme> s = ParseScheme(lower);
  return s.ok() ? ToString(*s) : lower;
}

// Type chooser and file type for --scheme or --preset.
StatusOr<io::GgufExportOptions> ChooseTypes(const ExportOptions& o, const Model& model) {
  io::GgufExportOptions e;
  if (!o.preset.empty()) {
    const int ft = LlamaMixFileType(o.preset);
    if (ft < 0) {
      std::string names;
      for (std::string_view n : LlamaMixNames()) names += (names.empty() ? "" : ", ") + std::string(n);
      return Status::Errorf("--preset {}: not a llama.cpp mix; known: {}", o.preset, names);
    }
    e.file_type = uint32_t(ft);
    const ModelConfig cfg = model.config;
    const std::string mix = o.preset;
    const bool has_imatrix = !o.imatrix.empty();
    e.type_of = [cfg, mix, has_imatrix](const std::string& hf, int64_t rows, int64_t cols) {
      std::string module = hf;
      if (module.ends_with(".weight")) module.resize(module.size() - 7);
      return LlamaMixScheme(mix, cfg, module, rows, cols, has_imatrix);
    };
    return e;
  }
  const std::string scheme = CanonicalScheme(o.scheme);
  const int ft = LlamaFileTypeOfCodec(scheme);
  e.file_type = uint32_t(ft < 0 ? 1024 : ft);  // 1024: LLAMA_FTYPE_GUESSED (the export is refused anyway)
  e.type_of = [scheme](const std::string&, int64_t, int64_t) -> StatusOr<std::string> { return scheme; };
  return e;
}

// --imatrix: the file's importances (llama-quantize's normalization) and the quantize.imatrix.* keys
// llama-quantize writes (file, first dataset, entry count, chunk count when > 0).
Status AddImatrix(const std::string& file, std::map<std::string, std::vector<float>>* importance,
                  io::GgufExportOptions* e) {
  QL_ASSIGN_OR_RETURN(io::Imatrix m, io::ReadImatrix(file));
  *importance = io::ImatrixImportances(m);
  e->importance = importance;
  e->extra_kv = io::ImatrixQuantizeKeys(file, m, importance->size());
  return Status::Ok();
}

// Writes `model` with the chosen types; a GGUF source's metadata (tokenizer included) is carried over.
Status WriteExport(const std::string& model_path, const Model& model, io::GgufExportOptions e, const std::string& out) {
  io::GgufFile source;
  if (model_path.ends_with(".gguf")) {
    QL_ASSIGN_OR_RETURN(source, io::ReadGgufHeader(model_path));
    e.source = &source;
  }
  QL_RETURN_IF_ERROR(io::ExportGguf(out, model, e));
  std::printf("wrote %s (general.file_type %u)\n", out.c_str(), e.file_type);
  return Status::Ok();
}

// --cell ID --results DIR or --recipe FILE: the cell's quantization re-run and written (PlanCellExport).
Status RunCellExport(const ExportOptions& o) {
  QL_ASSIGN_OR_RETURN(ExportableCell c, o.recipe.empty() ? CellFromResults(o.results, o.cell) : CellFromRecipe(o.recipe));
  if (!o.imatrix.empty()) QL_RETURN_IF_ERROR(UseImatrixFile(o.imatrix, &c));
  if (!o.calib.empty()) QL_RETURN_IF_ERROR(UseCalibrationFile(o.calib, &c));
  const std::string model_path = o.model.empty() ? c.model_path : o.model;
  if (model_path.empty()) return Status::Errorf("the cell's model path is not recorded; give --model");
  QL_ASSIGN_OR_RETURN(Model loaded, LoadModel(model_path));
  CellExportPlan plan;
  QL_RETURN_IF_ERROR(PlanCellExport(loaded, c, &plan));
  loaded = Model();
  if (!c.cell.scheme.activations.empty() && c.cell.scheme.activations != "llamacpp")
    std::fprintf(stderr, "note: the cell's activations (%s) are an evaluation setting; the file holds the weights\n",
                 c.cell.scheme.activations.c_str());
  return WriteExport(model_path, *plan.encode, plan.options, o.out);
}

// --format safetensors: a Hugging Face directory (config.json, model.safetensors, tokenizer.json when the
// model has a byte-level BPE tokenizer) with every tensor in one float dtype (harness/io/hf.h).
Status RunSafetensorsExport(const ExportOptions& o) {
  if (!o.preset.empty() || !o.cell.empty() || !o.recipe.empty())
    return Status::Errorf("--format safetensors writes floats only: give --scheme f32, fp16 or bf16");
  if (o.model.empty()) return Status::Errorf("--model is required");
  const std::string scheme = CanonicalScheme(o.scheme.empty() ? "f32" : o.scheme);
  io::FloatDtype dtype;
  if (scheme == "f32") dtype = io::FloatDtype::kF32;
  else if (scheme == "fp16") dtype = io::FloatDtype::kF16;
  else if (scheme == "bf16") dtype = io::FloatDtype::kBF16;
  else return Status::Errorf("--scheme {}: safetensors export writes f32, fp16 or bf16", o.scheme);
  QL_ASSIGN_OR_RETURN(Model model, LoadModel(o.model));
  QL_RETURN_IF_ERROR(io::WriteHfDir(o.out, model, dtype));
  std::printf("wrote %s (config.json, model.safetensors %s%s)\n", o.out.c_str(),
              std::string(io::FloatDtypeName(dtype)).c_str(),
              std::filesystem::exists(std::filesystem::path(o.out) / "tokenizer.json") ? ", tokenizer.json" : "");
  return Status::Ok();
}

Status RunExport(const ExportOptions& o) {
  if (o.format == "safetensors") return RunSafetensorsExport(o);
  if (o.format != "gguf") return Status::Errorf("--format {}: gguf or safetensors", o.format);
  const int sources = int(!o.scheme.empty()) + int(!o.preset.empty()) + int(!o.cell.empty()) + int(!o.recipe.empty());
  if (sources != 1) return Status::Errorf("give exactly one of --scheme, --preset, --cell or --recipe");
  if (!o.cell.empty() || !o.recipe.empty()) {
    return RunCellExport(o);
  }
  if (!o.calib.empty()) return Status::Errorf("--calib applies to --cell (a calibrated cell's text)");
  if (o.model.empty()) return Status::Errorf("--model is required with --scheme or --preset");
  QL_ASSIGN_OR_RETURN(Model model, LoadModel(o.model));
  QL_ASSIGN_OR_RETURN(io::GgufExportOptions e, ChooseTypes(o, model));
  std::map<std::string, std::vector<float>> importance;  // outlives the export, which points at it
  if (!o.imatrix.empty()) QL_RETURN_IF_ERROR(AddImatrix(o.imatrix, &importance, &e));
  return WriteExport(o.model, model, std::move(e), o.out);
}

}  // namespace

void AddExportCommand(CLI::App& app) {
  auto opt = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand("export", "Write a model as a (quantized) GGUF file that llama.cpp loads, or as safetensors");
  cmd->add_option("--model", opt->model, "model: HF directory, .gguf, or llama2.c .bin (with --cell/--recipe: "
                                         "default the cell's own)");
  cmd->add_option("--scheme", opt->scheme, "one GGUF type for every weight: q4_0 ... q6_k, iq4_nl, iq4_xs, f32, fp16, bf16");
  cmd->add_option("--preset", opt->preset, "a llama.cpp mix: Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K, Q8_0, IQ4_NL, IQ4_XS");
  cmd->add_option("--cell", opt->cell, "a finished cell of --results (id or 8+ leading hex digits); its "
                                       "quantization is re-run, so the file holds the weights it evaluated");
  cmd->add_option("--results", opt->results, "results directory of --cell")->capture_default_str();
  cmd->add_option("--recipe", opt->recipe, "an experiment file with one cell (e.g. `quantlab search --out`)");
  cmd->add_option("--format", opt->format, "gguf, or safetensors (a Hugging Face directory at --out; f32/fp16/bf16)");
  cmd->add_option("--imatrix", opt->imatrix, "importance matrix (llama-imatrix or quantlab imatrix; GGUF or .dat), "
                                             "used as llama-quantize --imatrix (with --scheme, --preset, or an rtn "
                                             "--cell / --recipe, which becomes that imatrix cell)");
  cmd->add_option("--calib", opt->calib, "with --cell: the calibration text of a calibrated cell (gptq, awq, "
                                         "imatrix without file=, ...), checked against the cell's id");
  cmd->add_option("--out", opt->out, "output file")->required();
  cmd->callback([opt] {
    Status st = RunExport(*opt);
    if (!st.ok()) Fail("export", st);
  });
}

}  // namespace ql::cli
