// Experiment YAML parsing, validation, grid expansion, sharding and cell identity (see experiment.h).
#include "harness/sweep/experiment.h"

#include "harness/sweep/algorithm_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include <yaml-cpp/yaml.h>

#include "harness/eval/baseline.h"
#include "harness/eval/numerics.h"
#include "datasets/protocol.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/attn_quant.h"
#include "harness/quant/llama_mixes.h"
#include "harness/quant/llamacpp_act.h"
#include "harness/quant/targets.h"
#include "harness/sweep/experiment_tasks.h"
#include "harness/sweep/yaml_check.h"
#include "kernels/scheme.h"

namespace ql {
namespace fs = std::filesystem;

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "file:line: " for a node (yaml-cpp lines are 0-based).
std::string At(const std::string& origin, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return origin + ": ";
  return fmt::format("{}:{}: ", origin, m.line + 1);
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

Status CheckKeys(const std::string& origin, const YAML::Node& map, const std::string& what,
                 const std::vector<std::string>& allowed) {
  if (!map.IsMap()) return Status::Error(At(origin, map) + what + " must be a map");
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      return Status::Error(At(origin, kv.first) + "unknown key '" + k + "' in " + what + " (allowed: " +
                           Join(allowed) + ")");
  }
  return Status::Ok();
}

StatusOr<std::string> Str(const std::string& origin, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) return Status::Error(At(origin, n) + "'" + key + "' must be a string");
  return n.as<std::string>();
}

StatusOr<int64_t> Int(const std::string& origin, const YAML::Node& n, const std::string& key, int64_t lo,
                      int64_t hi) {
  int64_t v = 0;
  try {
    if (!n.IsScalar()) throw YAML::Exception(n.Mark(), "not a scalar");
    v = n.as<int64_t>();
  } catch (const YAML::Exception&) {
    return Status::Error(At(origin, n) + "'" + key + "' must be an integer");
  }
  if (v < lo || v > hi)
    return Status::Error(At(origin, n) + fmt::format("'{}' = {} is out of range [{}, {}]", key, v, lo, hi));
  return v;
}

StatusOr<std::vector<std::string>> StrList(const std::string& origin, const YAML::Node& n, const std::string& key) {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.as<std::string>());
    return out;
  }
  if (!n.IsSequence()) return Status::Error(At(origin, n) + "'" + key + "' must be a list of strings");
  for (const auto& e : n) {
    if (!e.IsScalar()) return Status::Error(At(origin, e) + "entries of '" + key + "' must be strings");
    out.push_back(e.as<std::string>());
  }
  return out;
}

nlohmann::json YamlToJson(const YAML::Node& n) {
  if (n.IsMap()) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& kv : n) o[kv.first.as<std::string>()] = YamlToJson(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : n) a.push_back(YamlToJson(e));
    return a;
  }
  if (n.IsNull()) return nullptr;
  const std::string s = n.as<std::string>();
  if (n.Tag() == "!") return s;  // quoted scalar stays a string
  if (s == "true" || s == "false") return s == "true";
  try {
    size_t pos = 0;
    long long i = std::stoll(s, &pos);
    if (pos == s.size()) return i;
    double d = std::stod(s, &pos);
    if (pos == s.size()) return d;
  } catch (...) {
  }
  return s;
}

// "" / "none" -> ""; otherwise the canonical scheme string.
StatusOr<std::string> CanonicalScheme(const std::string& text) {
  const std::string l = Lower(text);
  if (l.empty() || l == "none" || l == "-") return std::string();
  if (l == kLlamaCppActivations) return l;  // llama.cpp's arithmetic: an activation mode, not a format
  QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(text));
  return ToString(s);
}

// An `attention:` value: a scheme string for both q and p, or a map {q, p}. Canonical (q, p), each
// checked to be row-local (harness/quant/attn_quant.h); "none" / missing -> "".
StatusOr<std::pair<std::string, std::string>> ParseAttention(const std::string& origin, const YAML::Node& n) {
  auto one = [&](const YAML::Node& at, const std::string& what) -> StatusOr<std::string> {
    if (!at.IsScalar()) return Status::Error(At(origin, at) + "'" + what + "' must be a scheme string");
    const std::string text = at.as<std::string>();
    auto c = CanonicalScheme(text);
    if (!c.ok()) return Status::Error(At(origin, at) + what + " '" + text + "': " + c.status().message());
    if (c->empty()) return c;
    QL_ASSIGN_OR_RETURN(Scheme sc, ParseScheme(*c));
    Status rl = CheckRowLocalScheme(sc, what);
    if (!rl.ok()) return Status::Error(At(origin, at) + rl.message());
    return c;
  };
  if (n.IsMap()) {
    QL_RETURN_IF_ERROR(CheckKeys(origin, n, "attention", {"q", "p"}));
    std::pair<std::string, std::string> qp;
    if (n["q"]) { QL_ASSIGN_OR_RETURN(qp.first, one(n["q"], "attention.q")); }
    if (n["p"]) { QL_ASSIGN_OR_RETURN(qp.second, one(n["p"], "attention.p")); }
    return qp;
  }
  if (!n.IsScalar())
    return Status::Error(At(origin, n) + "'attention' must be a scheme string (for q and p) or a map {q, p}");
  QL_ASSIGN_OR_RETURN(std::string both, one(n, "attention"));
  return std::make_pair(both, both);
}

