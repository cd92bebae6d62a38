// Model config checks, the expected weight table, and tensor accessors.
#include "harness/model/model.h"

#include <cmath>

namespace ql {

std::string LayerPrefix(int layer) { return fmt::format("model.layers.{}.", layer); }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Status ModelConfig::Validate() const {
  auto bad = [](const char* field, int64_t v, const char* need) {
    return Status::Errorf("model config: {} = {} is invalid ({})", field, v, need);
  };
  if (dim <= 0) return bad("dim", dim, "must be > 0");
  if (hidden_dim <= 0) return bad("hidden_dim", hidden_dim, "must be > 0");
  if (n_layers <= 0) return bad("n_layers", n_layers, "must be > 0");
  if (n_heads <= 0) return bad("n_heads", n_heads, "must be > 0");
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0)
    return bad("n_kv_heads", n_kv_heads, "must be > 0 and divide n_heads");
  if (head_dim <= 0 || head_dim % 2 != 0) return bad("head_dim", head_dim, "must be even and > 0");
  if (vocab_size <= 0) return bad("vocab_size", vocab_size, "must be > 0");
  if (!(rope_theta > 0)) return Status::Errorf("model config: rope_theta = {} must be > 0", rope_theta);
  if (!(norm_eps > 0)) return Status::Errorf("model config: norm_eps = {} must be > 0", norm_eps);
  return Status::Ok();
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Model::ExpectedTensors() const {
  const ModelConfig& c = config;
  const int64_t D = c.dim, F = c.hidden_dim, V = c.vocab_size, hd = c.head_dim;
  const int64_t q_out = int64_t(c.n_heads) * hd, kv_out = int64_t(c.n_kv_heads) * hd;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  t.push_back({"model.embed_tokens.weight", {V, D}});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = LayerPrefix(l);
    t.push_back({p + "input_layernorm.weight", {D}});
    t.push_back({p + "self_attn.q_proj.weight", {q_out, D}});
    t.push_back({p + "self_attn.k_proj.weight", {kv_out, D}});
    t.push_back({p + "self_attn.v_proj.weight", {kv_out, D}});
    if (c.qkv_bias) {
      t.push_back({p + "self_attn.q_proj.bias", {q_out}});
      t.push_back({p + "self_attn.k_proj.bias", {kv_out}});
      t.push_back({p + "self_attn.v_proj.bias", {kv_out}});
    }
    if (c.qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", {hd}});
      t.push_back({p + "self_attn.k_norm.weight", {hd}});
    }
    t.push_back({p + "self_attn.o_proj.weight", {D, q_out}});
    t.push_back({p + "post_attention_layernorm.weight", {D}});
    t.push_back({p + "mlp.gate_proj.weight", {F, D}});
    t.push_back({p + "mlp.up_proj.weight", {F, D}});
    t.push_back({p + "mlp.down_proj.weight", {D, F}});
  }
  t.push_back({"model.norm.weight", {D}});
  if (!c.tied_embeddings) t.push_back({"lm_head.weight", {V, D}});
  return t;
}

int64_t ModelConfig::ParameterCount() const {
  Model m;
  m.config = *this;
  int64_t n = 0;
  for (const auto& [name, shape] : m.ExpectedTensors()) {
    int64_t k = 1;
    for (int64_t d : shape) k *= d;
    n += k;
  }
  return n;
}

const Tensor& Model::W(const std::string& name) const {
  auto it = weights.find(name);
  QL_CHECK(it != weights.end(), "missing tensor {}", name);
  return it->second;
}
Tensor& Model::W(const std::string& name) {
  auto it = weights.find(name);
  QL_CHECK(it != weights.end(), "missing tensor {}", name);
  return it->second;
}

static std::string ShapeStr(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Status Model::Validate(const std::string& origin) const {
  QL_RETURN_IF_ERROR(config.Validate());
  for (const auto& [name, shape] : ExpectedTensors()) {
    auto it = weights.find(name);
    if (it == weights.end())
      return Status::Errorf("{}: tensor '{}' is missing (expected shape {})", origin, name, ShapeStr(shape));
    if (it->second.shape != shape)
      return Status::Errorf("{}: tensor '{}' has shape {}, the config needs {}", origin, name,
                            ShapeStr(it->second.shape), ShapeStr(shape));
    if (int64_t(it->second.data.size()) != it->second.numel())
      return Status::Errorf("{}: tensor '{}' holds {} values for shape {}", origin, name,
                            it->second.data.size(), ShapeStr(shape));
    for (size_t i = 0; i < it->second.data.size(); ++i) {
      if (!std::isfinite(it->second.data[i]))
        return Status::Errorf("{}: tensor '{}' has a non-finite value ({}) at flat index {}", origin, name,
                              it->second.data[i], i);
    }
  }
  return Status::Ok();
}

std::vector<std::string> Model::LinearModules() const {
  std::vector<std::string> m;
  for (int l = 0; l < config.n_layers; ++l) {
    const std::string p = LayerPrefix(l);
    for (const char* s : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      m.push_back(p + s);
  }
  m.push_back("lm_head");
  return m;
}

}  // namespace ql
