// Hugging Face directory reader/writer (see hf.h). config.json fields per docs/formats.md §5.2.
#include "harness/io/hf.h"

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "harness/io/declared_sizes.h"
#include "harness/io/rope_layout.h"
#include "harness/io/safetensors.h"
#include "harness/tokenizer/byte_bpe.h"

namespace ql::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct ArchDefaults {
  const char* model_type;
  const char* architecture;  // "architectures" entry the transformers class uses
  int max_position_embeddings;
};
constexpr ArchDefaults kArchs[] = {
    {"llama", "LlamaForCausalLM", 2048},
    {"qwen2", "Qwen2ForCausalLM", 32768},
    {"qwen3", "Qwen3ForCausalLM", 32768},
};

class Fields {
 public:
  Fields(const json& j, const std::string& origin) : j_(j), origin_(origin) {}
  bool Has(const char* k) const { return j_.contains(k) && !j_[k].is_null(); }
  StatusOr<int> Int(const char* k, std::optional<int> def = std::nullopt) const {
    if (!Has(k)) {
      if (def) return *def;
      return Status::Errorf("{}: required field '{}' is missing", origin_, k);
    }
    const json& v = j_[k];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      return Status::Errorf("{}: field '{}' must be a non-negative integer (got {})", origin_, k, v.dump());
    return int(v.get<int64_t>());
  }
  StatusOr<double> Num(const json& obj, const char* k, double def) const {
    if (!obj.contains(k) || obj[k].is_null()) return def;
    if (!obj[k].is_number()) return Status::Errorf("{}: field '{}' must be a number (got {})", origin_, k, obj[k].dump());
    return obj[k].get<double>();
  }
  StatusOr<bool> Bool(const char* k, bool def) const {
    if (!Has(k)) return def;
    if (!j_[k].is_boolean()) return Status::Errorf("{}: field '{}' must be true or false (got {})", origin_, k,
                                                   j_[k].dump());
    return j_[k].get<bool>();
  }
  // bos/eos may be an integer, a list of integers (first one used) or null.
  StatusOr<int> TokenId(const char* k, int def) const {
    if (!Has(k)) return def;
    json v = j_[k];
    if (v.is_array() && !v.empty()) v = v[0];
    if (!v.is_number_integer()) return Status::Errorf("{}: field '{}' must be a token id (got {})", origin_, k,
                                                      j_[k].dump());
    return int(v.get<int64_t>());
  }

 private:
  const json& j_;
  const std::string& origin_;
};

Status CheckRopeType(const json& obj, const std::string& origin, const char* field) {
  if (!obj.is_object()) return Status::Errorf("{}: '{}' must be an object", origin, field);
  for (const char* k : {"rope_type", "type"}) {
    if (obj.contains(k) && obj[k].is_string() && obj[k].get<std::string>() != "default")
      return Status::Errorf("{}: {}.{} = '{}' (RoPE scaling) is not supported; only default RoPE", origin, field, k,
                            obj[k].get<std::string>());
  }
  return Status::Ok();
}

const DeclaredKeys kHfKeys{"num_hidden_layers", "hidden_size", "num_attention_heads"};

}  // namespace

