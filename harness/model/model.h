// The reference Llama-family model as data: its config and one table of every weight, keyed by a
// stable Hugging Face-style name ("model.layers.3.mlp.down_proj.weight"). Loading, quantization and
// layer targeting all walk this one table. The forward pass lives in harness/model/forward.h.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/status.h"

namespace ql {

class Tokenizer;

struct ModelConfig {
  std::string arch = "llama";   // "llama", "qwen2", "qwen3" (model_type / general.architecture)
  int dim = 0;                  // hidden size
  int hidden_dim = 0;           // MLP intermediate size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;           // grouped-query attention: n_heads % n_kv_heads == 0
  int head_dim = 0;             // usually dim / n_heads; Qwen3 sets it explicitly
  int vocab_size = 0;
  int max_seq_len = 0;          // context length the model was trained at
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  // RoPE pairing: true = adjacent pairs (2i, 2i+1) as llama2.c and GGUF llama store q/k;
  // false = rotate-half pairs (i, i + head_dim/2) as Hugging Face checkpoints do.
  bool rope_interleaved = false;
  bool tied_embeddings = false; // lm_head shares model.embed_tokens.weight
  bool qkv_bias = false;        // Qwen2: q/k/v projections carry a bias
  bool qk_norm = false;         // Qwen3: per-head RMSNorm on q and k before RoPE
  int bos_id = 1, eos_id = 2;

  int64_t ParameterCount() const;  // counted from the config alone (tied head counted once)
  Status Validate() const;         // consistent shapes; message names the offending field
};

// A dense float32 tensor, row-major. Linear weights are [out_features, in_features] as in PyTorch.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  int64_t cols() const { return shape.size() < 2 ? (shape.empty() ? 1 : shape[0]) : numel() / shape[0]; }
};

// Arithmetic of the forward pass's matrix products (every linear and both attention products).
enum class MatmulPrecision {
  kFp32,  // FP32 inputs, one FP32 fused multiply-add chain per output (kernels/gemm.h)
  kBf16,  // inputs (weights, activations, Q, K, P, V) rounded to BF16, products exact, FP32 sums:
          // what BF16 deployments compute (kernels/gemm_bf16.h, VDPBF16PS)
};

// Names, in Hugging Face form. Module path = tensor name without ".weight"/".bias".
//   model.embed_tokens.weight                      [vocab, dim]
//   model.layers.{i}.input_layernorm.weight        [dim]
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   q [H*hd, dim], k/v [KV*hd, dim], o [dim, H*hd]
//   model.layers.{i}.self_attn.{q,k,v}_proj.bias   (qkv_bias)
//   model.layers.{i}.self_attn.{q,k}_norm.weight   [hd] (qk_norm)
//   model.layers.{i}.post_attention_layernorm.weight [dim]
//   model.layers.{i}.mlp.{gate,up}_proj.weight     [hidden, dim];  mlp.down_proj.weight [dim, hidden]
//   model.norm.weight                              [dim]
//   lm_head.weight                                 [vocab, dim]  (absent when tied_embeddings)
struct Model {
  ModelConfig config;
  std::map<std::string, Tensor> weights;
  std::shared_ptr<const Tokenizer> tokenizer;  // may be null for weight-only files
  std::string source_path;                     // file or directory it was loaded from
  MatmulPrecision matmul = MatmulPrecision::kFp32;  // how ForwardWindow multiplies (not the storage)

  const Tensor& W(const std::string& name) const;  // QL_CHECKs that the tensor exists
  Tensor& W(const std::string& name);
  bool Has(const std::string& name) const { return weights.count(name) != 0; }
  // Every tensor the config requires, with its expected shape, in a stable order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors() const;
  // Checks presence, shapes and finiteness of every expected tensor; names the first problem.
  Status Validate(const std::string& origin) const;
  // Module paths of all linear layers ("model.layers.0.self_attn.q_proj", ..., "lm_head").
  std::vector<std::string> LinearModules() const;
};

std::string LayerPrefix(int layer);  // "model.layers.{layer}."

}  // namespace ql
