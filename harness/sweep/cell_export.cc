// A sweep cell as a GGUF file (see cell_export.h).
#include "harness/sweep/cell_export.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/eval/baseline.h"
#include "harness/io/imatrix.h"
#include "harness/quant/calibration.h"
#include "harness/quant/imatrix.h"
#include "harness/quant/llama_mixes.h"
#include "harness/sweep/cell_pipeline.h"
#include "results/store.h"

namespace ql {
namespace {

std::string Str(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

std::vector<std::string> StrList(const nlohmann::json& j, const char* key) {
  std::vector<std::string> v;
  if (j.contains(key) && j[key].is_array())
    for (const auto& x : j[key])
      if (x.is_string()) v.push_back(x.get<std::string>());
  return v;
}

// The cell and the experiment fields it depends on, from Cell::CanonicalJson.
StatusOr<ExportableCell> FromCanonical(const nlohmann::json& j, const std::string& id) {
  if (!j.is_object() || !j.contains("scheme") || !j.contains("algorithm"))
    return Status::Errorf("cell {}: its stored configuration is not a cell's canonical JSON", id);
  ExportableCell c;
  Experiment& e = c.experiment;
  e.name = "cell " + id;
  e.targets = StrList(j, "targets");
  if (j.contains("baseline")) e.baseline = Str(j, "baseline");
  if (j.contains("tied_head")) e.tied_head = Str(j, "tied_head");
  if (j.contains("seed") && j["seed"].is_number_integer()) e.seed = j["seed"].get<int64_t>();
  if (j.contains("calibration") && j["calibration"].is_object()) {  // the text itself is known by its hash only
    const nlohmann::json& cj = j["calibration"];
    CalibrationSpec cal;
    cal.samples = cj.value("samples", cal.samples);
    cal.seqlen = cj.value("seqlen", cal.seqlen);
    cal.seed = cj.value("seed", cal.seed);
    e.calibration = cal;
  }
  const nlohmann::json& s = j["scheme"];
  c.cell.scheme = {id, Str(s, "weights"), Str(s, "activations"), Str(s, "kv_cache"), Str(s, "mix"), "", ""};
  if (s.contains("attention")) {
    c.cell.scheme.attn_q = Str(s["attention"], "q");
    c.cell.scheme.attn_p = Str(s["attention"], "p");
  }
  c.cell.algorithm.name = Str(j["algorithm"], "name");
  if (j["algorithm"].contains("params")) c.cell.algorithm.params = j["algorithm"]["params"];
  if (j.contains("ignore")) {
    const nlohmann::json& ig = j["ignore"];
    c.cell.ignore = {Str(ig, "name"), StrList(ig, "entries"), ig.value("builtin", false)};
  }
  if (j.contains("overrides"))
    for (const auto& o : j["overrides"]) c.cell.overrides.push_back({StrList(o, "targets"), Str(o, "scheme"), "cell " + id});
  return c;
}

bool IsHexPrefix(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)); });
}

// general.file_type: the mix's, else llama.cpp's file type of the most common quantized scheme.
uint32_t FileTypeOf(const Cell& cell, const std::vector<std::pair<std::string, std::string>>& schemes,
                    const std::string& unquantized) {
  if (!cell.scheme.mix.empty()) {
    std::string_view mix = cell.scheme.mix;
    if (mix.starts_with("mix:")) mix.remove_prefix(4);
    return uint32_t(LlamaMixFileType(mix));
  }
  std::map<std::string, int> count;
  for (const auto& [m, s] : schemes) ++count[s];
  std::string most = unquantized;
  int best = 0;
  for (const auto& [s, n] : count)
    if (n > best) best = n, most = s;
  const int ft = LlamaFileTypeOfCodec(most);
  return uint32_t(ft < 0 ? 1024 : ft);  // 1024: LLAMA_FTYPE_GUESSED
}

}  // namespace

StatusOr<ExportableCell> CellFromResults(const std::string& dir, const std::string& id) {
  if (id.size() < 8 || !IsHexPrefix(id))
    return Status::Errorf("--cell {}: give a cell id (or its first 8+ hex digits) as `quantlab compare` or `query` show", id);
  QL_ASSIGN_OR_RETURN(auto store, ResultStore::OpenReadOnly(dir));
  QL_ASSIGN_OR_RETURN(SqlResult r, store->Query(fmt::format(
      "SELECT c.id, c.config, COALESCE(m.path, ''), COALESCE(c.model_id, ''), COALESCE(c.dataset_id, '') "
      "FROM cells c LEFT JOIN models m ON m.id = c.model_id "
      "WHERE c.id LIKE '{}%' AND c.status = 'ok'", id)));
  if (r.rows.empty()) return Status::Errorf("--cell {}: no finished ('ok') cell with this id in {}", id, dir);
  if (r.rows.size() > 1) return Status::Errorf("--cell {}: {} cells start with this id in {}; give more digits", id, r.rows.size(), dir);
  const std::string full = SqlValueToString(r.rows[0][0]);
  nlohmann::json j = nlohmann::json::parse(SqlValueToString(r.rows[0][1]), nullptr, /*allow_exceptions=*/false);
  QL_ASSIGN_OR_RETURN(ExportableCell c, FromCanonical(j, full));
  c.model_path = SqlValueToString(r.rows[0][2]);
  c.id = full;
  c.model_hash = SqlValueToString(r.rows[0][3]);
  c.data_hash = SqlValueToString(r.rows[0][4]);
  c.canonical = std::move(j);
  return c;
}

