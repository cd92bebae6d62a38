// The evaluation step of the cell pipeline with its two savings: prefix reuse (a cell whose model and
// hooks differ from the reference only in blocks >= k starts at block k from the session's
// PrefixStore; bitwise the same numbers) and adaptive evaluation (cells with an AdaptiveSpec stop
// early; their numbers are over the windows they ran). Not the pipeline (cell_pipeline.h).
#pragma once

#include <vector>

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

// The seeded window order of adaptive cells: a Fisher–Yates shuffle of 0..n-1 driven by SplitMix64
// from `seed` (portable, unlike std::shuffle).
std::vector<int> AdaptiveOrder(int n, int64_t seed);

// AdaptiveSpec's stopping rule on the windows run so far (kld_sum[i], tokens[i]) out of n_total.
bool AdaptiveStop(const AdaptiveSpec& a, const std::vector<double>& kld_sum, const std::vector<int64_t>& tokens,
                  int n_total);

// EvaluateAgainstBaseline for the cell (prefix start when allowed, adaptive when the cell says so).
StatusOr<WindowRecords> EvaluateReusingPrefix(const Session& s, const Model& work, const CellPlan& p,
                                     const AlgorithmRuntime& runtime, const ForwardHooks& hooks);

// LayerOutputErrors for the cell, from the prefix when allowed.
StatusOr<std::vector<SignalError>> CellLayerErrors(const Session& s, const Model& work, const CellPlan& p,
                                                   const AlgorithmRuntime& runtime, const ForwardHooks& hooks);

}  // namespace ql
