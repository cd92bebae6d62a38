// llama.cpp's quantization mixes as data: one table of mixes (name, file type, default type) and one table
// of per-tensor rules, read from llama.cpp's src/llama-quant.cpp (llama_tensor_get_type_impl and
// tensor_type_fallback, llama.cpp as vendored by llama-cpp-python 0.3.36). The first rule that matches a
// (mix, tensor kind) wins, as in llama.cpp's else-if chains.
#include "harness/quant/llama_mixes.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>

#include "kernels/format.h"

namespace ql {
namespace {

struct Mix {
  const char* name;
  int file_type;      // llama_ftype
  const char* base;   // the default type of the mix
};
constexpr Mix kMixes[] = {
    {"Q2_K", 10, "q2_k"},   {"Q3_K_S", 11, "q3_k"}, {"Q3_K_M", 12, "q3_k"},  {"Q3_K_L", 13, "q3_k"},
    {"Q4_K_S", 14, "q4_k"}, {"Q4_K_M", 15, "q4_k"}, {"Q5_K_S", 16, "q5_k"},  {"Q5_K_M", 17, "q5_k"},
    {"Q6_K", 18, "q6_k"},   {"Q8_0", 7, "q8_0"},    {"IQ4_NL", 25, "iq4_nl"}, {"IQ4_XS", 30, "iq4_xs"},
};

// Tensor kinds llama.cpp tells apart (its tensor_category), from quantlab's module names.
enum class Kind { kOutput, kTokenEmbd, kAttnQ, kAttnK, kAttnV, kAttnOutput, kFfnGate, kFfnUp, kFfnDown, kOther };

enum class Cond {
  kAlways,
  kMoreBits,         // use_more_bits(layer, n_layers): first and last eighth and every third in between
  kLayerBelow2,      // layer < 2 (llama.cpp counts attn_v tensors, = the layer for dense models)
  kLayerBelow4,
  kFirstEighth,      // layer < n_layers / 8
  kFirstSixteenth,   // layer < n_layers / 16
  kGqa4,             // n_heads / n_kv_heads >= 4
  kFirstEighthNoImatrix,  // layer < n_layers / 8 and no importance matrix
};

struct Rule {
  const char* mix;
  Kind kind;
  Cond cond;
  const char* type;
};
constexpr Rule kRules[] = {
    // attn_v (more sensitive: it is shared by n_heads / n_kv_heads query heads)
    {"Q2_K", Kind::kAttnV, Cond::kGqa4, "q4_k"},
    {"Q2_K", Kind::kAttnV, Cond::kAlways, "q3_k"},
    {"Q3_K_M", Kind::kAttnV, Cond::kLayerBelow2, "q5_k"},
    {"Q3_K_M", Kind::kAttnV, Cond::kAlways, "q4_k"},
    {"Q3_K_L", Kind::kAttnV, Cond::kAlways, "q5_k"},
    {"IQ4_NL", Kind::kAttnV, Cond::kGqa4, "q5_k"},
    {"IQ4_XS", Kind::kAttnV, Cond::kGqa4, "q5_k"},
    {"Q4_K_M", Kind::kAttnV, Cond::kMoreBits, "q6_k"},
    {"Q5_K_M", Kind::kAttnV, Cond::kMoreBits, "q6_k"},
    {"Q4_K_S", Kind::kAttnV, Cond::kLayerBelow4, "q5_k"},
    // ffn_down
    {"Q2_K", Kind::kFfnDown, Cond::kAlways, "q3_k"},
    {"Q3_K_M", Kind::kFfnDown, Cond::kFirstSixteenth, "q5_k"},
    {"Q3_K_M", Kind::kFfnDown, Cond::kAlways, "q4_k"},
    {"Q3_K_L", Kind::kFfnDown, Cond::kAlways, "q5_k"},
    {"Q4_K_M", Kind::kFfnDown, Cond::kMoreBits, "q6_k"},
    {"IQ4_NL", Kind::kFfnDown, Cond::kFirstEighthNoImatrix, "q5_k"},
    {"IQ4_XS", Kind::kFfnDown, Cond::kFirstEighthNoImatrix, "q5_k"},
    {"Q5_K_M", Kind::kFfnDown, Cond::kMoreBits, "q6_k"},
    {"Q4_K_S", Kind::kFfnDown, Cond::kFirstEighth, "q5_k"},
    // attn_output
    {"Q2_K", Kind::kAttnOutput, Cond::kAlways, "q3_k"},
    {"Q3_K_M", Kind::kAttnOutput, Cond::kAlways, "q4_k"},
    {"Q3_K_L", Kind::kAttnOutput, Cond::kAlways, "q5_k"},
};

// tensor_type_fallback: the type for rows that are not whole blocks of `type`.
struct Fallback {
  const char* from;
  const char* to;
};
constexpr Fallback kFallbacks[] = {{"q2_k", "q4_0"}, {"q3_k", "q4_0"}, {"q4_k", "q5_0"},
                                   {"q5_k", "q5_1"}, {"q6_k", "q8_0"}, {"iq4_xs", "iq4_nl"}};

// llama_ftype of a file whose quantized tensors are one type (llama-quantize's name for that type).
struct CodecFileType {
  const char* codec;
  int file_type;
};
constexpr CodecFileType kCodecFileTypes[] = {
    {"f32", 0},   {"fp16", 1},  {"q4_0", 2},  {"q4_1", 3},  {"q8_0", 7},    {"q5_0", 8},   {"q5_1", 9},
    {"q2_k", 10}, {"q3_k", 12}, {"q4_k", 15}, {"q5_k", 17}, {"q6_k", 18},   {"iq4_nl", 25}, {"iq4_xs", 30},
    {"bf16", 32}};

std::string Upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = char(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

const Mix* FindMix(std::string_view name) {
  const std::string u = Upper(name);
  for (const Mix& m : kMixes) {
    if (u == m.name) return &m;
  }
  return nullptr;
}

// "model.layers.12.mlp.down_proj" -> 12; -1 when there is no layer.
int LayerOf(std::string_view path) {
  int layer = -1;
  if (std::sscanf(std::string(path).c_str(), "model.layers.%d.", &layer) != 1) return -1;
  return layer;
}

Kind KindOf(std::string_view p) {
  if (p.ends_with(".weight")) p.remove_suffix(7);
  if (p == "lm_head") return Kind::kOutput;
  if (p == "model.embed_tokens") return Kind::kTokenEmbd;
  if (p.ends_with("self_attn.q_proj")) return Kind::kAttnQ;
  if (p.ends_with("self_attn.k_proj")) return Kind::kAttnK;
  if (p.ends_with("self_attn.v_proj")) return Kind::kAttnV;
  if (p.ends_with("self_attn.o_proj")) return Kind::kAttnOutput;
  if (p.ends_with("mlp.gate_proj")) return Kind::kFfnGate;
  if (p.ends_with("mlp.up_proj")) return Kind::kFfnUp;
  if (p.ends_with("mlp.down_proj")) return Kind::kFfnDown;
  return Kind::kOther;
}

bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

bool Holds(Cond c, int layer, const ModelConfig& cfg, bool has_imatrix) {
  const int n = cfg.n_layers;
  const int gqa = cfg.n_kv_heads > 0 ? cfg.n_heads / cfg.n_kv_heads : 1;
  switch (c) {
    case Cond::kAlways: return true;
    case Cond::kMoreBits: return UseMoreBits(layer, n);
    case Cond::kLayerBelow2: return layer < 2;
    case Cond::kLayerBelow4: return layer < 4;
    case Cond::kFirstEighth: return layer < n / 8;
    case Cond::kFirstSixteenth: return layer < n / 16;
    case Cond::kGqa4: return gqa >= 4;
    case Cond::kFirstEighthNoImatrix: return layer < n / 8 && !has_imatrix;
  }
  return false;
}

int BlockOf(const std::string& codec) {
  StatusOr<const BlockCodec*> c = FindBlockCodec(codec);
  return c.ok() ? (*c)->default_block_size() : 1;
}

// llama.cpp's output / tied-embedding rule: Q8_0 when the row is not whole blocks of the mix's type,
// otherwise Q6_K unless the mix is Q8_0.
std::string OutputType(const Mix& m, int64_t cols) {
  if (cols % BlockOf(m.base) != 0) return "q8_0";
  return std::string(m.base) == "q8_0" ? "q8_0" : "q6_k";
}

std::string ApplyFallback(std::string type, int64_t cols) {
  if (cols % BlockOf(type) == 0) return type;
  for (const Fallback& f : kFallbacks) {
    if (type == f.from) {
      type = f.to;
      break;
    }
  }
  return cols % BlockOf(type) == 0 ? type : "fp16";  // not even 32-blocks: llama.cpp stores F16
}

std::string MixNameList() {
  std::string s;
  for (const Mix& m : kMixes) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

}  // namespace

StatusOr<std::string> LlamaMixScheme(std::string_view mix, const ModelConfig& cfg, std::string_view module_path,
                                     int64_t rows, int64_t cols, bool has_imatrix) {
  const Mix* m = FindMix(mix);
  if (m == nullptr) {
    return Status::Errorf("unknown llama.cpp mix '{}'; known: {}", mix, MixNameList());
  }
  if (rows <= 0 || cols <= 0) {
    return Status::Errorf("{}: weight shape [{}, {}] is not a matrix", module_path, rows, cols);
  }
  const Kind kind = KindOf(module_path);
  const int layer = LayerOf(module_path);
  if ((kind != Kind::kOutput && kind != Kind::kTokenEmbd && kind != Kind::kOther) &&
      (layer < 0 || layer >= cfg.n_layers)) {
    return Status::Errorf("{}: no layer index in [0, {}) (expected model.layers.<i>....)", module_path,
                          cfg.n_layers);
  }
  std::string type = m->base;
  if (kind == Kind::kOutput || (kind == Kind::kTokenEmbd && cfg.tied_embeddings)) {
    type = OutputType(*m, cols);
  } else {
    for (const Rule& r : kRules) {
      if (r.kind == kind && m->name == std::string_view(r.mix) && Holds(r.cond, layer, cfg, has_imatrix)) {
        type = r.type;
        break;
      }
    }
  }
  return ApplyFallback(type, cols);
}

std::vector<std::string_view> LlamaMixNames() {
  std::vector<std::string_view> v;
  for (const Mix& m : kMixes) v.emplace_back(m.name);
  return v;
}

std::string LlamaMixBaseType(std::string_view mix) {
  const Mix* m = FindMix(mix);
  return m != nullptr ? m->base : "";
}

int LlamaMixFileType(std::string_view mix) {
  const Mix* m = FindMix(mix);
  return m != nullptr ? m->file_type : -1;
}

int LlamaFileTypeOfCodec(std::string_view codec_name) {
  for (const CodecFileType& c : kCodecFileTypes) {
    if (codec_name == c.codec) return c.file_type;
  }
  return -1;
}

}  // namespace ql
