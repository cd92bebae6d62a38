// Hugging Face checkpoint directories (docs/formats.md §5.1, §5.2): config.json + model.safetensors (or a sharded
// model.safetensors.index.json) [+ tokenizer.json] <-> Model. Llama, Qwen2, Qwen3 only; HF stores q/k in
// the rotate-half RoPE layout (rope_interleaved = false).
#pragma once

#include <string>

#include "harness/io/checkpoint.h"
#include "harness/io/file_io.h"
#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql::io {

// config.json text -> ModelConfig (model_type llama/qwen2/qwen3; rope_theta top-level or in
// rope_parameters; head_dim explicit or hidden/heads; qwen2 => q/k/v bias; qwen3 => q/k norm).
// Unsupported features (rope scaling, attention/mlp bias on llama/qwen3, sliding window, non-silu
// activation) are errors naming the field. `origin` names the file in messages.
StatusOr<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& origin);
// ModelConfig -> config.json text (architectures, model_type, and every field ParseHfConfig reads).
std::string HfConfigJson(const ModelConfig& config, FloatDtype dtype);

// tokenizer.json, if present, becomes a ByteBpeTokenizer (byte-level BPE only).
StatusOr<Model> ReadHfDir(const std::string& dir, CheckpointInfo* info = nullptr);

// Writes dir/config.json and dir/model.safetensors (or shards of at most max_shard_bytes plus the
// index when max_shard_bytes > 0). qkv_bias/qk_norm must match the arch (qwen2 / qwen3). q/k are
// converted to the rotate-half layout if needed. A byte-level BPE tokenizer is saved as tokenizer.json;
// a SentencePiece-style one has no tokenizer.json form and is not written.
Status WriteHfDir(const std::string& dir, const Model& model, FloatDtype dtype, uint64_t max_shard_bytes = 0);

}  // namespace ql::io