StatusOr<ExportableCell> CellFromRecipe(const std::string& path) {
  QL_ASSIGN_OR_RETURN(Experiment e, LoadExperiment(path));
  const std::vector<Cell> cells = ExpandGrid(e);
  if (cells.size() != 1)
    return Status::Errorf("--recipe {}: the grid has {} cells; export needs exactly one (one scheme, algorithm and "
                          "ignore set), or use --cell ID --results DIR after a sweep", path, cells.size());
  ExportableCell c{e, cells[0], e.model};
  return c;
}

Status UseCalibrationFile(const std::string& path, ExportableCell* c) {
  if (!c->experiment.calibration)
    return Status::Errorf("--calib {}: the cell's algorithm '{}' uses no calibration text; drop --calib", path,
                          c->cell.algorithm.name);
  c->experiment.calibration->data = path;
  if (c->id.empty()) return Status::Ok();
  ContentHashes h;
  h.model = c->model_hash;
  h.data = c->data_hash;
  QL_ASSIGN_OR_RETURN(h.calibration, HashFile(path));
  if (CellId(c->canonical, h) != c->id)
    return Status::Errorf("--calib {}: cell {} was not calibrated on this text (its id does not come back with this "
                          "file's hash; or the cell was recorded by another numerics version, or scored tasks): give "
                          "the experiment's calibration file, or export with --recipe", path, c->id);
  return Status::Ok();
}

Status UseImatrixFile(const std::string& path, ExportableCell* c) {
  const std::string& name = c->cell.algorithm.name;
  if (name != "rtn")
    return Status::Errorf("--imatrix {}: the cell's algorithm is '{}'; --imatrix turns an rtn cell into the imatrix "
                          "cell llama-quantize --imatrix makes (an imatrix cell names its own importances)", path, name);
  c->cell.algorithm.name = "imatrix";
  c->cell.algorithm.params = {{"file", path}};
  return Status::Ok();
}

StatusOr<Model> CellExportModel(const Model& loaded, const ExportableCell& c) {
  QL_ASSIGN_OR_RETURN(BaselinePrecision p, ParsePrecision(c.experiment.baseline));
  Model m = WithPrecision(loaded, p);
  QL_ASSIGN_OR_RETURN(auto schemes, CellModuleSchemes(m, c.experiment, c.cell));
  const bool head = std::any_of(schemes.begin(), schemes.end(), [](const auto& x) { return x.first == "lm_head"; });
  if (head && m.config.tied_embeddings && c.experiment.tied_head == "untie") {
    m.weights["lm_head.weight"] = m.W("model.embed_tokens.weight");
    m.config.tied_embeddings = false;
  }
  return m;
}

StatusOr<io::GgufExportOptions> CellGgufTypes(const Model& model, const ExportableCell& c) {
  const Cell& cell = c.cell;
  QL_ASSIGN_OR_RETURN(BaselinePrecision p, ParsePrecision(c.experiment.baseline));
  const std::string unquantized = p == BaselinePrecision::kFp32 ? "f32" : "bf16";
  QL_ASSIGN_OR_RETURN(auto schemes, CellModuleSchemes(model, c.experiment, cell));
  std::string bad;
  for (const auto& [m, s] : schemes)
    if (io::GgufTypeOfScheme(s) < 0) bad += (bad.empty() ? "" : ", ") + m + " (" + s + ")";
  if (!bad.empty())
    return Status::Errorf("cell '{}': no GGUF type for {} (give these modules GGUF types: q4_0..q8_0, q2_k..q6_k, "
                          "iq4_nl, iq4_xs, fp16, bf16)", cell.scheme.label, bad);
  std::map<std::string, std::string> by_module(schemes.begin(), schemes.end());
  const bool tied = model.config.tied_embeddings;
  if (tied && by_module.count("lm_head") && by_module.count("model.embed_tokens") &&
      by_module["lm_head"] != by_module["model.embed_tokens"])
    return Status::Errorf("cell '{}': lm_head ({}) and model.embed_tokens ({}) are one tied tensor; give them one scheme "
                          "or set tied_head: untie", cell.scheme.label, by_module["lm_head"], by_module["model.embed_tokens"]);
  io::GgufExportOptions o;
  o.file_type = FileTypeOf(cell, schemes, unquantized);
  o.type_of = [by_module, tied, unquantized](const std::string& hf, int64_t, int64_t) -> StatusOr<std::string> {
    std::string module = hf.ends_with(".weight") ? hf.substr(0, hf.size() - 7) : hf;
    if (tied && module == "model.embed_tokens" && by_module.count("lm_head")) module = "lm_head";  // one tensor
    const auto it = by_module.find(module);
    return it != by_module.end() ? it->second : unquantized;
  };
  return o;
}

