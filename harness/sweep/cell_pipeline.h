// The one cell pipeline: plan → quantize (the cell's algorithm) → hooks (activations, KV cache,
// attention inputs, the algorithm's online transforms) → evaluate against the baseline → storage
// cost → per-tensor and per-layer errors → one result record. `quantlab sweep` runs it for every
// cell of a grid, `quantlab eval` for exactly one; nothing else evaluates a cell. A Session holds
// what the cells of one run share and is built once. Not the grid (experiment.h), not the loop and
// its store commits (runner.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "harness/eval/baseline.h"
#include "harness/eval/body_reuse.h"
#include "harness/eval/evaluator.h"
#include "harness/eval/prefix.h"
#include "datasets/protocol.h"
#include "harness/model/model.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/calibration.h"
#include "harness/quant/llamacpp_act.h"
#include "harness/sweep/cell_tasks.h"
#include "harness/sweep/experiment.h"
#include "harness/util/progress.h"
#include "kernels/scheme.h"
#include "kernels/status.h"
#include "results/store.h"

namespace ql {

struct SessionOptions {
  std::string model;              // overrides the experiment's model path when non-empty
  std::string tokenizer;          // replaces the tokenizer found beside the model when non-empty
  std::string baseline_cache_dir; // baseline files (<dir>/<hash>.qlbase); "" = in memory only
  std::ostream* log = nullptr;    // one line per step when set
  ProgressStyle progress;         // the baseline's forward pass (off by default)
  // > 0: keep the reference's residual stream entering the blocks, for every window, in at most this
  // many MB (harness/eval/prefix.h), so cells that change only later blocks start there. 0 = off.
  int64_t prefix_budget_mb = 0;
};

// Windows a session's cells evaluated, and took from window records instead, so far (counted by
// EvaluateReusingPrefix; read by the runner's ETA and the search's refinement report).
struct WindowTally {
  std::atomic<int64_t> evaluated{0};  // windows run through the model
  std::atomic<int64_t> taken{0};      // windows taken from records (harness/sweep/window_records.h)
};

// Loaded once per run: the model at the baseline precision, the text and its windows, the baseline,
// the calibration windows (when some cell's algorithm needs them) and the content hashes that make
// up the cells' identities.
struct Session {
  const Experiment* experiment = nullptr;
  std::string model_path;
  Model reference;                 // every weight at the baseline precision; cells start from it
  BaselinePrecision precision = BaselinePrecision::kBf16;
  ProtocolSpec protocol;
  std::string text;
  std::vector<int> tokens;         // [n] the text without BOS
  std::vector<Window> windows;
  std::shared_ptr<const Baseline> base;
  bool baseline_from_disk = false;
  std::optional<CalibrationSet> calibration;
  ContentHashes hashes;            // calibration "" when no cell needs it
  // The reference's block outputs on the layer-error windows, captured once (null when they would
  // exceed kBlockOutputBudget: each cell then re-runs the reference, LayerOutputErrors).
  std::shared_ptr<const ReferenceBlockOutputs> block_outputs;
  static constexpr size_t kBlockOutputBudget = size_t(256) << 20;
  std::shared_ptr<const PrefixStore> prefix;  // null unless SessionOptions::prefix_budget_mb > 0
  std::vector<SessionTask> tasks;  // `tasks:`, the baseline scored once (cell_tasks.h)
  // Adaptive units keep their windows' records here, and the same unit's full-window cell evaluates
  // only the windows they skipped (harness/sweep/window_records.h); "" = off (set by `sensitivity`).
  std::string window_records_dir;
  // Set by CompactReference (compact_reference.h): every weight as BF16 bits while `reference` keeps only
  // the shapes. Empty: `reference` holds the values.
  std::map<std::string, std::vector<uint16_t>> reference_bf16;
  std::shared_ptr<WindowTally> window_tally = std::make_shared<WindowTally>();
};

// Loads and checks everything `cells` need, before any cell runs.
StatusOr<std::unique_ptr<Session>> OpenSession(const Experiment& e, const std::vector<Cell>& cells,
                                               const SessionOptions& o);

// A cell resolved against the model: every scheme parsed, every module chosen. Built for all cells
// before any runs, so a bad cell stops the run before it starts.
struct CellPlan {
  const Cell* cell = nullptr;
  std::vector<std::pair<std::string, std::string>> module_schemes;  // (module path, canonical scheme)
  std::vector<Scheme> schemes;                                      // parsed, same order
  std::optional<Scheme> activations, kv_cache, attn_q, attn_p;
  const AlgorithmInfo* algorithm = nullptr;
  std::map<std::string, VecDotType> llamacpp_act;  // activations 'llamacpp': every linear's vec_dot_type
  bool untie_head = false;  // tied_head: untie and lm_head is quantized: a copy of the embedding is
};

// The (module path, canonical scheme) pairs a cell quantizes: targets − ignore, each with the cell's
// weight scheme, or a llama.cpp mix's per-module choice (LlamaMixScheme, harness/quant/llama_mixes.h:
// the rule `quantlab export --preset` uses, fallbacks for short rows included), then the cell's overrides (a module set
// to bf16 / none leaves the list). In the model's module order.
StatusOr<std::vector<std::pair<std::string, std::string>>> CellModuleSchemes(const Model& model,
                                                                            const Experiment& e,
                                                                            const Cell& cell);
StatusOr<CellPlan> PlanCell(const Session& s, const Cell& cell);

// The cell's identity and description as a store row (no outcome yet): id, schemes, algorithm,
// ignore set, canonical config, seed, code and numerics versions.
CellRow DescribeCell(const Session& s, const Cell& cell);

// Runs one planned cell on `work` (a copy of s.reference, restored before returning: the tensors
// the algorithm declares it changes, or the whole model). The result's cell row carries the status
// ("ok", "failed" with the reason, "diverged" for a non-finite result), timings, metrics, errors and
// arrays; identity fields come from DescribeCell. `progress`: how the algorithm's and the evaluation's
// progress shows (off by default). body (optional; the sweep's): the streams entering the final norm of the
// last cell that kept them (harness/eval/body_reuse.h): a cell whose body computes the same
// (CellBodyKey, cell_eval.h) runs from them — bitwise the same numbers, `body_from` names that cell — and
// a cell that runs its blocks keeps its own there.
CellResult RunCell(const Session& s, Model& work, const CellPlan& plan, const ProgressStyle& progress = {},
                   KeptBody* body = nullptr);

// The current time as ISO-8601 UTC ("2026-12-01T09:41:00Z"), as every store row records it.
std::string NowIso();

}  // namespace ql
