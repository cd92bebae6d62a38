// AWQ (Lin et al. 2023; docs/algorithms.md §2): per-input-channel scales searched on calibration activations
// and folded into the preceding norm / linear, then a weight-clipping search, then round-to-nearest
// with the cell's scheme. Not a rounding rule of its own.
#pragma once

#include <vector>

#include "harness/model/model.h"
#include "harness/quant/algorithm.h"

namespace ql {

// One decoder layer's pieces as AWQ's loss needs them: the attention block output (o_proj applied)
// for normed inputs x ([n_seq * seqlen, dim], windows of seqlen tokens at positions 0..seqlen-1),
// with the layer's current weights from `model`, except the overrides given (weight name → data).
std::vector<float> AttentionBlockOutput(const Model& model, int layer, const std::vector<float>& x, int seqlen,
                                        const std::map<std::string, const std::vector<float>*>& overrides);
// The MLP block output down(silu(gate x) ⊙ up x) for x: [n, dim].
std::vector<float> MlpBlockOutput(const Model& model, int layer, const std::vector<float>& x,
                                  const std::map<std::string, const std::vector<float>*>& overrides);

AlgorithmInfo AwqAlgorithm();

}  // namespace ql
