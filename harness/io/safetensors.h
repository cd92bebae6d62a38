// safetensors reader/writer (docs/formats.md §5.1): u64 header length | JSON header | byte buffer.
// Reads F32/F16/BF16 tensors into float32 (other dtypes are listed but refuse to load); writes
// F32/F16/BF16 with the header padded by spaces to a multiple of 8. Not a general tensor library.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/io/checkpoint.h"
#include "harness/io/file_io.h"
#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::io {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;               // "F32", "BF16", "F8_E4M3", ...
  std::vector<int64_t> shape;      // PyTorch order
  uint64_t begin = 0, end = 0;     // byte range relative to the start of the data buffer
};

struct SafetensorsHeader {
  std::string path;
  std::vector<SafetensorsEntry> tensors;          // in file order of their offsets
  std::map<std::string, std::string> metadata;    // "__metadata__"
  uint64_t data_start = 0;                        // 8 + header length
  uint64_t file_size = 0;
};

// Bits per element of a safetensors dtype (docs/formats.md §5.1 list), or 0 if the name is unknown.
int SafetensorsDtypeBits(const std::string& dtype);

// Parses and checks the header: length <= 100 MB and inside the file, JSON object starting with '{',
// no duplicate names, known dtypes, byte size = numel * dtype size, offsets tiling the buffer exactly.
StatusOr<SafetensorsHeader> ReadSafetensorsHeader(const std::string& path);

// Loads tensors as float32 (F32 exact, F16/BF16 widened). `only`: if non-null, just these names.
// Appends to *info (if non-null) one StoredTensorInfo per tensor read.
StatusOr<std::map<std::string, Tensor>> ReadSafetensors(const std::string& path,
                                                        const std::vector<std::string>* only = nullptr,
                                                        CheckpointInfo* info = nullptr);

// Sharded checkpoint: model.safetensors.index.json {"weight_map": {tensor: shard file}}; every
// mapped tensor must be in its shard and no tensor may appear twice.
StatusOr<std::map<std::string, Tensor>> ReadSafetensorsIndex(const std::string& index_path,
                                                             CheckpointInfo* info = nullptr);

// Writes tensors (sorted by name) in one dtype; metadata goes to "__metadata__".
Status WriteSafetensors(const std::string& path, const std::map<std::string, Tensor>& tensors, FloatDtype dtype,
                        const std::map<std::string, std::string>& metadata = {});

// Splits tensors over shards of at most max_shard_bytes each and writes
// dir/model-0000i-of-0000n.safetensors plus dir/model.safetensors.index.json.
Status WriteSafetensorsSharded(const std::string& dir, const std::map<std::string, Tensor>& tensors,
                               FloatDtype dtype, uint64_t max_shard_bytes);

}  // namespace ql::io
