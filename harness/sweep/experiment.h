// An experiment file (YAML) parsed and validated, and its grid expanded into cells with stable
// identities. Not the runner (harness/sweep/runner.h) and not the results store (results/).
//
// File shape (every key checked; unknown keys are errors naming the line and the allowed keys):
//   name: default-sweep
//   model: path/to/checkpoint          # HF dir, .gguf or llama2.c .bin (relative to the YAML file)
//   data: path/to/eval.txt
//   protocol: llamacpp:ctx256          # or a map {name: llamacpp, ctx: 256, stride: 128, chunks: 8}
//   baseline: bf16                     # bf16 (default) or fp32
//   calibration: {data: calib.txt, samples: 32, seqlen: 256, seed: 0}
//   seed: 0
//   tied_head: shared                  # a tied lm_head: shared (quantizing it quantizes the embedding
//                                      # too: one tensor) or untie (a quantized copy; lookups stay exact)
//   layer_error_windows: 1             # windows for the per-layer output error (0 = all)
//   kld_top_k: 0                       # baseline log-probs kept for KLD (0 = all when they fit, else 64)
//   results: quantlab-results          # results directory (relative to the YAML file)
//   targets: [Linear]                  # llm-compressor syntax, default [Linear]
//   ignore_sets: {edges: ["re:model\\.layers\\.0\\.", lm_head]}   # named sets, beside the built-ins
//   presets: {mine: {weights: int4:g64, activations: int8:token}}  # user presets, beside the built-ins
//   grid:
//     schemes: [W8A8, int4:g32, {weights: int4:g128:asym, kv_cache: int8:token}]
//     algorithms: [rtn, {name: gptq, percdamp: 0.01}]
//     ignore: [none, lm_head, edges]
//     activations: [none, int8:token]  # optional axis; overrides the scheme's activations
//     kv_cache: [none, int8:token]     # optional axis; overrides the scheme's kv cache
//     attention: [none, int8:token, {q: int8:token, p: fp8_e4m3:noscale}]  # optional axis (below)
//   overrides:                       # per-module schemes, applied to every cell after targets − ignore
//     - {targets: ["re:.*down_proj"], scheme: int8:channel}
//     - {targets: [model.layers.0.self_attn.q_proj], scheme: bf16}   # bf16 / none: baseline precision
//   sensitivity: {units: module, schemes: [int4:g32, int3:g32]}   # `quantlab sensitivity` (sensitivity.h)
//   tasks:                           # task accuracy beside PPL (experiment_tasks.h, docs/tasks.md)
//     - {name: piqa, file: piqa.jsonl, convention: both, limit: 500, seed: 1}
//
// `overrides:` entries use the target syntax of harness/quant/targets.h and may name any linear module
// (also one outside targets or inside the ignore set). Each entry must match at least one module, and no
// module may be matched by two entries (both are errors naming the entry's line): the order of the list
// never decides a result, so a recipe reads the same in any order.
//
// `attention:` (in a grid scheme map, a user preset or the axis) quantizes the inputs of the attention
// matmuls: q = the queries after RoPE (left operand of QKᵀ, per token and head), p = the softmax
// output (left operand of P·V, per query row). A single string applies to both q and p; a map
// {q: S, p: S} sets them apart (a missing one stays unquantized). The keys and values, the other
// operands, are the `kv_cache` key. Only row-local granularities (token, g<N>, noscale, block formats)
// are accepted; see harness/quant/attn_quant.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/status.h"

