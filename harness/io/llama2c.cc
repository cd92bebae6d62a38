// llama2.c checkpoint reader/writer (docs/formats.md §5.3). Layouts, all little-endian fp32, rows = [out, in]:
//   v0: i32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (<0: unshared classifier), seq_len;
//       token_emb[V,D], rms_att[L,D], wq[L,H*hs,D], wk[L,KV*hs,D], wv[L,KV*hs,D], wo[L,D,H*hs],
//       rms_ffn[L,D], w1[L,F,D], w2[L,D,F], w3[L,F,D], rms_final[D], freq_cis_real[seq,hs/2],
//       freq_cis_imag[seq,hs/2] (skipped), wcls[V,D] iff unshared. hs = dim / n_heads.
//   v1: 256-byte header: u32 0x616b3432 "ak42", i32 version = 1, the 7 ints, u8 shared_classifier, zeros;
//       rms_att[L,D], rms_ffn[L,D], rms_final[D], token_emb[V,D], wq, wk, wv, wo, w1, w2, w3, [wcls].
// w1 = gate_proj, w2 = down_proj, w3 = up_proj.
#include "harness/io/llama2c.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "harness/io/file_io.h"
#include "harness/io/rope_layout.h"
#include "harness/tokenizer/spm_bpe.h"

namespace ql::io {
namespace {

constexpr uint32_t kMagicV1 = 0x616b3432;  // "ak42" read as a little-endian u32
constexpr uint64_t kHeaderV1 = 256;

struct Slot {
  std::string stored;           // run.c field name, "wq[3]"
  std::string hf;               // Model::weights name, "" for the skipped RoPE tables
  std::vector<int64_t> shape;
};

struct Dims {
  int64_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
  bool shared;
};

// The tensors of a checkpoint in file order.
std::vector<Slot> Layout(const Dims& d, int version) {
  const int64_t D = d.dim, F = d.hidden, V = d.vocab, hs = d.dim / d.heads;
  const int64_t q = d.heads * hs, kv = d.kv_heads * hs;
  std::vector<Slot> s;
  auto per_layer = [&](const char* stored, const char* hf, std::vector<int64_t> shape) {
    for (int64_t l = 0; l < d.layers; ++l)
      s.push_back({fmt::format("{}[{}]", stored, l), LayerPrefix(int(l)) + hf, shape});
  };
  auto emb = [&] { s.push_back({"token_embedding_table", "model.embed_tokens.weight", {V, D}}); };
  auto norms = [&] {
    per_layer("rms_att_weight", "input_layernorm.weight", {D});
    if (version == 0) return;
    per_layer("rms_ffn_weight", "post_attention_layernorm.weight", {D});
    s.push_back({"rms_final_weight", "model.norm.weight", {D}});
  };
  auto attn = [&] {
    per_layer("wq", "self_attn.q_proj.weight", {q, D});
    per_layer("wk", "self_attn.k_proj.weight", {kv, D});
    per_layer("wv", "self_attn.v_proj.weight", {kv, D});
    per_layer("wo", "self_attn.o_proj.weight", {D, q});
  };
  auto mlp = [&] {
    per_layer("w1", "mlp.gate_proj.weight", {F, D});
    per_layer("w2", "mlp.down_proj.weight", {D, F});
    per_layer("w3", "mlp.up_proj.weight", {F, D});
  };
  if (version == 0) {
    emb();
    norms();
    attn();
    per_layer("rms_ffn_weight", "post_attention_layernorm.weight", {D});
    mlp();
    s.push_back({"rms_final_weight", "model.norm.weight", {D}});
    s.push_back({"freq_cis_real", "", {d.seq_len, hs / 2}});
    s.push_back({"freq_cis_imag", "", {d.seq_len, hs / 2}});
  } else {
    norms();
    emb();
    attn();
    mlp();
  }
  if (!d.shared) s.push_back({"wcls", "lm_head.weight", {V, D}});
  return s;
}

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t x : shape) n *= x;
  return n;
}

Status CheckDims(const std::string& path, const Dims& d) {
  const std::pair<const char*, int64_t> fields[] = {{"dim", d.dim},          {"hidden_dim", d.hidden},
                                                   {"n_layers", d.layers},   {"n_heads", d.heads},
                                                   {"n_kv_heads", d.kv_heads}, {"vocab_size", d.vocab},
                                                   {"seq_len", d.seq_len}};
  for (const auto& [name, v] : fields) {
    if (v <= 0 || v > (int64_t(1) << 24))
      return Status::Errorf("{}: llama2.c header field {} = {} is out of range (corrupt or not a llama2.c file)",
                            path, name, v);
  }
  if (d.dim % d.heads != 0 || (d.dim / d.heads) % 2 != 0)
    return Status::Errorf("{}: llama2.c header dim {} is not n_heads {} times an even head size", path, d.dim,
                          d.heads);
  if (d.heads % d.kv_heads != 0)
    return Status::Errorf("{}: llama2.c header n_kv_heads {} does not divide n_heads {}", path, d.kv_heads, d.heads);
  return Status::Ok();
}

