// llama2.c checkpoint tests: stories260K.bin read against raw file offsets computed from docs/formats.md §5.3,
// the same model from stories260K.gguf bit for bit, v0/v1 round trips of random models, and bad files.
#include "harness/io/llama2c.h"
#include "tests/test_paths.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "harness/io/gguf.h"
#include "harness/io/load.h"
#include "harness/io/rope_layout.h"
#include "harness/tokenizer/tokenizer.h"
#include "io_testing.h"

namespace ql {
namespace {

using testing::ExpectConfigEq;
using testing::ExpectWeightsEq;
using testing::RandomModel;
using testing::RandomModelOptions;
using testing::TempDir;

const std::string kDir = std::string(QL_SHARED_DIR) + "/models/stories260K/";
const std::string kBin = kDir + "stories260K.bin";
const std::string kGguf = kDir + "stories260K.gguf";

float RawFloat(const std::string& bytes, size_t float_index, size_t header = 28) {
  float v;
  std::memcpy(&v, bytes.data() + header + 4 * float_index, 4);
  return v;
}

TEST(IoLlama2c, Stories260KMatchesRawOffsets) {
  io::CheckpointInfo info;
  auto m = io::ReadLlama2c(kBin, "", &info);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const ModelConfig& c = m->config;
  // Header facts from the model README: 64, 172, 5, 8, 4, 512 (shared), 512.
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_TRUE(c.rope_interleaved);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(info.format, "llama2.c v0");
  ASSERT_NE(m->tokenizer, nullptr);  // tok512.bin beside the model
  EXPECT_EQ(m->tokenizer->vocab_size(), 512);

  // Float offsets (in floats after the 28-byte header), v0 order.
  const std::string raw = testing::ReadBytes(kBin);
  ASSERT_EQ(raw.size(), 28u + 4u * 264128u);
  const size_t V = 512, D = 64, L = 5, F = 172, Q = 64, KV = 32;
  const size_t emb = 0, rms_att = V * D, wq = rms_att + L * D, wk = wq + L * Q * D, wv = wk + L * KV * D,
               wo = wv + L * KV * D, rms_ffn = wo + L * D * Q, w1 = rms_ffn + L * D, w2 = w1 + L * F * D,
               w3 = w2 + L * D * F, rms_final = w3 + L * F * D;
  EXPECT_EQ(rms_final + D + 512 * 8, 264128u);  // + the two skipped RoPE tables [512, 4]
  auto W = [&](const std::string& n) { return m->W(n).data; };
  EXPECT_EQ(W("model.embed_tokens.weight")[0], RawFloat(raw, emb));
  EXPECT_EQ(W("model.embed_tokens.weight")[511 * 64 + 63], RawFloat(raw, emb + 511 * 64 + 63));
  EXPECT_EQ(W("model.layers.4.input_layernorm.weight")[7], RawFloat(raw, rms_att + 4 * D + 7));
  EXPECT_EQ(W("model.layers.2.self_attn.k_proj.weight")[5 * 64 + 7], RawFloat(raw, wk + 2 * KV * D + 5 * 64 + 7));
  EXPECT_EQ(W("model.layers.3.self_attn.o_proj.weight")[63 * 64 + 1], RawFloat(raw, wo + 3 * D * Q + 63 * 64 + 1));
  EXPECT_EQ(W("model.layers.1.mlp.gate_proj.weight")[171 * 64], RawFloat(raw, w1 + 1 * F * D + 171 * 64));
  EXPECT_EQ(W("model.layers.1.mlp.down_proj.weight")[3 * 172 + 170], RawFloat(raw, w2 + 1 * D * F + 3 * 172 + 170));
  EXPECT_EQ(W("model.layers.0.mlp.up_proj.weight")[12], RawFloat(raw, w3 + 12));
  EXPECT_EQ(W("model.layers.0.post_attention_layernorm.weight")[0], RawFloat(raw, rms_ffn));
  EXPECT_EQ(W("model.norm.weight")[63], RawFloat(raw, rms_final + 63));
  EXPECT_EQ(W("model.layers.0.self_attn.v_proj.weight")[0], RawFloat(raw, wv));
  EXPECT_EQ(W("model.layers.0.self_attn.q_proj.weight")[0], RawFloat(raw, wq));
  EXPECT_FALSE(m->Has("lm_head.weight"));
}

// Brief 7(a): the two upstream files of stories260K hold the same model.
TEST(IoLlama2c, Stories260KBinAndGgufAreIdentical) {
  auto bin = LoadModel(kBin);
  auto gguf = LoadModel(kGguf);
  ASSERT_TRUE(bin.ok()) << bin.status().message();
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  // The GGUF's llama.context_length is a converter default of 2048 (README); everything else agrees.
  ExpectConfigEq(bin->config, gguf->config, /*compare_seq_len=*/false);
  EXPECT_EQ(bin->config.max_seq_len, 512);
  EXPECT_EQ(gguf->config.max_seq_len, 2048);
  ExpectWeightsEq(*bin, *gguf);  // bitwise, every tensor (GGUF output.weight is a copy -> tied)
  // Both tokenizers split text the same way (GGUF spells spaces as U+2581, tok512.bin as ' ').
  ASSERT_NE(gguf->tokenizer, nullptr);
  const std::string text = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
  EXPECT_EQ(bin->tokenizer->Encode(text, true), gguf->tokenizer->Encode(text, true));
}

ModelConfig Llama2cConfig(ModelConfig c) {
  c.rope_theta = 10000.0f;  // run.c hard-codes both
  c.norm_eps = 1e-5f;
  return c;
}

TEST(IoLlama2c, RoundTripV0AndV1) {
  TempDir tmp;
  for (int version : {0, 1}) {
    for (bool tied : {false, true}) {
      SCOPED_TRACE(fmt::format("v{} tied={}", version, tied));
      RandomModelOptions o;
      o.tied = tied;
      o.seed = 7 + version;
      Model m = RandomModel(o);
      m.config = Llama2cConfig(m.config);
      const std::string path = tmp / fmt::format("m{}{}.bin", version, tied);
      ASSERT_TRUE(io::WriteLlama2c(path, m, version).ok());
      auto back = io::ReadLlama2c(path);
      ASSERT_TRUE(back.ok()) << back.status().message();
      EXPECT_TRUE(back->config.rope_interleaved);
      EXPECT_EQ(back->tokenizer, nullptr);
      // Rotate-half row j*hd/2 + r of each head is stored as adjacent-pair row 2r + j (hd = 8):
      // head 1 row 4 (j=1, r=0) -> row 1 of head 1.
      const auto& q0 = m.W("model.layers.0.self_attn.q_proj.weight");
      const auto& q1 = back->W("model.layers.0.self_attn.q_proj.weight");
      for (int col = 0; col < 32; ++col) EXPECT_EQ(q1.data[(8 + 1) * 32 + col], q0.data[(8 + 4) * 32 + col]);
      io::SetRopeLayout(&back.value(), false);
      ExpectConfigEq(m.config, back->config);
      ExpectWeightsEq(m, *back);
      // File size: exact formula.
      const size_t floats = m.config.ParameterCount() + (version == 0 ? 64 * 8 : 0);
      EXPECT_EQ(testing::ReadBytes(path).size(), (version == 0 ? 28 : 256) + 4 * floats);
    }
  }
}

TEST(IoLlama2c, WriterRefusesWhatLlama2cCannotHold) {
  TempDir tmp;
  RandomModelOptions o;
  o.arch = "qwen2";
  o.qkv_bias = true;
  QL_EXPECT_ERROR(io::WriteLlama2c(tmp / "q.bin", RandomModel(o)), "bias");
  RandomModelOptions o2;
  o2.head_dim = 16;  // != dim / n_heads
  QL_EXPECT_ERROR(io::WriteLlama2c(tmp / "h.bin", RandomModel(o2)), "head_dim");
}

TEST(IoLlama2c, BadFilesGiveClearErrors) {
  TempDir tmp;
  Model m = RandomModel({});
  m.config = Llama2cConfig(m.config);
  const std::string good = tmp / "good.bin";
  ASSERT_TRUE(io::WriteLlama2c(good, m).ok());
  const size_t size = testing::ReadBytes(good).size();
  // Truncated inside the header, inside the embedding, in the middle, one byte short.
  for (size_t n : {size_t(0), size_t(10), size_t(28 + 100), size / 2, size - 1}) {
    const std::string p = tmp / fmt::format("trunc{}.bin", n);
    testing::Truncate(good, p, n);
    QL_EXPECT_ERROR(io::ReadLlama2c(p), p, "truncated");
  }
  // Trailing bytes: the header does not describe this file.
  const std::string extra = tmp / "extra.bin";
  testing::WriteBytes(extra, testing::ReadBytes(good) + std::string(4, '\0'));
  QL_EXPECT_ERROR(io::ReadLlama2c(extra), extra, "trailing");
  // A negative hidden_dim.
  const std::string neg = tmp / "neg.bin";
  testing::WriteBytes(neg, testing::ReadBytes(good));
  testing::PatchPod<int32_t>(neg, 4, -5);
  QL_EXPECT_ERROR(io::ReadLlama2c(neg), neg, "hidden_dim");
  // A header describing a petabyte model (n_layers 2^24, hidden 2^24): a size error, not an allocation.
  const std::string huge = tmp / "huge.bin";
  testing::WriteBytes(huge, testing::ReadBytes(good));
  testing::PatchPod<int32_t>(huge, 4, 1 << 24);
  testing::PatchPod<int32_t>(huge, 8, 1 << 24);
  QL_EXPECT_ERROR(io::ReadLlama2c(huge), huge, "implies", "truncated");
  // n_kv_heads that does not divide n_heads.
  const std::string kv = tmp / "kv.bin";
  testing::WriteBytes(kv, testing::ReadBytes(good));
  testing::PatchPod<int32_t>(kv, 16, 3);
  QL_EXPECT_ERROR(io::ReadLlama2c(kv), kv, "n_kv_heads");
  // A NaN in layer 1's wq (float index: emb 40*32 + rms_att 2*32 + layer 0's wq 32*32 + 5).
  const std::string nan = tmp / "nan.bin";
  testing::WriteBytes(nan, testing::ReadBytes(good));
  testing::PatchPod<float>(nan, 28 + 4 * (40 * 32 + 2 * 32 + 32 * 32 + 5), std::numeric_limits<float>::quiet_NaN());
  QL_EXPECT_ERROR(io::ReadLlama2c(nan), nan, "model.layers.1.self_attn.q_proj.weight", "non-finite");
  // v2 (int8) header.
  const std::string v2 = tmp / "v2.bin";
  std::string b(256, '\0');
  const uint32_t magic = 0x616b3432;
  const int32_t ver = 2;
  std::memcpy(b.data(), &magic, 4);
  std::memcpy(b.data() + 4, &ver, 4);
  testing::WriteBytes(v2, b);
  QL_EXPECT_ERROR(io::ReadLlama2c(v2), v2, "version 2");
  // Missing explicit tokenizer; missing model.
  QL_EXPECT_ERROR(io::ReadLlama2c(good, tmp / "nope.bin"), "nope.bin", "does not exist");
  QL_EXPECT_ERROR(io::ReadLlama2c(tmp / "absent.bin"), "absent.bin", "cannot open");
}

}  // namespace
}  // namespace ql
