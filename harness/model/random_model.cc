// Deterministic random-weight models (see random_model.h) and two named real-model shapes.
#include "harness/model/random_model.h"

#include <cmath>
#include <string>

#include "harness/util/hash.h"

namespace ql {
namespace {

// Uniform on [center - half_width, center + half_width): std = half_width / sqrt(3).
void FillUniform(std::vector<float>& v, uint64_t stream, float center, float half_width) {
  for (size_t i = 0; i < v.size(); ++i) {
    const double u = double(SplitMix64(stream + i) >> 11) * 0x1.0p-53;  // [0, 1)
    v[i] = float(center + half_width * (2.0 * u - 1.0));
  }
}

}  // namespace

Model RandomModel(const ModelConfig& config, uint64_t seed) {
  const Status st = config.Validate();
  QL_CHECK(st.ok(), "{}", st.message());
  Model m;
  m.config = config;
  m.source_path = "random:" + std::to_string(seed);
  const float sqrt3 = std::sqrt(3.0f);
  for (const auto& [name, shape] : m.ExpectedTensors()) {
    Tensor t;
    t.shape = shape;
    t.data.resize(size_t(t.numel()));
    const uint64_t stream = SplitMix64(seed ^ Fnv1a64(name)) * 0x9E3779B97F4A7C15ull;
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      FillUniform(t.data, stream, 1.0f, 0.1f);
    } else if (is_bias) {
      FillUniform(t.data, stream, 0.0f, 0.1f * sqrt3);
    } else if (name == "model.embed_tokens.weight" || name == "lm_head.weight") {
      FillUniform(t.data, stream, 0.0f, sqrt3 / std::sqrt(float(config.dim)));
    } else {  // linear [out, in]
      FillUniform(t.data, stream, 0.0f, sqrt3 / std::sqrt(float(shape[1])));
    }
    m.weights.emplace(name, std::move(t));
  }
  return m;
}

ModelConfig SmolLM2_135MConfig() {
  ModelConfig c;
  c.arch = "llama";
  c.dim = 576;
  c.hidden_dim = 1536;
  c.n_layers = 30;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  c.head_dim = 64;
  c.vocab_size = 49152;
  c.max_seq_len = 8192;
  c.rope_theta = 100000.0f;
  c.norm_eps = 1e-5f;
  c.rope_interleaved = false;
  c.tied_embeddings = true;
  c.bos_id = 0;  // <|endoftext|> serves as BOS and EOS in SmolLM2's config.json
  c.eos_id = 0;
  return c;
}

ModelConfig Stories260KConfig() {
  ModelConfig c;
  c.arch = "llama";
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  c.max_seq_len = 512;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.rope_interleaved = true;
  c.tied_embeddings = true;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

}  // namespace ql
