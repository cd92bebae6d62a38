// Models of any shape with deterministic pseudo-random weights, for tests and benchmarks of the
// forward pass and of quantization code. Not trained: outputs are meaningless, only shapes are real.
#pragma once

#include <cstdint>

#include "harness/model/model.h"

namespace ql {

// Every tensor of config's ExpectedTensors(), filled from a counter-based generator (SplitMix64) with
// a fixed seed, so the same (config, seed) gives bit-identical weights on every machine. Values are
// uniform with the standard deviation that keeps activations of order 1:
//   linear weights [out, in]: std 1/sqrt(in);  embeddings: std 1/sqrt(dim) (logits of order 1 when tied);
//   norm weights: 1 + U(-0.1, 0.1);  biases: std 0.1.
// QL_CHECKs that config.Validate() passes.
Model RandomModel(const ModelConfig& config, uint64_t seed);

// The shape of HuggingFaceTB/SmolLM2-135M (docs/formats.md §5.2): dim 576, 30 layers, 9 heads, 3 KV heads,
// head_dim 64, FFN 1536, vocab 49152, tied embeddings, theta 1e5, eps 1e-5, rotate-half RoPE.
ModelConfig SmolLM2_135MConfig();
// The shape of llama2.c's stories260K (docs/formats.md §5.3): dim 64, 5 layers, 8 heads, 4 KV heads, FFN 172,
// vocab 512, seq 512, tied, theta 1e4, eps 1e-5, interleaved RoPE.
ModelConfig Stories260KConfig();

}  // namespace ql
