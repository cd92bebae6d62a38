// A sweep cell as a GGUF file (see cell_export.h).
#include "harness/sweep/cell_export.h"

#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/eval/baseline.h"
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
      "SELECT c.id, c.config, COALESCE(m.path, '') FROM cells c LEFT JOIN models m ON m.id = c.model_id "
      "WHERE c.id LIKE '{}%' AND c.status = 'ok'", id)));
  if (r.rows.empty()) return Status::Errorf("--cell {}: no finished ('ok') cell with this id in {}", id, dir);
  if (r.rows.size() > 1) return Status::Errorf("--cell {}: {} cells start with this id in {}; give more digits", id, r.rows.size(), dir);
  const std::string full = SqlValueToString(r.rows[0][0]);
  nlohmann::json j = nlohmann::json::parse(SqlValueToString(r.rows[0][1]), nullptr, /*allow_exceptions=*/false);
  QL_ASSIGN_OR_RETURN(ExportableCell c, FromCanonical(j, full));
  c.model_path = SqlValueToString(r.rows[0][2]);
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
  if (cell.algorithm.name != "rtn")
    return Status::Errorf("cell '{}': algorithm '{}' changes the weights beyond what GGUF blocks of the reference "
                          "weights reproduce; export writes rtn cells only (re-run the cell with algorithm rtn)",
                          cell.scheme.label, cell.algorithm.name);
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

}  // namespace ql