namespace {

// The calibration windows of a calibrated algorithm, as OpenSession builds them.
StatusOr<std::optional<CalibrationSet>> ExportCalibration(const Model& reference, const ExportableCell& c,
                                                          const AlgorithmInfo& algo) {
  if (!NeedsCalibration(algo, c.cell.algorithm.params)) return std::optional<CalibrationSet>();
  if (!c.experiment.calibration || c.experiment.calibration->data.empty())
    return Status::Errorf("cell '{}': algorithm '{}' is calibrated: give its calibration text with --calib FILE (the "
                          "results store keeps only its hash)", c.cell.scheme.label, c.cell.algorithm.name);
  const CalibrationSpec& s = *c.experiment.calibration;
  QL_ASSIGN_OR_RETURN(CalibrationSet set, BuildCalibration(reference, s.data, s.samples, s.seqlen, s.seed));
  return std::optional<CalibrationSet>(std::move(set));
}

// What the algorithm left beside the weights that a GGUF file cannot hold.
Status CheckRuntimeExportable(const ExportableCell& c, const AlgorithmRuntime& rt) {
  if (rt.linear_input)
    return Status::Errorf("cell '{}': algorithm '{}' transforms linear inputs during evaluation (an online transform "
                          "a GGUF file cannot hold); export cannot reproduce this cell", c.cell.scheme.label,
                          c.cell.algorithm.Label());
  if (rt.extra_weight_bytes > 0)
    return Status::Errorf("cell '{}': algorithm '{}' keeps {} bytes beside the quantized weights (unmerged adapters) "
                          "that a GGUF file cannot hold", c.cell.scheme.label, c.cell.algorithm.Label(),
                          rt.extra_weight_bytes);
  return Status::Ok();
}

}  // namespace

Status PlanCellExport(const Model& loaded, const ExportableCell& c, CellExportPlan* plan) {
  QL_ASSIGN_OR_RETURN(plan->reference, CellExportModel(loaded, c));
  QL_ASSIGN_OR_RETURN(plan->options, CellGgufTypes(plan->reference, c));
  QL_ASSIGN_OR_RETURN(const AlgorithmInfo* algo, FindAlgorithm(c.cell.algorithm.name));
  QL_ASSIGN_OR_RETURN(auto schemes, CellModuleSchemes(plan->reference, c.experiment, c.cell));
  QL_ASSIGN_OR_RETURN(std::optional<CalibrationSet> calibration, ExportCalibration(plan->reference, c, *algo));
  AlgorithmRuntime runtime;
  AlgorithmContext ctx;  // as QuantizeAndEvaluate (cell_pipeline.cc) builds it
  ctx.module_schemes = &schemes;
  ctx.params = c.cell.algorithm.params;
  ctx.seed = c.experiment.seed;
  ctx.calibration = calibration ? &*calibration : nullptr;
  ctx.runtime = &runtime;
  const std::string& name = algo->name;
  if (name == "imatrix") {
    QL_ASSIGN_OR_RETURN(io::Imatrix m, CellImatrix(plan->reference, ctx));
    plan->importance = io::ImatrixImportances(m);
    plan->options.importance = &plan->importance;
    const std::string file = ctx.params.is_object() ? ctx.params.value("file", std::string()) : "";
    plan->options.extra_kv = io::ImatrixQuantizeKeys(file, m, plan->importance.size());
  }
  const bool direct = name == "rtn" || name == "imatrix";  // the codec applied to the reference weights
  runtime.keep_rounding_inputs = !direct;
  plan->evaluated = plan->reference;
  QL_RETURN_IF_ERROR(algo->apply(plan->evaluated, ctx));
  QL_RETURN_IF_ERROR(CheckRuntimeExportable(c, runtime));
  if (!direct) {  // the values the algorithm rounded last, else (no record) the evaluated values re-packed
    plan->reference = plan->evaluated;
    for (auto& [tensor, values] : runtime.rounding_inputs)
      if (plan->reference.Has(tensor)) plan->reference.W(tensor).data = std::move(values);
  }
  plan->encode = &plan->reference;
  plan->options.expect = &plan->evaluated;
  return Status::Ok();
}

}  // namespace ql