// Label text of an attention pair: "QP=s" when equal, else "Q=s P=t" (unset parts left out).
std::string AttentionLabel(const std::string& q, const std::string& p) {
  if (q.empty() && p.empty()) return "";
  if (q == p) return "QP=" + q;
  std::string s = q.empty() ? "" : "Q=" + q;
  if (!p.empty()) s += (s.empty() ? "P=" : " P=") + p;
  return s;
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

// `overrides:`: a list of {targets, scheme}; regexes and schemes checked here, matches at plan time.
StatusOr<std::vector<OverrideSpec>> ParseOverrides(const std::string& origin, const YAML::Node& n) {
  if (!n.IsSequence()) return Status::Error(At(origin, n) + "'overrides' must be a list of {targets: [...], scheme: S}");
  std::vector<OverrideSpec> out;
  for (const auto& entry : n) {
    QL_RETURN_IF_ERROR(CheckKeys(origin, entry, "an override", {"targets", "scheme"}));
    if (!entry["targets"] || !entry["scheme"])
      return Status::Error(At(origin, entry) + "an override needs 'targets' (a list) and 'scheme' (a scheme, or bf16 / none)");
    OverrideSpec o;
    o.where = At(origin, entry);
    o.where.resize(o.where.size() - 2);  // "file:line"
    QL_ASSIGN_OR_RETURN(o.targets, StrList(origin, entry["targets"], "overrides.targets"));
    if (o.targets.empty()) return Status::Error(At(origin, entry) + "an override's 'targets' is empty");
    for (const auto& t : o.targets) {
      if (t.rfind("re:", 0) != 0) continue;
      try {
        std::regex probe(t.substr(3));
      } catch (const std::regex_error&) {
        return Status::Error(At(origin, entry) + "override target '" + t + "' is not a valid regular expression");
      }
    }
    QL_ASSIGN_OR_RETURN(std::string text, Str(origin, entry["scheme"], "overrides.scheme"));
    if (Lower(text) != "bf16") {
      auto c = CanonicalScheme(text);
      if (!c.ok()) return Status::Error(At(origin, entry["scheme"]) + "override scheme '" + text + "': " + c.status().message());
      o.scheme = *c;
    }
    out.push_back(std::move(o));
  }
  return out;
}

StatusOr<AdaptiveSpec> ParseAdaptive(const std::string& origin, const YAML::Node& n) {
  QL_RETURN_IF_ERROR(CheckKeys(origin, n, "sensitivity.adaptive",
                               {"rel_se", "threshold", "z", "min_windows", "dnll_rel_se", "dnll_se"}));
  AdaptiveSpec a;
  try {
    if (n["rel_se"]) a.rel_se = n["rel_se"].as<double>();
    if (n["threshold"]) a.threshold = n["threshold"].as<double>();
    if (n["z"]) a.z = n["z"].as<double>();
    if (n["min_windows"]) a.min_windows = n["min_windows"].as<int>();
    if (n["dnll_rel_se"]) a.dnll_rel_se = n["dnll_rel_se"].as<double>();
    if (n["dnll_se"]) a.dnll_se = n["dnll_se"].as<double>();
  } catch (const YAML::Exception&) {
    return Status::Error(At(origin, n) + "sensitivity.adaptive: rel_se, threshold, z, dnll_rel_se, dnll_se are numbers, "
                         "min_windows an integer");
  }
  if (!(a.rel_se > 0) || !(a.z > 0) || a.min_windows < 2)
    return Status::Error(At(origin, n) + "sensitivity.adaptive needs rel_se > 0, z > 0 and min_windows >= 2");
  if (!(a.dnll_rel_se >= 0) || !(a.dnll_se >= 0))
    return Status::Errorf("{}sensitivity.adaptive: dnll_rel_se ({}) and dnll_se ({}) must be >= 0 (0 = not used; e.g. "
                          "dnll_rel_se: 0.15, dnll_se: 0.002)", At(origin, n), a.dnll_rel_se, a.dnll_se);
  return a;
}

StatusOr<SensitivitySpec> ParseSensitivity(const std::string& origin, const YAML::Node& n) {
  QL_RETURN_IF_ERROR(CheckKeys(origin, n, "sensitivity", {"units", "schemes", "adaptive"}));
  SensitivitySpec s;
  if (n["adaptive"]) { QL_ASSIGN_OR_RETURN(s.adaptive, ParseAdaptive(origin, n["adaptive"])); }
  if (n["units"]) { QL_ASSIGN_OR_RETURN(s.units, Str(origin, n["units"], "sensitivity.units")); }
  const std::vector<std::string> kUnits = {"module", "layer", "type", "layer_type"};
  if (std::find(kUnits.begin(), kUnits.end(), s.units) == kUnits.end())
    return Status::Error(At(origin, n["units"]) + "sensitivity.units '" + s.units + "' must be one of " + Join(kUnits));
  if (!n["schemes"]) return Status::Error(At(origin, n) + "sensitivity needs 'schemes' (the candidate weight schemes)");
  QL_ASSIGN_OR_RETURN(std::vector<std::string> v, StrList(origin, n["schemes"], "sensitivity.schemes"));
  for (const auto& text : v) {
    if (Lower(text) == "bf16" || Lower(text) == "none") continue;  // always a candidate
    auto c = CanonicalScheme(text);
    if (!c.ok()) return Status::Error(At(origin, n["schemes"]) + "sensitivity scheme '" + text + "': " + c.status().message());
    s.schemes.push_back(*c);
  }
  if (s.schemes.empty()) return Status::Error(At(origin, n["schemes"]) + "sensitivity.schemes names no weight scheme");
  return s;
}

}  // namespace

