// Importance matrices: llama.cpp's imatrix statistic collected with quantlab's forward hooks (per linear,
// per input column, Σ x² over the calibration tokens and the token count, accumulated in float in token
// order as llama-imatrix does), the chunking of a text as llama-imatrix -c/--chunks does it, and the
// algorithm `imatrix` (GGUF block types quantized with per-column importances, as ggml's quant_weights).
// Not the file layouts (harness/io/imatrix.h). docs/gguf.md has the definitions.
#pragma once

#include <string>
#include <vector>

#include "harness/io/imatrix.h"
#include "harness/model/model.h"
#include "harness/quant/algorithm.h"
#include "kernels/status.h"

namespace ql {

// llama-imatrix's chunks of a text: the text is tokenized with BOS when the vocabulary adds one, cut into
// floor(n / ctx) chunks of ctx tokens (at most `chunks`, < 0: all), and each chunk's first token is replaced
// by BOS when the vocabulary adds one. Needs at least 2 · ctx tokens, as llama-imatrix does.
StatusOr<std::vector<std::vector<int>>> ImatrixChunks(const Model& model, const std::string& text,
                                                      const std::string& source, int ctx, int chunks);

struct ImatrixCollectOptions {
  // Also collect lm_head's input, stored as "output.weight" (llama-imatrix --process-output). A tied head
  // is never collected (llama.cpp multiplies by token_embd.weight, which it does not collect).
  bool process_output = false;
  // Collect every listed module path instead (and nothing else); lm_head allowed, tied or not.
  std::vector<std::string> modules;
  int chunk_size = 0;                 // written as imatrix.chunk_size (the ctx of the chunks)
  std::vector<std::string> datasets;  // written as imatrix.datasets
  // Accumulate on top of this one (merged --in-file matrices, harness/io/imatrix.h MergeImatrix), as
  // llama-imatrix does with --in-file and a text: its sums and counts continue, its datasets come first.
  const io::Imatrix* start = nullptr;
};

// Runs every window through the forward pass and accumulates, for each linear (GGUF weight name
// "blk.<i>.<kind>.weight"), sums[j] += x_j² in float over every token of every window in order, and
// counts += tokens. Windows of fewer than 16 tokens are skipped, as llama-imatrix skips batches that small.
StatusOr<io::Imatrix> CollectImatrix(const Model& model, const std::vector<std::vector<int>>& windows,
                                     const ImatrixCollectOptions& opt);

// The GGUF weight name a module's importance is stored under ("model.layers.0.mlp.down_proj" ->
// "blk.0.ffn_down.weight", "lm_head" -> "output.weight").
std::string ImatrixName(const std::string& module);

// The importance matrix of an `imatrix` cell: its params' file (params file=), or collected from the
// calibration windows over the cell's modules. The algorithm and `quantlab export --cell` both use it.
StatusOr<io::Imatrix> CellImatrix(const Model& model, const AlgorithmContext& ctx);

// The algorithm `imatrix` (registry entry; params file = an imatrix file to load, "" = collect from the
// cell's calibration windows).
AlgorithmInfo ImatrixAlgorithm();

}  // namespace ql
