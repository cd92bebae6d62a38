// Quantized GGUF export: a loaded model written as a GGUF file llama.cpp loads, each 2-D weight in the ggml
// type a caller picks (any GGUF BlockCodec, F32, F16, BF16), 1-D tensors in F32 as llama.cpp keeps them.
// The blocks are quantlab's codecs, byte-identical with llama-quantize on the same F32 input (docs/gguf.md).
// Not the choice of types (a scheme, or harness/quant/llama_mixes.h), not the reader (harness/io/gguf.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "harness/io/gguf.h"
#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::io {

// Type of one weight: hf_name is the Hugging Face tensor name ("model.layers.0.mlp.down_proj.weight"),
// [rows, cols] its shape. Returns a scheme string: a GGUF codec name ("q4_k", "iq4_nl", ...), "f32",
// "fp16" or "bf16" (anything else is refused, naming the tensor).
using GgufTypeChooser =
    std::function<StatusOr<std::string>(const std::string& hf_name, int64_t rows, int64_t cols)>;

struct GgufExportOptions {
  GgufTypeChooser type_of;
  uint32_t file_type = 0;            // general.file_type (llama_ftype), e.g. 15 for Q4_K_M
  const GgufFile* source = nullptr;  // a GGUF the model came from: its metadata is carried over verbatim
                                     // (general.file_type replaced, general.quantization_version set)
  // Per-column importances by GGUF weight name ("blk.0.ffn_down.weight" -> [cols]), as llama-quantize
  // --imatrix passes them to ggml: a weight with an entry is quantized with ggml's importance-weighted rule
  // (types without one ignore it, as ggml does), a weight without one as usual.
  const std::map<std::string, std::vector<float>>* importance = nullptr;
  // When set: the values every tensor must decode to, bit for bit (same tensors as the model written, same
  // layout). A tensor whose blocks dequantize to anything else is refused, listing the tensors: `export
  // --cell` uses it so the file holds exactly the weights the cell evaluated.
  const Model* expect = nullptr;
  // Metadata set after the rest (replacing a key of the same name), e.g. llama-quantize's quantize.imatrix.*.
  std::vector<std::pair<std::string, GgufValue>> extra_kv;
};

// The ggml type id of an export scheme string ("q4_k" -> 12, "f32" -> 0, "fp16"/"f16" -> 1, "bf16" -> 30),
// or -1 when the scheme has no GGUF weight type (q8_k included: llama.cpp cannot multiply Q8_K weights).
int GgufTypeOfScheme(const std::string& scheme);

// Writes `model` to `path`. Every 2-D weight's type is checked first: schemes without a GGUF type and
// rows that are not whole blocks of their type are refused in one error that lists all offending tensors.
Status ExportGguf(const std::string& path, const Model& model, const GgufExportOptions& opt);

}  // namespace ql::io
