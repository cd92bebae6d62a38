// The evaluation step of the cell pipeline with its savings: prefix reuse (a cell whose model and
// hooks differ from the reference only in blocks >= k starts at block k from the session's
// PrefixStore; bitwise the same numbers), adaptive evaluation (cells with an AdaptiveSpec stop
// early; their numbers are over the windows they ran) and body reuse (a cell whose embedding and
// blocks compute what the previous cell's did runs only the final norm, the LM head and the scoring:
// harness/eval/body_reuse.h; bitwise the same numbers). Not the pipeline (cell_pipeline.h).
#pragma once

#include <vector>

#include "harness/eval/body_reuse.h"
#include "harness/eval/prefix.h"
#include "harness/quant/algorithm.h"
#include "harness/sweep/cell_pipeline.h"

namespace ql {

// The first block `work` (the cell's model, after its algorithm ran) and the cell's hooks may differ
// from the reference in: the lowest layer of the weights it quantizes (n_layers for lm_head alone;
// 0 for the embedding, which a tied head quantizes with it). 0 — no reuse — when the algorithm may
// change weights outside its targets or installed an online transform, or the cell quantizes the KV
// cache or attention inputs (those hooks act on every layer). Activation quantization acts on the
// quantized modules' inputs only, so it does not prevent reuse.
int FirstChangedBlock(const Model& work, const CellPlan& p, const AlgorithmRuntime& runtime);
// The same from the plan alone (before the algorithm ran: no runtime transforms known).
int FirstPlannedBlock(const Model& work, const CellPlan& p);
// Whether the cell changes nothing of block `first` (its FirstChangedBlock / FirstPlannedBlock, with
// reuse allowed) but MLP weights (mlp.gate_proj / up_proj / down_proj and their activations): then it
// can start from the stream after that block's attention (PrefixStore::MlpStream).
bool OnlyMlpChangesAt(const Model& work, const CellPlan& p, int first);

// Where a cell's evaluation starts with the session's prefix store: block `block` (its input, or with
// `mlp` its MLP's input). {0, false} without a store or reuse.
struct PrefixStart {
  int block = 0;
  bool mlp = false;
};
PrefixStart CellPrefixStart(const Session& s, const Model& work, const CellPlan& p, const AlgorithmRuntime* runtime);

// What the cell's embedding and blocks compute, with its algorithm applied to `work`: a BodyKey of every
// tensor the forward reads before the final norm (the embedding, a tied head's included, and every
// block's, by name, shape and value), the matmul precision, and what the hooks do there (the activation
// scheme and the modules but lm_head it quantizes, llama.cpp's activation types but lm_head's, the
// KV-cache and attention schemes). Two cells with the same key have bitwise the same stream entering the
// final norm. nullopt (never reused) when the algorithm installed an online transform or a basis change
// (code, not data), or the cell runs with prefix reuse or adaptively (their own savings).
std::optional<BodyKey> CellBodyKey(const Session& s, const Model& work, const CellPlan& p,
                                   const AlgorithmRuntime& runtime);
// Cells that may share a body, by plan alone: the same algorithm and parameters, the same scheme on every
// module but lm_head, the same activation, KV-cache and attention schemes. The runner runs each group's
// cells back to back (in grid order within a group), so a pair that differs only in the LM head meets.
std::string PlannedBodyGroup(const CellPlan& p);

// A cell's evaluation work relative to others of the session, for ETAs: the weights of the blocks it
// runs (from its prefix start on) plus the LM head's, as a count of weights (≈ multiply-adds per token).
double CellWork(const Session& s, const CellPlan& p);
// The ETA of a list of cells. A cell's seconds are a fixed part (quantizing, the tensor measures: the
// mean over the cells run) plus its evaluation, taken proportional to CellWork × the fraction of the
// windows it evaluates. That fraction is known only once a cell ran (an adaptive one stops early, a
// full one resumed from window records runs only the rest), so each kind — adaptive or not — is
// projected at the mean fraction its cells evaluated so far (1 before one ran): a scan whose units
// stop at 3 of 8 windows is projected at 3/8 of a full evaluation, whatever blocks they start at.
class CellsEta {
 public:
  // Adds a cell to run: its work (CellWork) and whether it is adaptive. Returns its index.
  size_t Plan(double work, bool adaptive);
  // Cell i is done without running (already recorded).
  void Skip(size_t i);
  // Cell i ran: its fixed seconds (total − evaluation), its evaluation seconds, and the fraction of the
  // session's windows it evaluated (windows taken from records not counted).
  void Ran(size_t i, double seconds_fixed, double seconds_eval, double window_fraction);
  // Seconds the cells neither run nor skipped are projected to take (0 before any ran).
  double SecondsLeft() const;