std::string OverridesYaml(const std::vector<OverrideSpec>& overrides) {
  std::string s = "[";
  for (size_t i = 0; i < overrides.size(); ++i) {
    std::string t;
    for (const auto& x : overrides[i].targets) t += (t.empty() ? "'" : ", '") + x + "'";  // single quotes: no YAML escapes
    s += fmt::format("{}{{targets: [{}], scheme: {}}}", i ? ",\n    " : "", t,
                     overrides[i].scheme.empty() ? "bf16" : overrides[i].scheme);
  }
  return s + "]";
}

nlohmann::json SchemeSpec::ToJson() const {
  nlohmann::json j = {{"weights", weights}, {"activations", activations}, {"kv_cache", kv_cache}, {"mix", mix}};
  if (!attn_q.empty() || !attn_p.empty()) j["attention"] = {{"q", attn_q}, {"p", attn_p}};
  return j;
}

std::string SchemeSpec::AttentionText() const {
  if (attn_q.empty() && attn_p.empty()) return "";
  return "q=" + (attn_q.empty() ? std::string("none") : attn_q) + " p=" + (attn_p.empty() ? std::string("none") : attn_p);
}

std::string AlgorithmSpec::Label() const {
  if (params.empty()) return name;
  std::string s;
  for (const auto& [k, v] : params.items()) s += (s.empty() ? "" : ",") + k + "=" + v.dump();
  return name + "(" + s + ")";
}

namespace {

// llama.cpp's mixes (harness/quant/llama_mixes.h) as presets: "mix:<NAME>" for all twelve, and the bare
// llama-quantize name where it is not also a block type's scheme name (Q2_K, Q6_K, Q8_0, IQ4_NL and IQ4_XS
// are read as the uniform scheme first, so their mixes are only "mix:Q6_K", ...).
std::vector<std::pair<std::string, SchemeSpec>> LlamaMixPresets() {
  std::vector<std::pair<std::string, SchemeSpec>> out;
  for (std::string_view name : LlamaMixNames()) {
    const std::string lower = Lower(std::string(name)), base = LlamaMixBaseType(name);
    const bool is_scheme = ParseScheme(lower).ok();
    // The store's weight_scheme of a mix cell is the mix: "q4_k_m", or "mix:q6_k" beside the uniform "q6_k".
    const std::string mix = is_scheme ? "mix:" + lower : lower;
    if (!is_scheme) out.emplace_back(std::string(name), SchemeSpec{std::string(name), base, "", "", mix, "", ""});
    out.emplace_back("mix:" + std::string(name), SchemeSpec{"mix:" + std::string(name), base, "", "", mix, "", ""});
  }
  return out;
}

// When `text` is not a scheme but names a llama.cpp mix preset: its weights and mix into *s (label = name).
bool MixPreset(const std::vector<std::pair<std::string, SchemeSpec>>& presets, const std::string& text, SchemeSpec* s) {
  if (ParseScheme(text).ok()) return false;
  for (const auto& [name, spec] : presets) {
    if (Lower(name) != Lower(text) || spec.mix.empty()) continue;
    s->weights = spec.weights;
    s->mix = spec.mix;
    s->label = name;
    return true;
  }
  return false;
}

}  // namespace

std::vector<std::pair<std::string, SchemeSpec>> BuiltinPresets() {
  // llm-compressor's preset names where one exists (W8A8, W4A16, FP8_DYNAMIC, NVFP4, NVFP4A16, …);
  // integer "sym" in llm-compressor/compressed-tensors is the full range with scale amax/(q_range/2),
  // which is this library's "symfull" (docs/formats.md §1.4).
  auto P = [](std::string label, std::string w, std::string a = "", std::string kv = "", std::string mix = "") {
    return std::pair<std::string, SchemeSpec>(label, SchemeSpec{label, w, a, kv, mix, "", ""});
  };
  std::vector<std::pair<std::string, SchemeSpec>> presets = {
      P("W8A8", "int8:channel", "int8:token"),
      P("W8A16", "int8:channel"),
      P("W4A16", "int4:g128:symfull"),
      P("W4A16_ASYM", "int4:g128:asym"),
      P("W4A8", "int4:g128:symfull", "int8:token"),
      P("FP8_DYNAMIC", "fp8_e4m3:channel", "fp8_e4m3:token"),
      P("FP8_BLOCK", "fp8_e4m3:b128x128", "fp8_e4m3:g128"),
      // Block formats: their scheme names ("mxfp4", "nvfp4", "nf4", "q4_0") already mean
      // weights only, so the presets name the weight+activation variants.
      P("MXFP4A16", "mxfp4"),
      P("W4A4_MXFP4", "mxfp4", "mxfp4"),
      P("W8A8_MXFP8", "mxfp8_e4m3", "mxfp8_e4m3"),
      P("NVFP4A16", "nvfp4"),
      P("W4A4_NVFP4", "nvfp4", "nvfp4"),
  };
  for (auto& p : LlamaMixPresets()) presets.push_back(std::move(p));
  return presets;
}

