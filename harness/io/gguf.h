// GGUF v3 (v2 accepted) reader/writer (docs/formats.md §4.2): header, every metadata value type incl.
// nested arrays, tensor infos, alignment; llama.cpp tensor names <-> Hugging Face names; config from
// llama.* / qwen2.* / qwen3.* keys; tokenizer from tokenizer.ggml.*. Tensors (F32/F16/BF16 and the ggml block
// types of kernels/gguf_blocks.h) are dequantized to float32 on load; WriteGguf emits F32/F16/BF16 only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/io/checkpoint.h"
#include "harness/io/file_io.h"
#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::io {

enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9,
  kU64 = 10, kI64 = 11, kF64 = 12,
};
std::string_view GgufTypeName(GgufType t);

// One metadata value. Scalars use u (unsigned ints, bool), i (signed ints), f (floats) or s.
struct GgufValue {
  GgufType type = GgufType::kU32;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  GgufType elem = GgufType::kU8;   // arrays: element type
  std::vector<GgufValue> items;    // arrays: elements

  static GgufValue U32(uint32_t v);
  static GgufValue U64(uint64_t v);
  static GgufValue I32(int32_t v);
  static GgufValue F32(float v);
  static GgufValue Bool(bool v);
  static GgufValue Str(std::string v);
  static GgufValue Array(GgufType elem, std::vector<GgufValue> items);

  std::optional<int64_t> AsInt() const;    // any integer type that fits in int64
  std::optional<double> AsFloat() const;   // F32/F64 (and integers)
  std::string ToString(size_t max_items = 8) const;  // for inspect: arrays abbreviated
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;   // ne[0] innermost (reverse of the PyTorch shape)
  uint32_t type = 0;          // ggml type id
  uint64_t offset = 0;        // relative to the start of tensor data
  uint64_t nbytes = 0;
  std::vector<int64_t> TorchShape() const;
};

struct GgufFile {
  std::string path;
  uint32_t version = 0;
  std::vector<std::pair<std::string, GgufValue>> kv;  // file order
  std::vector<GgufTensorInfo> tensors;                // file order
  uint64_t alignment = 32;
  uint64_t data_start = 0;
  const GgufValue* Find(const std::string& key) const;
};

// ggml type name ("f32", "q4_K") or "type<N>" for ids this build does not know.
std::string GgmlTypeName(uint32_t type);

// Parses and checks header, metadata and tensor infos (known type ids, row sizes a multiple of the block,
// aligned offsets, data inside the file, no overlaps).
StatusOr<GgufFile> ReadGgufHeader(const std::string& path);

// Reads one tensor as float32 with the PyTorch shape (dequantizing block types).
StatusOr<Tensor> ReadGgufTensor(const GgufFile& file, FileReader& reader, const GgufTensorInfo& t);

// Full model: config from {arch}.* keys, weights renamed to Hugging Face names, tokenizer from
// tokenizer.ggml.*. rope_interleaved = true for arch llama (llama.cpp's converter permutes q/k to the
// adjacent-pair layout), false for qwen2/qwen3 (NEOX rotate-half). A missing output.weight means tied
// embeddings; an output.weight bitwise equal to token_embd.weight is also treated as tied and dropped
// (stories260K.gguf stores such a copy; llama2.c's own file marks the same model as shared).
StatusOr<Model> ReadGguf(const std::string& path, CheckpointInfo* info = nullptr);

// llama.cpp tensor name <-> Hugging Face name ("blk.3.ffn_down.weight" <-> "model.layers.3.mlp.down_proj.weight").
// Empty string when the name is not part of the Llama/Qwen2/Qwen3 family table.
std::string GgufToHfName(const std::string& gguf_name);
std::string HfToGgufName(const std::string& hf_name);

// Low-level writer: metadata in the given order, tensors laid out in order at `alignment`.
struct GgufTensorBlob {
  std::string name;
  std::vector<uint64_t> ne;     // innermost first
  uint32_t type = 0;
  std::vector<uint8_t> data;
};
Status WriteGgufFile(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv,
                     const std::vector<GgufTensorBlob>& tensors, uint32_t alignment = 32);

// Model -> GGUF v3: 2-D weights in `dtype`, 1-D tensors (norms, biases) in F32 as llama.cpp keeps them;
// full {arch}.* metadata and the tokenizer arrays (SpmBpeTokenizer: tokens/scores/token_type).
// q/k are converted to the layout the architecture implies (adjacent pairs for llama).
Status WriteGguf(const std::string& path, const Model& model, FloatDtype dtype, uint32_t alignment = 32);

// The metadata WriteGguf writes for `model` ({arch}.* config keys, tokenizer arrays), with
// general.file_type = file_type (llama_ftype). `path` only names the file in errors.
StatusOr<std::vector<std::pair<std::string, GgufValue>>> GgufModelMetadata(const std::string& path, const Model& model,
                                                                          uint32_t file_type, uint32_t alignment);

}  // namespace ql::io
