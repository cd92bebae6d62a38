// Writes the binary seed corpora of the fuzz targets: a tiny model (dim 8, 1 layer, vocab 16) as
// safetensors, GGUF (with a gpt2 tokenizer) and llama2.c v0/v1, and a two-entry imatrix (GGUF and .dat),
// so every seed reaches deep into its parser. Usage: make_seeds OUT_DIR (creates OUT_DIR/<target>/...). Text seeds are copied by scripts/fuzz.sh.
#include <cstdio>
#include <filesystem>
#include <random>

#include "harness/io/gguf.h"
#include "harness/io/imatrix.h"
#include "harness/io/llama2c.h"
#include "harness/io/safetensors.h"
#include "harness/tokenizer/byte_bpe.h"

namespace {

ql::Model TinyModel() {
  ql::Model m;
  ql::ModelConfig& c = m.config;
  c.arch = "llama";
  c.dim = 8, c.hidden_dim = 12, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 4;
  c.vocab_size = 260, c.max_seq_len = 16, c.rope_theta = 10000, c.norm_eps = 1e-5f;
  c.rope_interleaved = true, c.tied_embeddings = true, c.bos_id = 1, c.eos_id = 2;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 1);
  for (const auto& [name, shape] : m.ExpectedTensors()) {
    ql::Tensor t;
    t.shape = shape;
    t.data.resize(size_t(t.numel()));
    for (float& v : t.data) v = nd(rng);
    m.weights[name] = std::move(t);
  }
  return m;
}

void Check(const ql::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "make_seeds: %s\n", s.message().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* t : {"safetensors", "gguf", "llama2c", "imatrix"}) fs::create_directories(out / t);
  ql::Model m = TinyModel();
  Check(ql::io::WriteSafetensors((out / "safetensors/tiny_f32.safetensors").string(), m.weights,
                                 ql::io::FloatDtype::kF32, {{"format", "pt"}}));
  Check(ql::io::WriteSafetensors((out / "safetensors/tiny_bf16.safetensors").string(), m.weights,
                                 ql::io::FloatDtype::kBF16, {}));
  Check(ql::io::WriteLlama2c((out / "llama2c/tiny_v0.bin").string(), m, 0));
  Check(ql::io::WriteLlama2c((out / "llama2c/tiny_v1.bin").string(), m, 1));
  Check(ql::io::WriteGguf((out / "gguf/tiny_f16_notok.gguf").string(), m, ql::io::FloatDtype::kF16));
  // With a byte-level tokenizer: the 256 byte pieces, no merges.
  ql::ByteBpeSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.push_back(ql::ByteBpeTokenizer::ByteToUnicode(uint8_t(b)));
  spec.pre_tokenizer = "gpt2";
  auto tok = ql::ByteBpeTokenizer::Create(std::move(spec));
  if (!tok.ok()) Check(tok.status());
  m.tokenizer = std::shared_ptr<const ql::Tokenizer>(std::move(tok.value()));
  Check(ql::io::WriteGguf((out / "gguf/tiny_f32_gpt2.gguf").string(), m, ql::io::FloatDtype::kF32));
  ql::io::Imatrix im;
  im.entries["blk.0.attn_q.weight"] = {{1.0f, 4.0f, 0.25f, 9.0f}, {4}};
  im.entries["blk.0.ffn_up_exps.weight"] = {{2.0f, 0.0f, 3.0f, 5.0f}, {2, 1}};
  im.datasets = {"calib.txt"};
  im.chunk_count = 1;
  im.chunk_size = 4;
  Check(ql::io::WriteImatrixGguf((out / "imatrix/two_entries.gguf").string(), im));
  Check(ql::io::WriteImatrixDat((out / "imatrix/two_entries.dat").string(), im));
  return 0;
}