// Finds the tokenizer beside the model: explicit path, else tokenizer.bin, else tok<vocab>.bin.
StatusOr<std::string> FindTokenizer(const std::string& model_path, const std::string& explicit_path, int vocab) {
  namespace fs = std::filesystem;
  if (!explicit_path.empty()) {
    if (!fs::exists(explicit_path))
      return Status::Errorf("{}: tokenizer file does not exist (given for model {})", explicit_path, model_path);
    return explicit_path;
  }
  const fs::path dir = fs::path(model_path).parent_path();
  for (const std::string& name : {std::string("tokenizer.bin"), fmt::format("tok{}.bin", vocab)}) {
    if (fs::exists(dir / name)) return (dir / name).string();
  }
  return std::string();
}

}  // namespace

StatusOr<Model> ReadLlama2c(const std::string& path, const std::string& tokenizer_path, CheckpointInfo* info) {
  FileReader r;
  QL_RETURN_IF_ERROR(r.Open(path));
  uint32_t magic = 0;
  QL_RETURN_IF_ERROR(r.ReadPod(&magic, "the llama2.c header"));
  int version = 0;
  int32_t h[7];
  bool shared = true;
  if (magic == kMagicV1) {
    int32_t v = 0;
    QL_RETURN_IF_ERROR(r.ReadPod(&v, "the llama2.c version"));
    if (v != 1)
      return Status::Errorf("{}: llama2.c checkpoint version {} is not supported (only v0 and fp32 v1; v2 is int8)",
                            path, v);
    version = 1;
    QL_RETURN_IF_ERROR(r.Read(h, sizeof(h), "the llama2.c v1 header"));
    uint8_t sc = 0;
    QL_RETURN_IF_ERROR(r.ReadPod(&sc, "the shared_classifier flag"));
    if (sc > 1) return Status::Errorf("{}: llama2.c v1 shared_classifier byte is {} (must be 0 or 1)", path, sc);
    shared = sc == 1;
    QL_RETURN_IF_ERROR(r.Seek(kHeaderV1));
  } else {
    QL_RETURN_IF_ERROR(r.Seek(0));
    QL_RETURN_IF_ERROR(r.Read(h, sizeof(h), "the llama2.c v0 header (7 x int32)"));
    shared = h[5] > 0;
    h[5] = h[5] < 0 ? -int64_t(h[5]) : h[5];
  }
  Dims d{h[0], h[1], h[2], h[3], h[4], h[5], h[6], shared};
  QL_RETURN_IF_ERROR(CheckDims(path, d));
  {
    // The size the header implies, in floating point first: a corrupt header can describe petabytes, and
    // building the per-layer tensor list for it would exhaust memory before the size check.
    const long double D = d.dim, F = d.hidden, L = d.layers, V = d.vocab, hs = d.dim / d.heads;
    const long double q = d.heads * hs, kv = d.kv_heads * hs;
    const long double floats = V * D * (d.shared ? 1 : 2) + L * (2 * D + 2 * q * D + 2 * kv * D + 3 * F * D) + D +
                               (version == 0 ? d.seq_len * hs : 0);
    const long double need = (r.pos() + 4 * floats);
    if (need > 1e18L || uint64_t(need) != r.size())
      return Status::Errorf("{}: llama2.c v{} header (dim {}, hidden {}, layers {}, heads {}, kv_heads {}, vocab {}, "
                            "seq_len {}, {} classifier) implies {:.0f} bytes but the file has {}{}",
                            path, version, d.dim, d.hidden, d.layers, d.heads, d.kv_heads, d.vocab, d.seq_len,
                            d.shared ? "shared" : "unshared", double(need), r.size(),
                            need > r.size() ? " (truncated)" : " (trailing bytes; wrong header?)");
  }
  const std::vector<Slot> slots = Layout(d, version);
  uint64_t floats = 0;  // the same count from the tensor list: the two layouts must agree
  for (const Slot& s : slots) floats += uint64_t(Numel(s.shape));
  QL_CHECK(r.pos() + 4 * floats == r.size(), "llama2.c layout list and size formula disagree");
  Model m;
  m.source_path = path;
  ModelConfig& c = m.config;
  c.arch = "llama";
  c.dim = int(d.dim);
  c.hidden_dim = int(d.hidden);
  c.n_layers = int(d.layers);
  c.n_heads = int(d.heads);
  c.n_kv_heads = int(d.kv_heads);
  c.head_dim = int(d.dim / d.heads);
  c.vocab_size = int(d.vocab);
  c.max_seq_len = int(d.seq_len);
  c.rope_theta = 10000.0f;  // run.c hard-codes theta and eps
  c.norm_eps = 1e-5f;
  c.rope_interleaved = true;
  c.tied_embeddings = shared;
  c.bos_id = 1;
  c.eos_id = 2;
  if (info) {
    info->format = fmt::format("llama2.c v{}", version);
    info->files.push_back(path);
    info->metadata["seq_len"] = std::to_string(d.seq_len);
    info->metadata["shared_classifier"] = shared ? "true" : "false";
  }
  for (const Slot& s : slots) {
    const int64_t n = Numel(s.shape);
    if (info) info->tensors.push_back({s.stored, s.hf, s.shape, "F32", uint64_t(4 * n)});
    if (s.hf.empty()) {
      QL_RETURN_IF_ERROR(r.Skip(uint64_t(4 * n), s.stored));
      continue;
    }
    Tensor t;
    t.shape = s.shape;
    t.data.resize(size_t(n));
    QL_RETURN_IF_ERROR(r.Read(t.data.data(), uint64_t(4 * n), s.stored));
    m.weights.emplace(s.hf, std::move(t));
  }
  QL_ASSIGN_OR_RETURN(std::string tok_path, FindTokenizer(path, tokenizer_path, c.vocab_size));
  if (!tok_path.empty()) {
    QL_ASSIGN_OR_RETURN(auto tok, LoadLlama2cTokenizer(tok_path, c.vocab_size));
    m.tokenizer = std::shared_ptr<const Tokenizer>(std::move(tok));
    if (info) info->metadata["tokenizer"] = tok_path;
  }
  QL_RETURN_IF_ERROR(m.Validate(path));
  return m;
}