 private:
  struct Planned {
    double work = 0;
    bool adaptive = false, done = false;
  };
  std::vector<Planned> cells_;
  int ran_ = 0;
  double fixed_ = 0, eval_ = 0, eval_work_ = 0;  // over the cells run: Σ fixed s, Σ eval s, Σ work × fraction
  double fraction_sum_[2] = {0, 0};              // [adaptive] Σ fraction of the cells run of that kind
  int fraction_n_[2] = {0, 0};
};

// The seeded window order of adaptive cells: a Fisher–Yates shuffle of 0..n-1 driven by SplitMix64
// from `seed` (portable, unlike std::shuffle).
std::vector<int> AdaptiveOrder(int n, int64_t seed);

// The ratio estimate R = Σ sum_w / Σ tokens_w over the n windows run of n_total, and its standard error:
// the ratio estimator's, finite-population corrected, sqrt((1 − n/N) / n · Σ (sum_w − R t_w)² / (n − 1))
// / mean t. n >= 2 (se = 0 at n = N).
struct WindowRatio {
  double r = 0, se = 0;
};
WindowRatio RatioOverWindows(const std::vector<double>& sum, const std::vector<int64_t>& tokens, int n_total);

// AdaptiveSpec's stopping rule on the windows run so far out of n_total: at n_total, or at a fixed
// count (AdaptiveSpec::windows); else from min_windows on when the KLD's standard error is at most
// rel_se · KLD or the KLD is z standard errors from the threshold, and — with the ΔNLL rule on — the
// mean ΔNLL's standard error is at most max(dnll_rel_se · |ΔNLL|, dnll_se). Deterministic: a function
// of the sums of the windows run, which run in the seeded order.
bool AdaptiveStop(const AdaptiveSpec& a, const WindowSums& sums, int n_total);
// The KLD rule alone (a spec without the ΔNLL rule): kld_sum[i], tokens[i].
bool AdaptiveStop(const AdaptiveSpec& a, const std::vector<double>& kld_sum, const std::vector<int64_t>& tokens,
                  int n_total);

// Where the cell's per-window records are kept (s.window_records_dir, named by the id of the cell
// without its adaptive rule: the full-window cell that can resume from them); "" when off.
std::string WindowRecordsPath(const Session& s, const Cell& cell);

// EvaluateAgainstBaseline for the cell (prefix start when allowed, adaptive when the cell says so).
// With s.window_records_dir: every cell takes the windows found there instead of running them (bitwise
// the same numbers), and an adaptive cell that ran more windows than the file held writes its records
// there (so a file only grows: always the first windows of the seeded order).
StatusOr<WindowRecords> EvaluateReusingPrefix(const Session& s, const Model& work, const CellPlan& p,
                                     const AlgorithmRuntime& runtime, const ForwardHooks& hooks);

// The evaluation alone of a planned cell, for `search`'s refinement extending an option's window records
// (sensitivity.cc): the cell's algorithm on `work`, its hooks, EvaluateReusingPrefix (prefix start,
// window records taken and, for an adaptive cell, written), `work` restored. No store row, no tensor
// measures, no per-layer errors, no tasks: RunCell's records for the same cell, bitwise, without its
// fixed costs. Defined in cell_pipeline.cc, beside RunCell, whose quantize and restore steps it shares.
StatusOr<WindowRecords> EvaluateCellWindows(const Session& s, Model& work, const CellPlan& p);

// LayerOutputErrors for the cell, from the prefix when allowed.
StatusOr<std::vector<SignalError>> CellLayerErrors(const Session& s, const Model& work, const CellPlan& p,
                                                   const AlgorithmRuntime& runtime, const ForwardHooks& hooks);

}  // namespace ql