namespace {

// The canonical check of one scheme field, pointing at the node on error.
StatusOr<std::string> CanonAt(const std::string& origin, const YAML::Node& at, const std::string& text,
                              const std::string& what) {
  auto c = CanonicalScheme(text);
  if (!c.ok()) return Status::Error(At(origin, at) + what + " '" + text + "': " + c.status().message());
  return c;
}

// `protocol:` as a string ("llamacpp:ctx512") or a map {name, ctx, stride, chunks}; canonical text.
StatusOr<std::string> ParseProtocol(const std::string& origin, const YAML::Node& p) {
  std::string text;
  if (p.IsMap()) {
    QL_RETURN_IF_ERROR(CheckKeys(origin, p, "protocol", {"name", "ctx", "stride", "chunks"}));
    if (!p["name"]) return Status::Error(At(origin, p) + "protocol needs a 'name' (llamacpp, gptq, strided)");
    QL_ASSIGN_OR_RETURN(text, Str(origin, p["name"], "protocol.name"));
    if (p["ctx"]) { QL_ASSIGN_OR_RETURN(int64_t v, Int(origin, p["ctx"], "protocol.ctx", 2, 1 << 20)); text += fmt::format(":ctx{}", v); }
    if (p["stride"]) { QL_ASSIGN_OR_RETURN(int64_t v, Int(origin, p["stride"], "protocol.stride", 1, 1 << 20)); text += fmt::format(":s{}", v); }
    if (p["chunks"]) { QL_ASSIGN_OR_RETURN(int64_t v, Int(origin, p["chunks"], "protocol.chunks", 1, 1 << 30)); text += fmt::format(":chunks{}", v); }
  } else {
    QL_ASSIGN_OR_RETURN(text, Str(origin, p, "protocol"));
  }
  auto spec = ProtocolSpec::Parse(text);
  if (!spec.ok()) return Status::Error(At(origin, p) + spec.status().message());
  return spec->Canonical();
}

// The top-level scalars: baseline, seed, tied_head, layer_error_windows, kld_top_k, results.
Status ParseRunOptions(const std::string& origin, const YAML::Node& root, const std::string& base_dir,
                       Experiment& e) {
  if (const YAML::Node b = root["baseline"]) {
    QL_ASSIGN_OR_RETURN(e.baseline, Str(origin, b, "baseline"));
    e.baseline = Lower(e.baseline);
    if (e.baseline != "bf16" && e.baseline != "fp32" && e.baseline != "bf16-compute")
      return Status::Error(At(origin, b) + "baseline '" + e.baseline + "' is not one of: bf16, fp32, bf16-compute");
  }
  if (const YAML::Node s = root["seed"]) {
    QL_ASSIGN_OR_RETURN(e.seed, Int(origin, s, "seed", 0, INT64_MAX));
  }
  if (const YAML::Node t = root["tied_head"]) {
    QL_ASSIGN_OR_RETURN(e.tied_head, Str(origin, t, "tied_head"));
    e.tied_head = Lower(e.tied_head);
    if (e.tied_head != "shared" && e.tied_head != "untie")
      return Status::Error(At(origin, t) + "tied_head '" + e.tied_head +
                           "' is not one of: shared (quantize the one tensor, embedding too), untie (quantize a copy)");
  }
  if (const YAML::Node n = root["layer_error_windows"]) {
    QL_ASSIGN_OR_RETURN(int64_t v, Int(origin, n, "layer_error_windows", 0, 1 << 20));
    e.layer_error_windows = int(v);
  }
  if (const YAML::Node n = root["kld_top_k"]) {
    QL_ASSIGN_OR_RETURN(int64_t v, Int(origin, n, "kld_top_k", 0, 1 << 20));
    e.kld_top_k = int(v);
  }
  if (const YAML::Node r = root["results"]) {
    QL_ASSIGN_OR_RETURN(std::string r_text, Str(origin, r, "results"));
    e.results = Resolve(base_dir, r_text);
  } else {
    e.results = Resolve(base_dir, e.results);
  }
  return Status::Ok();
}

StatusOr<CalibrationSpec> ParseCalibration(const std::string& origin, const YAML::Node& c,
                                           const std::string& base_dir) {
  QL_RETURN_IF_ERROR(CheckKeys(origin, c, "calibration", {"data", "samples", "seqlen", "seed"}));
  CalibrationSpec cal;
  if (!c["data"]) return Status::Error(At(origin, c) + "calibration needs 'data' (a text file)");
  QL_ASSIGN_OR_RETURN(std::string cd, Str(origin, c["data"], "calibration.data"));
  cal.data = Resolve(base_dir, cd);
  if (c["samples"]) { QL_ASSIGN_OR_RETURN(int64_t v, Int(origin, c["samples"], "calibration.samples", 1, 1 << 20)); cal.samples = int(v); }
  if (c["seqlen"]) { QL_ASSIGN_OR_RETURN(int64_t v, Int(origin, c["seqlen"], "calibration.seqlen", 2, 1 << 20)); cal.seqlen = int(v); }
  if (c["seed"]) { QL_ASSIGN_OR_RETURN(cal.seed, Int(origin, c["seed"], "calibration.seed", 0, INT64_MAX)); }
  return cal;
}

// `ignore_sets:` — the file's named ignore sets (beside the built-ins).
StatusOr<std::vector<IgnoreSetSpec>> ParseIgnoreSets(const std::string& origin, const YAML::Node& root) {
  std::vector<IgnoreSetSpec> user_sets;
  if (const YAML::Node is = root["ignore_sets"]) {
    if (!is.IsMap()) return Status::Error(At(origin, is) + "'ignore_sets' must map a name to a list of entries");
    for (const auto& kv : is) {
      IgnoreSetSpec s;
      s.name = kv.first.as<std::string>();
      QL_ASSIGN_OR_RETURN(s.entries, StrList(origin, kv.second, "ignore_sets." + s.name));
      for (const auto& entry : s.entries) {
        if (entry.rfind("re:", 0) == 0) {
          try {
            std::regex probe(entry.substr(3));
          } catch (const std::regex_error& err) {
            return Status::Error(At(origin, kv.second) + "ignore set '" + s.name + "': '" + entry +
                                 "' is not a valid regular expression");
          }
        }
      }
      user_sets.push_back(std::move(s));
    }
  }

  return user_sets;
}

// Presets: built-ins, then the file's own `presets:` (which may shadow a built-in by name).
StatusOr<std::vector<std::pair<std::string, SchemeSpec>>> ParsePresets(const std::string& origin,
                                                                      const YAML::Node& root) {
  std::vector<std::pair<std::string, SchemeSpec>> presets = BuiltinPresets();
  if (const YAML::Node ps = root["presets"]) {
    if (!ps.IsMap()) return Status::Error(At(origin, ps) + "'presets' must map a name to {weights, activations, kv_cache}");
    for (const auto& kv : ps) {
      const std::string name = kv.first.as<std::string>();
      QL_RETURN_IF_ERROR(CheckKeys(origin, kv.second, "preset '" + name + "'", {"weights", "activations", "kv_cache", "attention"}));
      SchemeSpec s;
      s.label = name;
      if (kv.second["weights"]) { QL_ASSIGN_OR_RETURN(s.weights, Str(origin, kv.second["weights"], "weights")); }
      if (kv.second["activations"]) { QL_ASSIGN_OR_RETURN(s.activations, Str(origin, kv.second["activations"], "activations")); }
      if (kv.second["kv_cache"]) { QL_ASSIGN_OR_RETURN(s.kv_cache, Str(origin, kv.second["kv_cache"], "kv_cache")); }
      if (kv.second["attention"]) { QL_ASSIGN_OR_RETURN(std::tie(s.attn_q, s.attn_p), ParseAttention(origin, kv.second["attention"])); }
      presets.insert(presets.begin(), {name, s});
    }
  }

  return presets;
}

// One entry of grid.schemes: a map {weights, activations, kv_cache, attention, label}, a scheme
// string, or a preset name.
StatusOr<SchemeSpec> ParseGridScheme(const std::string& origin, const YAML::Node& n,
                                     const std::vector<std::pair<std::string, SchemeSpec>>& presets) {
  SchemeSpec s;
  if (n.IsMap()) {
    QL_RETURN_IF_ERROR(CheckKeys(origin, n, "a grid scheme", {"weights", "activations", "kv_cache", "attention", "label"}));
    std::vector<std::string> parts;
    for (const char* k : {"weights", "activations", "kv_cache"}) {
      if (!n[k]) continue;
      QL_ASSIGN_OR_RETURN(std::string v, Str(origin, n[k], k));
      if (std::string(k) == "weights" && MixPreset(presets, v, &s)) {  // {weights: Q4_K_M, activations: ...}
        parts.push_back("W=" + s.label);
        continue;
      }
      QL_ASSIGN_OR_RETURN(std::string c, CanonAt(origin, n[k], v, k));
      (std::string(k) == "weights" ? s.weights : std::string(k) == "activations" ? s.activations : s.kv_cache) = c;
      if (!c.empty()) parts.push_back(std::string(k == std::string("weights") ? "W=" : k == std::string("activations") ? "A=" : "KV=") + c);
    }
    if (n["attention"]) {
      QL_ASSIGN_OR_RETURN(std::tie(s.attn_q, s.attn_p), ParseAttention(origin, n["attention"]));
      if (!s.AttentionText().empty()) parts.push_back(AttentionLabel(s.attn_q, s.attn_p));
    }
    if (n["label"]) { QL_ASSIGN_OR_RETURN(s.label, Str(origin, n["label"], "label")); } else { s.label = Join(parts); }
  } else {
    QL_ASSIGN_OR_RETURN(std::string text, Str(origin, n, "grid.schemes entry"));
    // A scheme string first ("mxfp4" is the weight format), then a preset name ("W8A8").
    auto c = CanonicalScheme(text);
    auto it = std::find_if(presets.begin(), presets.end(),
                           [&](const auto& p) { return Lower(p.first) == Lower(text); });
    if (c.ok()) {
      s.label = *c;
      s.weights = *c;
    } else if (it != presets.end()) {
      s = it->second;
      QL_ASSIGN_OR_RETURN(s.weights, CanonAt(origin, n, s.weights, "preset " + it->first + " weights"));
      QL_ASSIGN_OR_RETURN(s.activations, CanonAt(origin, n, s.activations, "preset " + it->first + " activations"));
      QL_ASSIGN_OR_RETURN(s.kv_cache, CanonAt(origin, n, s.kv_cache, "preset " + it->first + " kv_cache"));
    } else {
      std::vector<std::string> names;
      for (const auto& p : presets) names.push_back(p.first);
      return Status::Error(At(origin, n) + "'" + text + "' is neither a scheme (" + c.status().message() +
                           ") nor a preset (" + Join(names) + ")");
    }
  }
  return s;
}

// One entry of grid.algorithms: a name, or a map {name, params...}; params stored with defaults.
StatusOr<AlgorithmSpec> ParseAlgorithm(const std::string& origin, const YAML::Node& n) {
  AlgorithmSpec a;
  if (n.IsMap()) {
    if (!n["name"]) return Status::Error(At(origin, n) + "an algorithm entry needs 'name'");
    QL_ASSIGN_OR_RETURN(a.name, Str(origin, n["name"], "name"));
    for (const auto& kv : n) {
      const std::string k = kv.first.as<std::string>();
      if (k != "name") a.params[k] = YamlToJson(kv.second);
    }
  } else {
    QL_ASSIGN_OR_RETURN(a.name, Str(origin, n, "algorithm"));
  }
  a.name = Lower(a.name);
  auto info = FindAlgorithm(a.name);
  if (!info.ok()) return Status::Error(At(origin, n) + info.status().message());
  auto params = ResolveAlgorithmParams(**info, a.params);
  if (!params.ok()) return Status::Error(At(origin, n) + params.status().message());
  a.params = *params;  // stored with defaults filled in, so the identity is explicit
  return a;
}

// Algorithm parameters that name a file, resolved against the experiment file's directory like model: and data:.
struct PathParam {
  const char* algorithm;
  const char* param;
};
constexpr PathParam kPathParams[] = {{"imatrix", "file"}};  // harness/quant/imatrix.h

void ResolveAlgorithmPaths(const std::string& base_dir, Experiment& e) {
  for (AlgorithmSpec& a : e.algorithms)
    for (const auto& [param, path] : AlgorithmFiles(a.name, a.params)) a.params[param] = Resolve(base_dir, path);
}

// grid.ignore: names of built-in or user ignore sets; [none] when absent.
StatusOr<std::vector<IgnoreSetSpec>> ParseGridIgnore(const std::string& origin, const YAML::Node& g,
                                                     const std::vector<IgnoreSetSpec>& user_sets) {
  std::vector<IgnoreSetSpec> sets;
  const std::vector<std::string> builtin = BuiltinIgnoreSetNames();
  if (const YAML::Node gi = g["ignore"]) {
    QL_ASSIGN_OR_RETURN(std::vector<std::string> names, StrList(origin, gi, "grid.ignore"));
    if (names.empty())
      return Status::Error(At(origin, gi) + "grid.ignore is empty: the grid would have no cells (leave it out for "
                                            "[none], or name ignore sets)");
    for (const auto& name : names) {
      auto u = std::find_if(user_sets.begin(), user_sets.end(), [&](const auto& s) { return s.name == name; });
      if (u != user_sets.end()) {
        sets.push_back(*u);
      } else if (std::find(builtin.begin(), builtin.end(), name) != builtin.end()) {
        sets.push_back({name, {}, true});
      } else {
        std::vector<std::string> all = builtin;
        for (const auto& s : user_sets) all.push_back(s.name);
        return Status::Error(At(origin, gi) + "unknown ignore set '" + name + "' (known: " + Join(all) +
                             "; define your own under ignore_sets:)");
      }
    }
  } else {
    sets.push_back({"none", {}, true});
  }
  return sets;
}

// grid.activations, grid.kv_cache and grid.attention: the optional axes.
Status ParseGridAxes(const std::string& origin, const YAML::Node& g, Experiment& e) {
  for (const char* axis : {"activations", "kv_cache"}) {
    if (const YAML::Node n = g[axis]) {
      QL_ASSIGN_OR_RETURN(std::vector<std::string> v, StrList(origin, n, std::string("grid.") + axis));
      std::vector<std::string> c;
      for (const auto& s : v) {
        QL_ASSIGN_OR_RETURN(std::string cs, CanonAt(origin, n, s, axis));
        c.push_back(cs);
      }
      (std::string(axis) == "activations" ? e.activations_axis : e.kv_cache_axis) = c;
    }
  }
  if (const YAML::Node n = g["attention"]) {
    std::vector<std::pair<std::string, std::string>> axis;
    if (n.IsSequence()) {
      for (const auto& entry : n) {
        QL_ASSIGN_OR_RETURN(auto qp, ParseAttention(origin, entry));
        axis.push_back(qp);
      }
    } else {
      QL_ASSIGN_OR_RETURN(auto qp, ParseAttention(origin, n));
      axis.push_back(qp);
    }
    e.attention_axis = axis;
  }
  return Status::Ok();
}

// grid: schemes × algorithms × ignore sets × the optional axes.
Status ParseGrid(const std::string& origin, const YAML::Node& root, Experiment& e) {
  QL_ASSIGN_OR_RETURN(auto presets, ParsePresets(origin, root));
  QL_ASSIGN_OR_RETURN(auto user_sets, ParseIgnoreSets(origin, root));
  const YAML::Node g = root["grid"];
  QL_RETURN_IF_ERROR(CheckKeys(origin, g, "grid", {"schemes", "algorithms", "ignore", "activations", "kv_cache", "attention"}));
  if (!g["schemes"]) return Status::Error(At(origin, g) + "grid needs 'schemes' (a list of scheme strings or presets)");
  const YAML::Node gs = g["schemes"];
  if (!gs.IsSequence() || gs.size() == 0) return Status::Error(At(origin, gs) + "grid.schemes must be a non-empty list");
  for (const auto& n : gs) {
    QL_ASSIGN_OR_RETURN(SchemeSpec s, ParseGridScheme(origin, n, presets));
    e.schemes.push_back(std::move(s));
  }
  if (const YAML::Node ga = g["algorithms"]) {
    if (!ga.IsSequence() || ga.size() == 0) return Status::Error(At(origin, ga) + "grid.algorithms must be a non-empty list");
    for (const auto& n : ga) {
      QL_ASSIGN_OR_RETURN(AlgorithmSpec a, ParseAlgorithm(origin, n));
      e.algorithms.push_back(std::move(a));
    }
  } else {
    e.algorithms.push_back({"rtn", nlohmann::json::object()});
  }
  QL_ASSIGN_OR_RETURN(e.ignore_sets, ParseGridIgnore(origin, g, user_sets));
  return ParseGridAxes(origin, g, e);
}

// Duplicate grid entries would run the same cell twice under one identity.
Status CheckNoDuplicateCells(const std::string& origin, const Experiment& e) {
  std::set<std::string> seen;
  for (const Cell& c : ExpandGrid(e)) {
    const std::string key = c.CanonicalJson(e).dump();
    if (!seen.insert(key).second)
      return Status::Errorf("{}: the grid has the same cell twice ({}); remove the duplicate entry", origin, c.Label());
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Experiment> ParseExperiment(const std::string& yaml_text, const std::string& origin,
                                     const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Status::Errorf("{}:{}: YAML syntax error: {}", origin, e.mark.line + 1, e.msg);
  }
  QL_RETURN_IF_ERROR(CheckYamlTree(root, origin));
  if (!root.IsMap()) return Status::Errorf("{}: an experiment file is a YAML map (see experiments/default.yaml)", origin);
  QL_RETURN_IF_ERROR(CheckKeys(origin, root, "the experiment",
                               {"name", "model", "data", "protocol", "baseline", "calibration", "seed", "results",
                                "targets", "ignore_sets", "presets", "grid", "tied_head", "layer_error_windows",
                                "kld_top_k", "overrides", "sensitivity", "tasks"}));
  Experiment e;
  e.text = yaml_text;
  for (const char* k : {"name", "model", "data", "grid"})
    if (!root[k]) return Status::Errorf("{}: missing required key '{}'", origin, k);
  QL_ASSIGN_OR_RETURN(e.name, Str(origin, root["name"], "name"));
  QL_ASSIGN_OR_RETURN(std::string model, Str(origin, root["model"], "model"));
  QL_ASSIGN_OR_RETURN(std::string data, Str(origin, root["data"], "data"));
  e.model = Resolve(base_dir, model);
  e.data = Resolve(base_dir, data);

  if (const YAML::Node p = root["protocol"]) { QL_ASSIGN_OR_RETURN(e.protocol, ParseProtocol(origin, p)); }
  QL_RETURN_IF_ERROR(ParseRunOptions(origin, root, base_dir, e));
  if (const YAML::Node c = root["calibration"]) { QL_ASSIGN_OR_RETURN(e.calibration, ParseCalibration(origin, c, base_dir)); }
  if (const YAML::Node t = root["targets"]) {
    QL_ASSIGN_OR_RETURN(e.targets, StrList(origin, t, "targets"));
    if (e.targets.empty()) return Status::Error(At(origin, t) + "'targets' is empty: nothing would be quantized");
  }

  if (const YAML::Node ov = root["overrides"]) { QL_ASSIGN_OR_RETURN(e.overrides, ParseOverrides(origin, ov)); }
  if (const YAML::Node sn = root["sensitivity"]) { QL_ASSIGN_OR_RETURN(e.sensitivity, ParseSensitivity(origin, sn)); }
  if (const YAML::Node tn = root["tasks"]) { QL_ASSIGN_OR_RETURN(e.tasks, ParseTaskSpecs(origin, tn, base_dir)); }
  QL_RETURN_IF_ERROR(ParseGrid(origin, root, e));
  ResolveAlgorithmPaths(base_dir, e);
  QL_RETURN_IF_ERROR(CheckNoDuplicateCells(origin, e));
  return e;
}

StatusOr<Experiment> LoadExperiment(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("{}: cannot read experiment file (does it exist?)", path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string dir = fs::path(path).parent_path().string();
  QL_ASSIGN_OR_RETURN(Experiment e, ParseExperiment(ss.str(), path, dir.empty() ? "." : dir));
  e.path = path;
  return e;
}

namespace {

// Fixes that changed what cells record for an unchanged configuration, by algorithm and by weight format
// (docs/algorithms.md §8, §9). A revision enters the identity only of the cells it names, so every other
// cell keeps its id; add a line here when a fix moves one algorithm's or format's numbers.
const std::map<std::string, int>& AlgorithmRevisions() {
  static const std::map<std::string, int> m = {{"hqq", 1}};  // 1: its fp16 zero points are counted in the sizes
  return m;
}
const std::map<std::string, int>& FormatRevisions() {
  static const std::map<std::string, int> m = {{"lut2", 1}, {"lut3", 1}, {"lut4", 1}};  // 1: exact k-means
  return m;
}
int Revision(const std::map<std::string, int>& table, const std::string& key) {
  const auto it = table.find(key);
  return it == table.end() ? 0 : it->second;
}
int FormatRevision(const std::string& weights) {
  if (weights.empty()) return 0;
  auto s = ParseScheme(weights);
  return s.ok() ? Revision(FormatRevisions(), s->format) : 0;
}

}  // namespace

nlohmann::json Cell::CanonicalJson(const Experiment& e) const {
  nlohmann::json j;
  j["protocol"] = e.protocol;
  j["baseline"] = e.baseline;
  j["targets"] = e.targets;
  j["scheme"] = scheme.ToJson();
  j["algorithm"] = {{"name", algorithm.name}, {"params", algorithm.params}};
  j["ignore"] = {{"name", ignore.name}, {"entries", ignore.entries}, {"builtin", ignore.builtin}};
  j["seed"] = e.seed;
  if (e.tied_head != "shared") j["tied_head"] = e.tied_head;
  if (e.layer_error_windows != 1) j["layer_error_windows"] = e.layer_error_windows;
  if (e.kld_top_k != 0) j["kld_top_k"] = e.kld_top_k;
  if (!overrides.empty()) {
    nlohmann::json ov = nlohmann::json::array();
    for (const OverrideSpec& o : overrides) ov.push_back({{"targets", o.targets}, {"scheme", o.scheme}});
    j["overrides"] = ov;
  }
  if (adaptive) j["adaptive"] = adaptive->ToJson();
  // The calibration text enters as its content hash (CellId), and only for cells that use it.
  auto algo = FindAlgorithm(algorithm.name);
  if (const int r = Revision(AlgorithmRevisions(), algorithm.name); r > 0) j["algorithm"]["revision"] = r;
  int format_revision = FormatRevision(scheme.weights);
  for (const OverrideSpec& o : overrides) format_revision = std::max(format_revision, FormatRevision(o.scheme));
  if (format_revision > 0) j["format_revision"] = format_revision;
  if (e.calibration && algo.ok() && NeedsCalibration(**algo, algorithm.params)) {
    j["calibration"] = {{"samples", e.calibration->samples}, {"seqlen", e.calibration->seqlen},
                        {"seed", e.calibration->seed}};
  }
  return j;
}

std::string Cell::Label() const {
  return fmt::format("{} | {} | ignore={}{}", scheme.label, algorithm.Label(), ignore.name, adaptive ? " | adaptive" : "");
}

nlohmann::json AdaptiveSpec::ToJson() const {
  if (windows > 0) return {{"windows", windows}};
  nlohmann::json j = {{"rel_se", rel_se}, {"threshold", threshold}, {"z", z}, {"min_windows", min_windows}};
  if (DnllRule()) j.update({{"dnll_rel_se", dnll_rel_se}, {"dnll_se", dnll_se}});  // off: the identity as before
  return j;
}

std::string ExperimentId(const Experiment& e) {
  return fmt::format("{}-{:016x}", e.name, Fnv1a64(e.text.data(), e.text.size()));
}

std::vector<Cell> ExpandGrid(const Experiment& e) {
  std::vector<Cell> cells;
  const std::vector<std::string> acts = e.activations_axis.value_or(std::vector<std::string>{"\x01"});
  const std::vector<std::string> kvs = e.kv_cache_axis.value_or(std::vector<std::string>{"\x01"});
  // No attention axis: one pass that leaves the scheme's own attention setting alone.
  std::vector<std::optional<std::pair<std::string, std::string>>> atts = {std::nullopt};
  if (e.attention_axis) atts.assign(e.attention_axis->begin(), e.attention_axis->end());
  for (const auto& s : e.schemes)
    for (const auto& a : e.algorithms)
      for (const auto& ig : e.ignore_sets)
        for (const auto& act : acts)
          for (const auto& kv : kvs)
          for (const auto& att : atts) {
            Cell c;
            c.index = int(cells.size());
            c.scheme = s;
            if (act != "\x01") c.scheme.activations = act;
            if (kv != "\x01") c.scheme.kv_cache = kv;
            if (act != "\x01" || kv != "\x01") {
              if (act != "\x01") c.scheme.label += " A=" + (act.empty() ? std::string("none") : act);
              if (kv != "\x01") c.scheme.label += " KV=" + (kv.empty() ? std::string("none") : kv);
            }
            if (att) {
              c.scheme.attn_q = att->first;
              c.scheme.attn_p = att->second;
              const std::string al = AttentionLabel(att->first, att->second);
              c.scheme.label += " " + (al.empty() ? std::string("QP=none") : al);
            }
            c.algorithm = a;
            c.ignore = ig;
            c.overrides = e.overrides;
            cells.push_back(std::move(c));
          }
  return cells;
}

StatusOr<std::pair<int, int>> ParseShard(const std::string& s) {
  int i = -1, n = -1;
  char slash = 0, extra = 0;
  std::istringstream in(s);
  if (!(in >> i >> slash >> n) || slash != '/' || (in >> extra) || n < 1 || i < 0 || i >= n)
    return Status::Errorf("--shard '{}' must be i/N with 0 <= i < N (e.g. 0/4; Slurm: $SLURM_ARRAY_TASK_ID/N)", s);
  return std::make_pair(i, n);
}

std::vector<Cell> ShardCells(const std::vector<Cell>& cells, int i, int n) {
  std::vector<Cell> out;
  for (const auto& c : cells)
    if (c.index % n == i) out.push_back(c);
  return out;
}

StatusOr<std::string> HashFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Errorf("{}: cannot read file to hash it", path);
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), buf.size());
    h = Fnv1a64(buf.data(), size_t(f.gcount()), h);
  }
  return fmt::format("{:016x}", h);
}

