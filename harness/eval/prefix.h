// Prefix reuse: the reference model's residual stream entering chosen blocks, kept for every evaluation
// window, so a model that differs from the reference only in blocks >= k is evaluated from block k on
// (bitwise the same as a full forward: nothing before block k is read). Also the evaluation loop over
// a chosen order of windows with an early stop (adaptive evaluation). Not the decision which cells may
// start late (harness/sweep/cell_eval.h).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "datasets/protocol.h"
#include "harness/eval/baseline.h"
#include "harness/eval/metrics.h"
#include "harness/model/forward.h"
#include "harness/model/model.h"

namespace ql {

class PrefixStore {
 public:
  // Runs `reference` once over `windows` (blocks only, no LM head) and keeps the stream entering
  // blocks 1..n_layers (n_layers: the final norm's input). Each kept block costs Σ_w T_w · dim floats;
  // when all do not fit in budget_bytes, every s-th block is kept (s the smallest stride that fits,
  // and n_layers whenever it fits) and a model changed from block k on starts at the nearest kept
  // block <= k, recomputing the blocks in between. budget_bytes <= 0 keeps nothing. The budget left
  // after them keeps, for every s'-th block (the smallest stride that fits; block 0 first), the stream
  // after that block's attention, so a model changed only in block k's MLP starts there (sub-block
  // reuse, MlpKept / MlpStream).
  static StatusOr<PrefixStore> Build(const Model& reference, const std::vector<Window>& windows, int64_t budget_bytes);

  // The largest kept block <= k (0 = none: start at the embedding).
  int StartAtOrBelow(int k) const;
  bool Kept(int block) const { return block > 0 && block < int(streams_.size()) && !streams_[block].empty(); }
  // The stream entering `block` (kept) for window w: [T_w, dim].
  const float* Stream(int block, size_t w) const { return streams_[block].data() + offset_[w] * dim_; }
  // The stream after `block`'s attention for window w: [T_w, dim] (kept).
  bool MlpKept(int block) const { return block >= 0 && block < int(mlp_.size()) && !mlp_[block].empty(); }
  const float* MlpStream(int block, size_t w) const { return mlp_[block].data() + offset_[w] * dim_; }
  int64_t bytes() const { return bytes_; }
  int kept_blocks() const;
  int kept_mlp_inputs() const;

 private:
  int dim_ = 0;
  std::vector<size_t> offset_;               // [windows] first token row of each window
  std::vector<std::vector<float>> streams_;  // [n_layers + 1][Σ T, dim]; empty = not kept
  std::vector<std::vector<float>> mlp_;      // [n_layers][Σ T, dim] after each block's attention; empty = not kept
  int64_t bytes_ = 0;
};

// How to run the windows of one evaluation.
// Per window run (in run order): its scored tokens, the sum of their KLD and of their paired NLL
// difference (nll_quant − nll_base): what an adaptive stopping rule reads.
struct WindowSums {
  std::vector<double> kld, dnll;
  std::vector<int64_t> tokens;
};

struct WindowPlan {
  int start_block = 0;                  // > 0: every window starts here from `prefix` (kept there)
  bool start_mlp = false;               // start at start_block's MLP from prefix->MlpStream (any block)
  const PrefixStore* prefix = nullptr;
  std::vector<int> order;               // windows to run in this order; empty = all in index order
  // Called after each window with the sums of every window run so far (in run order); true stops the
  // evaluation. Empty = run them all.
  std::function<bool(const WindowSums& sums)> stop;
  // [windows] records to take as they are instead of running the window where set (an earlier
  // evaluation of the same model: harness/sweep/window_records.h); null = run every window.
  const std::vector<std::optional<TokenRecords>>* known = nullptr;
};

struct WindowRecords {
  TokenRecords records;  // the windows run, in window index order (all of them: EvaluateAgainstBaseline's)
  int windows = 0;       // how many ran (taken from plan.known included)
  int reused = 0;        // of those, taken from plan.known
};

// EvaluateAgainstBaseline over the plan's windows: the same per-token records for every window it runs.
StatusOr<WindowRecords> EvaluateWindows(const Model& model, const std::vector<Window>& windows, const Baseline& base,
                                        const ForwardHooks* hooks, const WindowPlan& plan);

// LayerOutputErrors (harness/eval/evaluator.h, without a basis change) for a test model equal to the
// reference before block `k`: both start at prefix's nearest kept block <= k (the reference's block
// outputs are read from the store when it keeps them all from there); the blocks before it are
// identical, so their error is exact zero (SQNR +inf) without running them.
StatusOr<std::vector<SignalError>> LayerOutputErrorsFrom(const Model& reference, const Model& test,
                                                        const std::vector<Window>& windows, int max_windows,
                                                        const ForwardHooks* test_hooks, const PrefixStore& prefix,
                                                        int k);

}  // namespace ql