Status WriteLlama2c(const std::string& path, const Model& model, int version) {
  const ModelConfig& c = model.config;
  if (version != 0 && version != 1)
    return Status::Errorf("{}: llama2.c version {} cannot be written (0 or 1)", path, version);
  if (c.qkv_bias || c.qk_norm)
    return Status::Errorf("{}: llama2.c has no q/k/v bias or q/k norm; this {} model cannot be written as llama2.c",
                          path, c.arch);
  if (c.head_dim * c.n_heads != c.dim)
    return Status::Errorf("{}: llama2.c needs head_dim = dim / n_heads ({} != {} / {})", path, c.head_dim, c.dim,
                          c.n_heads);
  if (c.max_seq_len <= 0)
    return Status::Errorf("{}: llama2.c needs max_seq_len > 0 (it sizes the RoPE table); set config.max_seq_len", path);
  QL_RETURN_IF_ERROR(model.Validate(path));
  const Model* src = &model;
  Model permuted;
  if (!c.rope_interleaved) {  // llama2.c rotates adjacent pairs
    permuted = model;
    SetRopeLayout(&permuted, true);
    src = &permuted;
  }
  Dims d{c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len, c.tied_embeddings};
  FileWriter w;
  QL_RETURN_IF_ERROR(w.Open(path));
  const int32_t vocab_field = (version == 0 && !d.shared) ? -c.vocab_size : c.vocab_size;
  const int32_t h[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, vocab_field, c.max_seq_len};
  if (version == 1) {
    w.WritePod(kMagicV1);
    w.WritePod(int32_t(1));
    w.Write(h, sizeof(h));
    w.WritePod(uint8_t(d.shared ? 1 : 0));
    std::vector<uint8_t> pad(kHeaderV1 - w.pos(), 0);
    w.Write(pad.data(), pad.size());
  } else {
    w.Write(h, sizeof(h));
  }
  const int hs = c.head_dim;
  for (const Slot& s : Layout(d, version)) {
    if (!s.hf.empty()) {
      const Tensor& t = src->W(s.hf);
      w.Write(t.data.data(), 4 * t.data.size());
      continue;
    }
    // RoPE table as llama2.c's legacy export writes it: [seq_len, hs/2] cos (real) then sin (imag)
    // of pos * theta^(-2i/hs). Readers skip it.
    const bool imag = s.stored == "freq_cis_imag";
    std::vector<float> tab;
    for (int pos = 0; pos < c.max_seq_len; ++pos)
      for (int i = 0; i < hs / 2; ++i) {
        const double freq = 1.0 / std::pow(double(c.rope_theta), 2.0 * i / hs);
        tab.push_back(float(imag ? std::sin(pos * freq) : std::cos(pos * freq)));
      }
    w.Write(tab.data(), 4 * tab.size());
  }
  return w.Close();
}

}  // namespace ql::io
