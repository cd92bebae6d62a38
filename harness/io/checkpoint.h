// What a checkpoint file holds as stored (names, shapes, dtypes, bytes), filled by every reader for
// `quantlab inspect`. Not the weights themselves: those land in Model::weights as float32.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ql::io {

struct StoredTensorInfo {
  std::string stored_name;      // name in the file ("blk.0.attn_q.weight", "wq[3]" for llama2.c)
  std::string model_name;       // Hugging Face name in Model::weights ("" if not loaded)
  std::vector<int64_t> shape;   // PyTorch order, outermost first
  std::string dtype;            // as stored: "F32", "BF16", "Q4_K", ...
  uint64_t bytes = 0;           // bytes the tensor occupies in the file
};

struct CheckpointInfo {
  std::string format;           // "safetensors", "gguf v3", "llama2.c v0", "llama2.c v1"
  std::vector<std::string> files;
  std::vector<StoredTensorInfo> tensors;
  std::map<std::string, std::string> metadata;  // selected header fields, printable
};

}  // namespace ql::io
