// llama.cpp's quantization mixes (llama-quantize's Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K, Q8_0,
// IQ4_NL, IQ4_XS): which GGUF type each weight gets, by tensor kind, layer, grouped-query ratio and row
// length, as llama.cpp's llama-quant.cpp chooses them for dense Llama-family models (docs/gguf.md).
// Not the quantization itself (kernels/gguf_blocks.h), not MoE / Falcon / 70B special cases.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql {

// The scheme (a GGUF codec name such as "q4_k", or "fp16" when no block fits the row) of one weight under
// llama.cpp mix `mix` (case-insensitive, e.g. "Q4_K_M"). module_path is quantlab's (Hugging Face) module
// name: "model.layers.3.self_attn.v_proj", "model.layers.7.mlp.down_proj", "lm_head",
// "model.embed_tokens" (an optional ".weight" suffix is accepted). rows × cols is the weight's shape
// ([out, in]; the row length is cols, the dimension ggml's blocks run along). has_imatrix: llama.cpp
// picks differently for IQ4_NL/IQ4_XS when an importance matrix is given.
StatusOr<std::string> LlamaMixScheme(std::string_view mix, const ModelConfig& cfg, std::string_view module_path,
                                     int64_t rows, int64_t cols, bool has_imatrix = false);

// The mix names, in llama-quantize's spelling ("Q2_K", "Q3_K_S", ...).
std::vector<std::string_view> LlamaMixNames();

// The default GGUF type of a mix ("Q3_K_M" -> "q3_k"), or "" for an unknown name.
std::string LlamaMixBaseType(std::string_view mix);

// llama_ftype of a mix (GGUF general.file_type, e.g. Q4_K_M -> 15), or -1 for an unknown name.
int LlamaMixFileType(std::string_view mix);

// llama_ftype for a file whose quantized weights are all of one ggml type (e.g. q4_k -> 15 "Q4_K_M",
// llama.cpp's default for that type), or -1 when llama.cpp has no such file type.
int LlamaFileTypeOfCodec(std::string_view codec_name);

}  // namespace ql