namespace ql {

// What is quantized, and how, in one cell. Scheme strings are canonical (kernels/scheme.h); "" means
// "left in baseline precision".
struct SchemeSpec {
  std::string label;        // as the user wrote it: "W8A8", "int4:g32", "mine"
  std::string weights;
  std::string activations;
  std::string kv_cache;
  std::string mix;          // llama.cpp mix resolved per module (LlamaMixScheme): "q4_k_m", "mix:q6_k"; or ""
  std::string attn_q;       // attention inputs (see `attention:` above): queries after RoPE
  std::string attn_p;       // softmax output P
  // {"weights", "activations", "kv_cache", "mix"} plus "attention": {"q", "p"} only when one is set,
  // so cells without attention quantization keep the identity they had before the key existed.
  nlohmann::json ToJson() const;
  // The results column attn_scheme: "" when neither is set, else "q=<scheme|none> p=<scheme|none>".
  std::string AttentionText() const;
};

struct AlgorithmSpec {
  std::string name;                                  // registry name: "rtn", "gptq", …
  nlohmann::json params = nlohmann::json::object();  // as given; defaults are filled by the algorithm
  std::string Label() const;                         // "gptq(damp=0.01)"
};

struct IgnoreSetSpec {
  std::string name;
  std::vector<std::string> entries;  // llm-compressor syntax; empty for a built-in until resolved
  bool builtin = false;              // resolved against the model (harness/quant/targets.h)
};

// One entry of `overrides:`: these modules get this weight scheme ("" = baseline precision).
struct OverrideSpec {
  std::vector<std::string> targets;  // llm-compressor syntax (harness/quant/targets.h)
  std::string scheme;                // canonical, or "" for bf16 / none
  std::string where;                 // "file:line" of the entry, for errors at plan time
};

// `sensitivity:` — what `quantlab sensitivity` scans (harness/sweep/sensitivity.h).
// Adaptive evaluation of a cell: its windows in one seeded random order (the experiment's seed, the
// same order for every cell), stopped after window n >= min_windows when the ratio estimate of the
// mean KLD over the windows run, R = Σ kld / Σ tokens, has a standard error
//   se = sqrt((1 − n/N) / n · Σ_i (kld_i − R·t_i)² / (n − 1)) / mean(t)   (kld_i, t_i: window i's sum, tokens)
// at most rel_se · R, or when |R − threshold| >= z · se (threshold >= 0). The cell's metrics are then
// over the windows it ran (metric eval_windows); part of the cell's identity, so a full evaluation of
// the same configuration is another cell. Only sensitivity units are adaptive.
struct AdaptiveSpec {
  double rel_se = 0.1;
  double threshold = -1;  // < 0: no decision threshold
  double z = 3;
  int min_windows = 4;
  // The paired ΔNLL rule (off when both are 0): a unit also needs the standard error of its mean
  // per-token NLL difference (quant − base, the ln PPL ratio a ΔPPL search adds up) to be at most
  // max(dnll_rel_se · |mean|, dnll_se) before it stops (docs/sensitivity.md). dnll_se is in nats per
  // token: the floor a ΔNLL near 0 stops at, where a relative bound never would.
  double dnll_rel_se = 0;
  double dnll_se = 0;
  bool DnllRule() const { return dnll_rel_se > 0 || dnll_se > 0; }
  // > 0: no rule, exactly the first `windows` windows of the seeded order (a step of `search`'s
  // refinement extending an option: sensitivity.cc). Not a YAML key; the identity is {windows} alone.
  int windows = 0;
  nlohmann::json ToJson() const;
};

struct SensitivitySpec {
  std::string units = "module";      // module | layer | type | layer_type
  std::vector<std::string> schemes;  // canonical weight schemes; keeping bf16 is always a candidate
  std::optional<AdaptiveSpec> adaptive;  // `adaptive: {rel_se, threshold, z, min_windows, dnll_rel_se, dnll_se}`; none = full
};

// One entry of `tasks:` (harness/sweep/experiment_tasks.h): a task file scored for the baseline once
// and for every cell (harness/sweep/cell_tasks.h).
struct TaskSpec {
  std::string name;                      // [A-Za-z0-9_-]+: a column and array-path component
  std::string file;                      // resolved relative to the YAML file
  std::vector<std::string> conventions;  // "lmeval" and/or "llamacpp" (harness/eval/tasks.h)
  int64_t limit = 0;                     // 0 = every item (datasets/tasks.h TaskLimit)
  uint64_t seed = 0;                     // with limit: a seeded sample instead of the first N
};

struct CalibrationSpec {
  std::string data;
  int samples = 32;
  int seqlen = 256;
  int64_t seed = 0;
};

struct Experiment {
  std::string path;        // the YAML file ("" when parsed from a string)
  std::string text;        // the YAML as given
  std::string name;
  std::string model, data; // resolved relative to the YAML file's directory
  std::string protocol = "llamacpp:ctx512";
  std::string baseline = "bf16";
  std::optional<CalibrationSpec> calibration;
  int64_t seed = 0;
  std::string tied_head = "shared";  // "shared" | "untie"
  int layer_error_windows = 1;
  int kld_top_k = 0;
  std::string results = "quantlab-results";
  std::vector<std::string> targets = {"Linear"};
  std::vector<SchemeSpec> schemes;
  std::vector<AlgorithmSpec> algorithms;
  std::vector<IgnoreSetSpec> ignore_sets;            // the grid's ignore axis, in order
  std::optional<std::vector<std::string>> activations_axis;
  std::optional<std::vector<std::string>> kv_cache_axis;
  std::optional<std::vector<std::pair<std::string, std::string>>> attention_axis;  // (q, p) per entry
  std::vector<OverrideSpec> overrides;               // copied into every grid cell
  std::optional<SensitivitySpec> sensitivity;
  std::vector<TaskSpec> tasks;                       // `tasks:`; part of the identity only when present
};

// One point of the grid.
struct Cell {
  int index = 0;             // position in the expanded grid (stable for a given file)
  SchemeSpec scheme;         // after the activations/kv_cache/attention axes were applied
  AlgorithmSpec algorithm;
  IgnoreSetSpec ignore;
  std::vector<OverrideSpec> overrides;  // per-module schemes after targets − ignore (see `overrides:`)
  std::optional<AdaptiveSpec> adaptive;  // set only on sensitivity units (see AdaptiveSpec)
  // Canonical JSON of everything that determines the cell's numbers (not the model, text and
  // calibration contents, which enter the identity as hashes; no file paths). Keys at their
  // defaults are left out, so adding an option does not change the identity of cells without it
  // ("overrides" appears only when the cell has some).
  nlohmann::json CanonicalJson(const Experiment& e) const;
  std::string Label() const;  // short human label: "int4:g32 | rtn | ignore=lm_head"
};

// Parses and validates (scheme strings, algorithm names, ignore-set names, protocol). `origin`
// names the file in messages.
StatusOr<Experiment> ParseExperiment(const std::string& yaml_text, const std::string& origin,
                                     const std::string& base_dir = ".");
StatusOr<Experiment> LoadExperiment(const std::string& path);

// The `overrides:` list as YAML flow text ("[{targets: [...], scheme: int8:channel}]"), for recipes.
std::string OverridesYaml(const std::vector<OverrideSpec>& overrides);

std::vector<Cell> ExpandGrid(const Experiment& e);

// "<name>-<16 hex of the file's text>": the experiment's row in a results store.
std::string ExperimentId(const Experiment& e);

// Deterministic slice i of n (0-based i): cells whose index % n == i.
StatusOr<std::pair<int, int>> ParseShard(const std::string& s);  // "i/N" with 0 <= i < N
std::vector<Cell> ShardCells(const std::vector<Cell>& cells, int i, int n);

// Identity of a cell: hash of its canonical JSON, the content hashes of the model files the loader
// read, of the text and (when the cell's algorithm uses it) of the calibration text, and the
// numerics version (harness/eval/numerics.h). Not the code version: that is recorded per row.
// Hex, 20 characters.
struct ContentHashes {
  std::string model, data, calibration;  // calibration "" when the cell needs none
  std::string tasks;                     // the `tasks:` files' contents; "" (and left out) without tasks
};
std::string CellId(const nlohmann::json& canonical, const ContentHashes& hashes);

// Built-in presets: name -> scheme spec (weights/activations/kv/mix). Case-insensitive lookup.
std::vector<std::pair<std::string, SchemeSpec>> BuiltinPresets();

// Content hashes (FNV-1a 64, harness/eval/baseline.h) of a file, in hex. For identities, not security.
StatusOr<std::string> HashFile(const std::string& path);
StatusOr<std::string> HashFiles(std::vector<std::string> paths);  // names (not directories) and contents, sorted

}  // namespace ql
