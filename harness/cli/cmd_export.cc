// `quantlab export`: writes a loaded model (HF directory, GGUF, llama2.c .bin) as a GGUF file llama.cpp
// loads, every weight in one GGUF type (--scheme q4_k, or f32 / fp16 / bf16 for an unquantized copy) or in
// a llama.cpp mix (--preset Q4_K_M, harness/quant/llama_mixes.h). A GGUF input's metadata is carried over.
#include <cctype>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/cli/commands.h"
#include "harness/io/gguf.h"
#include "harness/io/gguf_export.h"
#include "harness/io/imatrix.h"
#include "harness/io/load.h"
#include "harness/quant/llama_mixes.h"
#include "kernels/scheme.h"

namespace ql::cli {
namespace {

struct ExportOptions {
  std::string model, scheme, preset, format = "gguf", out;
  std::string imatrix;  // --imatrix FILE (llama-imatrix / quantlab imatrix, GGUF or .dat)
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
  e->extra_kv.emplace_back("quantize.imatrix.file", io::GgufValue::Str(file.substr(0, 127)));
  if (!m.datasets.empty())
    e->extra_kv.emplace_back("quantize.imatrix.dataset", io::GgufValue::Str(m.datasets[0].substr(0, 127)));
  e->extra_kv.emplace_back("quantize.imatrix.entries_count", io::GgufValue::U32(uint32_t(importance->size())));
  if (m.chunk_count > 0)
    e->extra_kv.emplace_back("quantize.imatrix.chunks_count", io::GgufValue::U32(uint32_t(m.chunk_count)));
  return Status::Ok();
}

Status RunExport(const ExportOptions& o) {
  if (o.format != "gguf") return Status::Errorf("--format {}: only gguf is supported", o.format);
  if (o.scheme.empty() == o.preset.empty()) return Status::Errorf("give exactly one of --scheme or --preset");
  QL_ASSIGN_OR_RETURN(Model model, LoadModel(o.model));
  QL_ASSIGN_OR_RETURN(io::GgufExportOptions e, ChooseTypes(o, model));
  std::map<std::string, std::vector<float>> importance;
  if (!o.imatrix.empty()) QL_RETURN_IF_ERROR(AddImatrix(o.imatrix, &importance, &e));
  io::GgufFile source;
  if (o.model.ends_with(".gguf")) {
    QL_ASSIGN_OR_RETURN(source, io::ReadGgufHeader(o.model));
    e.source = &source;
  }
  QL_RETURN_IF_ERROR(io::ExportGguf(o.out, model, e));
  std::printf("wrote %s (general.file_type %u)\n", o.out.c_str(), e.file_type);
  return Status::Ok();
}

}  // namespace

void AddExportCommand(CLI::App& app) {
  auto opt = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand("export", "Write a model as a (quantized) GGUF file that llama.cpp loads");
  cmd->add_option("--model", opt->model, "model: HF directory, .gguf, or llama2.c .bin")->required();
  cmd->add_option("--scheme", opt->scheme, "one GGUF type for every weight: q4_0 ... q6_k, iq4_nl, iq4_xs, f32, fp16, bf16");
  cmd->add_option("--preset", opt->preset, "a llama.cpp mix: Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K, Q8_0, IQ4_NL, IQ4_XS");
  cmd->add_option("--format", opt->format, "output format (gguf)");
  cmd->add_option("--imatrix", opt->imatrix, "importance matrix (llama-imatrix or quantlab imatrix; GGUF or .dat), "
                                             "used as llama-quantize --imatrix");
  cmd->add_option("--out", opt->out, "output file")->required();
  cmd->callback([opt] {
    Status st = RunExport(*opt);
    if (!st.ok()) Fail("export", st);
  });
}

}  // namespace ql::cli
