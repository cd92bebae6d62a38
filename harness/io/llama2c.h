// llama2.c checkpoints (docs/formats.md §5.3): the legacy v0 layout (7 x int32 header) and v1 ("ak42", 256-byte
// header, fp32). Reads into Model (rope_interleaved = true, eps 1e-5, theta 10000, as run.c hard-codes);
// writes v0 (and v1) fp32. Not the int8 v2 format.
#pragma once

#include <string>

#include "harness/io/checkpoint.h"
#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::io {

// tokenizer_path: explicit tokenizer.bin; "" = look beside the model for tokenizer.bin, then
// tok<vocab_size>.bin, and leave Model::tokenizer null if neither exists.
StatusOr<Model> ReadLlama2c(const std::string& path, const std::string& tokenizer_path = "",
                            CheckpointInfo* info = nullptr);

// version 0: header vocab_size < 0 marks an unshared classifier, RoPE tables (cos, sin) are written
// after the final norm. version 1: "ak42" header with a shared_classifier byte, v1 tensor order.
// Needs arch llama without q/k/v bias or q/k norm and head_dim = dim / n_heads; q/k are stored in the
// adjacent-pair layout llama2.c uses, converted from rotate-half if the model is in that layout.
Status WriteLlama2c(const std::string& path, const Model& model, int version = 0);

}  // namespace ql::io