StatusOr<ModelConfig> ParseHfConfig(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return Status::Errorf("{}: not valid JSON: {}", origin, e.what());
  }
  if (!j.is_object()) return Status::Errorf("{}: config.json must be a JSON object", origin);
  Fields f(j, origin);
  if (!j.contains("model_type") || !j["model_type"].is_string())
    return Status::Errorf("{}: field 'model_type' is missing (llama, qwen2 or qwen3 expected)", origin);
  ModelConfig c;
  c.arch = j["model_type"].get<std::string>();
  const ArchDefaults* arch = nullptr;
  for (const ArchDefaults& a : kArchs)
    if (c.arch == a.model_type) arch = &a;
  if (!arch) return Status::Errorf("{}: model_type '{}' is not supported (llama, qwen2, qwen3)", origin, c.arch);

  QL_ASSIGN_OR_RETURN(c.dim, f.Int("hidden_size"));
  QL_ASSIGN_OR_RETURN(c.hidden_dim, f.Int("intermediate_size"));
  QL_ASSIGN_OR_RETURN(c.n_layers, f.Int("num_hidden_layers"));
  QL_ASSIGN_OR_RETURN(c.n_heads, f.Int("num_attention_heads"));
  QL_ASSIGN_OR_RETURN(c.n_kv_heads, f.Int("num_key_value_heads", c.n_heads));
  QL_RETURN_IF_ERROR(CheckDeclaredWidth(c.dim, c.n_heads, origin, kHfKeys));
  QL_ASSIGN_OR_RETURN(c.head_dim, f.Int("head_dim", c.dim / c.n_heads));
  QL_ASSIGN_OR_RETURN(c.vocab_size, f.Int("vocab_size"));
  QL_ASSIGN_OR_RETURN(c.max_seq_len, f.Int("max_position_embeddings", arch->max_position_embeddings));
  if (c.max_seq_len == 0) return Status::Errorf("{}: max_position_embeddings = 0 must be > 0", origin);
  // rope_theta: top-level (transformers < 4.56) or inside rope_parameters (newer); docs/formats.md §5.2.
  double theta = 10000.0;
  if (f.Has("rope_parameters")) {
    QL_RETURN_IF_ERROR(CheckRopeType(j["rope_parameters"], origin, "rope_parameters"));
    QL_ASSIGN_OR_RETURN(theta, f.Num(j["rope_parameters"], "rope_theta", theta));
  }
  QL_ASSIGN_OR_RETURN(theta, f.Num(j, "rope_theta", theta));
  if (f.Has("rope_scaling")) QL_RETURN_IF_ERROR(CheckRopeType(j["rope_scaling"], origin, "rope_scaling"));
  c.rope_theta = float(theta);
  QL_ASSIGN_OR_RETURN(double eps, f.Num(j, "rms_norm_eps", 1e-6));
  c.norm_eps = float(eps);
  QL_ASSIGN_OR_RETURN(c.tied_embeddings, f.Bool("tie_word_embeddings", false));
  c.rope_interleaved = false;  // HF rotate_half
  QL_ASSIGN_OR_RETURN(bool attention_bias, f.Bool("attention_bias", false));
  QL_ASSIGN_OR_RETURN(bool mlp_bias, f.Bool("mlp_bias", false));
  if (mlp_bias) return Status::Errorf("{}: mlp_bias = true is not supported", origin);
  if (c.arch == "qwen2") {
    c.qkv_bias = true;  // Qwen2Attention hard-codes bias on q/k/v (not o)
  } else if (attention_bias) {
    return Status::Errorf("{}: attention_bias = true ({} puts a bias on o_proj too) is not supported", origin, c.arch);
  }
  c.qk_norm = c.arch == "qwen3";
  QL_ASSIGN_OR_RETURN(bool sliding, f.Bool("use_sliding_window", false));
  if (sliding) return Status::Errorf("{}: use_sliding_window = true is not supported", origin);
  if (f.Has("hidden_act") && j["hidden_act"] != "silu")
    return Status::Errorf("{}: hidden_act {} is not supported (silu only)", origin, j["hidden_act"].dump());
  QL_ASSIGN_OR_RETURN(c.bos_id, f.TokenId("bos_token_id", 1));
  QL_ASSIGN_OR_RETURN(c.eos_id, f.TokenId("eos_token_id", 2));
  Status st = c.Validate();
  if (!st.ok()) return Status::Errorf("{}: {}", origin, st.message());
  return c;
}

std::string HfConfigJson(const ModelConfig& c, FloatDtype dtype) {
  const ArchDefaults* arch = &kArchs[0];
  for (const ArchDefaults& a : kArchs)
    if (c.arch == a.model_type) arch = &a;
  json j = {
      {"architectures", {arch->architecture}},
      {"model_type", c.arch},
      {"hidden_size", c.dim},
      {"intermediate_size", c.hidden_dim},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_seq_len},
      {"rope_theta", c.rope_theta},
      {"rms_norm_eps", c.norm_eps},
      {"tie_word_embeddings", c.tied_embeddings},
      {"hidden_act", "silu"},
      {"attention_bias", c.arch == "qwen2"},
      {"mlp_bias", false},
      {"bos_token_id", c.bos_id},
      {"eos_token_id", c.eos_id},
      {"torch_dtype", dtype == FloatDtype::kF32 ? "float32" : dtype == FloatDtype::kF16 ? "float16" : "bfloat16"},
  };
  if (c.arch == "qwen2") j["use_sliding_window"] = false;
  return j.dump(2) + "\n";
}