StatusOr<std::string> HashFiles(std::vector<std::string> paths) {
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& f : paths) {
    QL_ASSIGN_OR_RETURN(std::string fh, HashFile(f));
    const std::string name = fs::path(f).filename().string() + "=" + fh;
    h = Fnv1a64(name.data(), name.size(), h);
  }
  return fmt::format("{:016x}", h);
}

std::string CellId(const nlohmann::json& canonical, const ContentHashes& hashes) {
  const std::string s = canonical.dump() + "\nmodel " + hashes.model + "\ndata " + hashes.data + "\ncalibration " +
                        hashes.calibration + fmt::format("\nnumerics {}", kNumericsVersion) +
                        (hashes.tasks.empty() ? std::string() : "\ntasks " + hashes.tasks);
  // Two independent 64-bit FNV-1a passes (different offset bases) -> 80 bits shown.
  const uint64_t a = Fnv1a64(s.data(), s.size());
  const uint64_t b = Fnv1a64(s.data(), s.size(), 0x84222325cbf29ce4ull);
  return fmt::format("{:016x}{:04x}", a, b & 0xffff);
}

std::vector<std::pair<std::string, std::string>> AlgorithmFiles(const std::string& algorithm,
                                                                const nlohmann::json& params) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const PathParam& p : kPathParams)
    if (algorithm == p.algorithm && params.contains(p.param) && params[p.param].is_string())
      files.emplace_back(p.param, params[p.param].get<std::string>());
  return files;
}

}  // namespace ql
