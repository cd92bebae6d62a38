// Runs a (quantized) model over a protocol's windows and compares it token by token with a Baseline;
// also the per-tensor weight error and the per-layer output error against the reference model.
// Not the quantization itself (harness/quant) and not the summary math (metrics.h).
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "harness/eval/baseline.h"
#include "harness/eval/metrics.h"
#include "datasets/protocol.h"
#include "harness/model/forward.h"
#include "harness/model/model.h"
#include "harness/util/progress.h"

namespace ql {

// Per-token records of `model` against `base` over `windows` (the windows the baseline was built
// on: same count of scored tokens, checked). hooks: optional activation/KV hooks for the model.
// KLD uses the model's log-probs rounded to float32 exactly as the baseline stored its own, so a
// model identical to the reference gives KLD = 0 exactly. progress (optional): windows done.
StatusOr<TokenRecords> EvaluateAgainstBaseline(const Model& model, const std::vector<Window>& windows,
                                               const Baseline& base, const ForwardHooks* hooks = nullptr,
                                               const ProgressFn& progress = {});

// The first logits row any of `windows` scores (score_begin - 1; the LM head may skip the rows before
// it: ForwardHooks::logits_from_row), and `hooks` (or none) with it set.
int FirstScoredLogitRow(std::span<const Window> windows);
ForwardHooks ScoringHooks(const ForwardHooks* hooks, int first_logit_row);

// Whether `windows` are the ones `base` was built on, for `model`: the same vocabulary and count of
// scored tokens (an error naming both otherwise).
Status CheckAgainstBaseline(const Model& model, const std::vector<Window>& windows, const Baseline& base);

// Appends one window's scored tokens to r: logits [T, vocab] of the model on w, compared with the
// baseline's records from scored-token index `first` on (the window's place in the baseline).
void ScoreWindow(const Baseline& base, const Window& w, int64_t first, const float* logits, TokenRecords* r);

// Error of every tensor that differs in shape-compatible pairs: for each name in `names`,
// CompareTensors(reference.W(name), quantized.W(name)). Names missing in either model are skipped.
std::vector<std::pair<std::string, SignalError>> WeightErrors(const Model& reference, const Model& quantized,
                                                             const std::vector<std::string>& names);

// Per-layer output error: both models run the first `max_windows` windows (0 = all) with a
// block_output hook; layer l's residual stream after block l of `test` is compared with the
// reference's over every position of each window ([T, dim] per window). Result [n_layers].
// The reference is re-run here rather than stored in the Baseline: n_layers·dim floats per token
// would dwarf the log-probs for real models.
StatusOr<std::vector<SignalError>> LayerOutputErrors(const Model& reference, const Model& test,
                                                    const std::vector<Window>& windows, int max_windows);
// The same with the test model's evaluation hooks (activation/KV fake quantization, an algorithm's
// online transforms; their block_output is replaced here) and, when the test model's residual stream
// lives in another basis (rotation), the map of a reference stream [T, dim] into that basis, applied
// to the reference before comparing. Either may be null/empty.
StatusOr<std::vector<SignalError>> LayerOutputErrors(const Model& reference, const Model& test,
                                                    const std::vector<Window>& windows, int max_windows,
                                                    const ForwardHooks* test_hooks,
                                                    const std::function<void(float* h, int T, int dim)>& to_test_basis);

// The reference's residual stream after every block on the first windows: h[w][l] = [T_w, dim]
// after block l of window w. What LayerOutputErrors compares against, captured once per session
// instead of once per cell. L·Σ T_w·dim floats (SmolLM2-135M, one window of 512: 35 MB).
struct ReferenceBlockOutputs {
  std::vector<std::vector<std::vector<float>>> h;  // [windows][n_layers][T_w * dim]
  size_t bytes() const;
};
StatusOr<ReferenceBlockOutputs> CaptureBlockOutputs(const Model& reference, const std::vector<Window>& windows,
                                                    int max_windows);

// A cell's evaluation in one forward per window: EvaluateAgainstBaseline's records and, from the
// same forwards of the first ref.h.size() windows, LayerOutputErrors' per-layer errors against the
// captured reference (mapped by to_test_basis when set). Bitwise the same as the two calls.
// final_streams (optional): every window's stream entering the final norm, [windows][T_w * dim], for
// a next cell whose body computes the same (harness/eval/body_reuse.h).
struct CellEvaluation {
  TokenRecords records;
  std::vector<SignalError> layers;  // [n_layers]
  int windows = 0;                  // windows evaluated (fewer than all for adaptive cells)
};
StatusOr<CellEvaluation> EvaluateCell(const Model& model, const std::vector<Window>& windows, const Baseline& base,
                                      const ForwardHooks* hooks, const ReferenceBlockOutputs& ref,
                                      const std::function<void(float* h, int T, int dim)>& to_test_basis,
                                      const ProgressFn& progress = {},
                                      std::vector<std::vector<float>>* final_streams = nullptr);

}  // namespace ql