StatusOr<Model> ReadHfDir(const std::string& dir, CheckpointInfo* info) {
  const fs::path d(dir);
  const std::string config_path = (d / "config.json").string();
  QL_ASSIGN_OR_RETURN(std::string text, ReadTextFile(config_path));
  Model m;
  m.source_path = dir;
  QL_ASSIGN_OR_RETURN(m.config, ParseHfConfig(text, config_path));
  if (info) {
    info->format = "safetensors";
    info->files.push_back(config_path);
  }
  std::map<std::string, Tensor> tensors;
  if (fs::exists(d / "model.safetensors.index.json")) {
    QL_ASSIGN_OR_RETURN(tensors, ReadSafetensorsIndex((d / "model.safetensors.index.json").string(), info));
  } else if (fs::exists(d / "model.safetensors")) {
    QL_ASSIGN_OR_RETURN(tensors, ReadSafetensors((d / "model.safetensors").string(), nullptr, info));
  } else {
    return Status::Errorf("{}: neither model.safetensors nor model.safetensors.index.json exists (.bin/.pt "
                          "checkpoints are not supported; convert to safetensors)",
                          dir);
  }
  QL_RETURN_IF_ERROR(CheckDeclaredSizes(m.config, tensors, dir, kHfKeys));  // before sizing by n_layers
  std::set<std::string> expected;
  for (const auto& [name, shape] : m.ExpectedTensors()) expected.insert(name);
  for (auto& [name, t] : tensors) {
    if (name.ends_with("rotary_emb.inv_freq")) continue;  // a buffer older exports saved; recomputed
    if (name == "lm_head.weight" && m.config.tied_embeddings) continue;  // HF ties it to the embedding
    if (!expected.count(name))
      return Status::Errorf("{}: tensor '{}' is not part of the {} model config.json describes (wrong config, or an "
                            "unsupported variant)",
                            dir, name, m.config.arch);
    m.weights.emplace(name, std::move(t));
  }
  if (fs::exists(d / "tokenizer.json")) {
    QL_ASSIGN_OR_RETURN(auto tok, LoadTokenizerJson((d / "tokenizer.json").string()));
    if (tok->vocab_size() > m.config.vocab_size)
      return Status::Errorf("{}: tokenizer.json has {} tokens but the model's vocab_size is {}", dir,
                            tok->vocab_size(), m.config.vocab_size);
    m.tokenizer = std::shared_ptr<const Tokenizer>(std::move(tok));
    if (info) info->files.push_back((d / "tokenizer.json").string());
  }
  QL_RETURN_IF_ERROR(m.Validate(dir));
  return m;
}

Status WriteHfDir(const std::string& dir, const Model& model, FloatDtype dtype, uint64_t max_shard_bytes) {
  QL_RETURN_IF_ERROR(model.Validate(dir));
  bool known = false;
  for (const ArchDefaults& a : kArchs) known |= model.config.arch == a.model_type;
  if (!known) return Status::Errorf("{}: cannot write architecture '{}' as a HF checkpoint", dir, model.config.arch);
  // transformers derives these from model_type; a model that differs cannot be described by config.json.
  const ModelConfig& c = model.config;
  if (c.qkv_bias != (c.arch == "qwen2") || c.qk_norm != (c.arch == "qwen3"))
    return Status::Errorf("{}: a {} model with qkv_bias={} qk_norm={} has no Hugging Face config (llama: neither, "
                          "qwen2: q/k/v bias, qwen3: q/k norm)",
                          dir, c.arch, c.qkv_bias, c.qk_norm);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Errorf("{}: cannot create directory ({})", dir, ec.message());
  const Model* src = &model;
  Model converted;
  if (model.config.rope_interleaved) {  // HF rotates halves
    converted = model;
    SetRopeLayout(&converted, false);
    src = &converted;
  }
  QL_RETURN_IF_ERROR(WriteTextFile((fs::path(dir) / "config.json").string(), HfConfigJson(src->config, dtype)));
  if (const auto* bpe = dynamic_cast<const ByteBpeTokenizer*>(model.tokenizer.get()))
    QL_RETURN_IF_ERROR(bpe->SaveTokenizerJson((fs::path(dir) / "tokenizer.json").string()));
  if (max_shard_bytes > 0) return WriteSafetensorsSharded(dir, src->weights, dtype, max_shard_bytes);
  return WriteSafetensors((fs::path(dir) / "model.safetensors").string(), src->weights, dtype,
                          {{"format", "pt"}});
}

}  // namespace ql::io
