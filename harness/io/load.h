// One entry point for every checkpoint kind: LoadModel(path) detects the format and returns a validated
// Model (shapes and finiteness checked by Model::Validate). Not a writer; see gguf.h, hf.h, llama2c.h.
#pragma once

#include <string>

#include "harness/io/checkpoint.h"
#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql {

// Detection: a directory with config.json (or a *.safetensors file beside one) -> Hugging Face;
// a file starting with "GGUF" or named *.gguf -> GGUF; "ak42" magic or *.bin -> llama2.c.
// info (optional) receives what the file stores, for `quantlab inspect`.
StatusOr<Model> LoadModel(const std::string& path, io::CheckpointInfo* info = nullptr);

}  // namespace ql
