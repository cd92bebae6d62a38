// Converts a model's q/k weights between the two RoPE pairings (ModelConfig::rope_interleaved):
// adjacent pairs (2i, 2i+1) as llama2.c / GGUF llama store them, and rotate-half pairs (i, i + hd/2)
// as Hugging Face does. An exact row permutation, so it is lossless in both directions.
#pragma once

#include "harness/model/model.h"

namespace ql::io {

// Permutes, per head, the rows of q_proj/k_proj weights and biases and the entries of q_norm/k_norm
// so that the model computes the same function with config.rope_interleaved = interleaved.
// Within head h (row block h*hd .. h*hd+hd-1): rotate-half row j*hd/2 + r <-> interleaved row 2r + j,
// r < hd/2, j in {0,1} (the permutation of docs/formats.md §5.3 / transformers' convert_llama_weights_to_hf).
void SetRopeLayout(Model* model, bool interleaved);

}  // namespace ql::io
