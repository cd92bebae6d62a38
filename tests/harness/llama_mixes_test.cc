// Tests for llama.cpp's quantization mixes (harness/quant/llama_mixes.h): per-tensor type counts on a
// Llama-2-7B-shaped config against the counts llama-quantize reports for that model, the rules that depend
// on layer / grouped-query ratio / imatrix, and the fallbacks for rows that are not whole 256-blocks.
#include "harness/quant/llama_mixes.h"

#include <map>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace ql {
namespace {

ModelConfig Llama2_7B() {
  ModelConfig c;
  c.dim = 4096;
  c.hidden_dim = 11008;
  c.n_layers = 32;
  c.n_heads = 32;
  c.n_kv_heads = 32;
  c.vocab_size = 32000;
  c.tied_embeddings = false;
  return c;
}

// Every weight llama-quantize quantizes, with its [rows, cols] shape.
std::map<std::string, int> CountTypes(std::string_view mix, const ModelConfig& c, bool imatrix = false) {
  std::map<std::string, int> n;
  auto add = [&](const std::string& path, int64_t rows, int64_t cols) {
    StatusOr<std::string> t = LlamaMixScheme(mix, c, path, rows, cols, imatrix);
    EXPECT_TRUE(t.ok()) << t.status().message();
    if (t.ok()) ++n[*t];
  };
  const int64_t kv = int64_t(c.dim) / c.n_heads * c.n_kv_heads;
  add("model.embed_tokens", c.vocab_size, c.dim);
  if (!c.tied_embeddings) add("lm_head", c.vocab_size, c.dim);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    add(p + "self_attn.q_proj", c.dim, c.dim);
    add(p + "self_attn.k_proj", kv, c.dim);
    add(p + "self_attn.v_proj", kv, c.dim);
    add(p + "self_attn.o_proj", c.dim, c.dim);
    add(p + "mlp.gate_proj", c.hidden_dim, c.dim);
    add(p + "mlp.up_proj", c.hidden_dim, c.dim);
    add(p + "mlp.down_proj", c.dim, c.hidden_dim);
  }
  return n;
}

TEST(LlamaMixes, Llama2_7BCountsMatchLlamaQuantize) {
  // llama-quantize on Llama-2-7B prints these per-type tensor counts (1-D norms are F32 and not counted):
  // Q4_K_M "q4_K: 193, q6_K: 33"; Q3_K_M "q3_K: 129, q4_K: 92, q5_K: 4, q6_K: 1".
  EXPECT_EQ(CountTypes("Q4_K_M", Llama2_7B()), (std::map<std::string, int>{{"q4_k", 193}, {"q6_k", 33}}));
  EXPECT_EQ(CountTypes("q3_k_m", Llama2_7B()),
            (std::map<std::string, int>{{"q3_k", 129}, {"q4_k", 92}, {"q5_k", 4}, {"q6_k", 1}}));
  // Derived from the rules: Q4_K_S bumps attn_v of layers 0-3 and ffn_down of layers 0-3 to Q5_K.
  EXPECT_EQ(CountTypes("Q4_K_S", Llama2_7B()),
            (std::map<std::string, int>{{"q4_k", 217}, {"q5_k", 8}, {"q6_k", 1}}));
  EXPECT_EQ(CountTypes("Q8_0", Llama2_7B()), (std::map<std::string, int>{{"q8_0", 226}}));
  EXPECT_EQ(CountTypes("Q6_K", Llama2_7B()), (std::map<std::string, int>{{"q6_k", 226}}));
}

TEST(LlamaMixes, LayerAndGqaRules) {
  const ModelConfig c = Llama2_7B();
  auto t = [&](std::string_view mix, const std::string& path, const ModelConfig& cfg) {
    return *LlamaMixScheme(mix, cfg, path, 4096, 4096);
  };
  // use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2.
  EXPECT_EQ(t("Q4_K_M", "model.layers.3.self_attn.v_proj", c), "q6_k");
  EXPECT_EQ(t("Q4_K_M", "model.layers.4.self_attn.v_proj", c), "q4_k");
  EXPECT_EQ(t("Q4_K_M", "model.layers.6.self_attn.v_proj", c), "q6_k");
  EXPECT_EQ(t("Q4_K_M", "model.layers.28.mlp.down_proj.weight", c), "q6_k");
  EXPECT_EQ(t("Q5_K_M", "model.layers.7.mlp.down_proj", c), "q5_k");
  EXPECT_EQ(t("Q5_K_S", "model.layers.0.self_attn.v_proj", c), "q5_k");
  EXPECT_EQ(t("Q3_K_L", "model.layers.9.self_attn.o_proj", c), "q5_k");
  EXPECT_EQ(t("Q3_K_S", "model.layers.0.self_attn.v_proj", c), "q3_k");
  // Q2_K: attn_v is Q3_K, or Q4_K when 4 or more query heads share a KV head.
  EXPECT_EQ(t("Q2_K", "model.layers.5.self_attn.v_proj", c), "q3_k");
  ModelConfig gqa = c;
  gqa.n_kv_heads = 8;
  EXPECT_EQ(t("Q2_K", "model.layers.5.self_attn.v_proj", gqa), "q4_k");
  EXPECT_EQ(t("IQ4_XS", "model.layers.5.self_attn.v_proj", gqa), "q5_k");
  EXPECT_EQ(t("IQ4_XS", "model.layers.5.self_attn.v_proj", c), "iq4_xs");
  // IQ4_*: the first eighth of ffn_down gets Q5_K only without an imatrix.
  EXPECT_EQ(t("IQ4_NL", "model.layers.3.mlp.down_proj", c), "q5_k");
  EXPECT_EQ(*LlamaMixScheme("IQ4_NL", c, "model.layers.3.mlp.down_proj", 4096, 11008, true), "iq4_nl");
  // Tied embeddings take the output rule.
  ModelConfig tied = c;
  tied.tied_embeddings = true;
  EXPECT_EQ(t("Q4_K_M", "model.embed_tokens", tied), "q6_k");
  EXPECT_EQ(t("Q4_K_M", "model.embed_tokens", c), "q4_k");
}

TEST(LlamaMixes, FallbacksForRowsThatAreNotWhole256Blocks) {
  // SmolLM2-135M: dim 576 = 2.25 · 256, 9 heads / 3 KV heads, 30 layers, tied embeddings.
  ModelConfig s;
  s.dim = 576;
  s.hidden_dim = 1536;
  s.n_layers = 30;
  s.n_heads = 9;
  s.n_kv_heads = 3;
  s.vocab_size = 49152;
  s.tied_embeddings = true;
  auto t = [&](std::string_view mix, const std::string& path, int64_t cols) {
    return *LlamaMixScheme(mix, s, path, 576, cols);
  };
  EXPECT_EQ(t("Q4_K_M", "model.layers.10.self_attn.q_proj", 576), "q5_0");   // q4_k -> q5_0
  EXPECT_EQ(t("Q4_K_M", "model.layers.0.self_attn.v_proj", 576), "q8_0");    // q6_k -> q8_0
  EXPECT_EQ(t("Q4_K_M", "model.layers.0.mlp.down_proj", 1536), "q6_k");      // 1536 = 6 · 256 fits
  EXPECT_EQ(t("Q4_K_M", "model.embed_tokens", 576), "q8_0");                 // output rule: q8_0
  EXPECT_EQ(t("Q2_K", "model.layers.10.mlp.up_proj", 576), "q4_0");
  EXPECT_EQ(t("Q5_K_S", "model.layers.10.mlp.up_proj", 576), "q5_1");
  EXPECT_EQ(t("IQ4_XS", "model.layers.10.mlp.up_proj", 576), "iq4_nl");
  EXPECT_EQ(t("Q8_0", "model.layers.10.mlp.up_proj", 40), "fp16");           // not even 32-blocks
}

TEST(LlamaMixes, NamesFileTypesAndErrors) {
  EXPECT_EQ(LlamaMixNames().size(), 12u);
  EXPECT_EQ(LlamaMixFileType("Q4_K_M"), 15);
  EXPECT_EQ(LlamaMixFileType("iq4_xs"), 30);
  EXPECT_EQ(LlamaMixFileType("Q4_K_X"), -1);
  EXPECT_EQ(LlamaFileTypeOfCodec("q8_0"), 7);
  EXPECT_EQ(LlamaFileTypeOfCodec("nf4"), -1);
  StatusOr<std::string> bad = LlamaMixScheme("Q9_K", Llama2_7B(), "lm_head", 10, 4096);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("Q4_K_M"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(LlamaMixScheme("Q4_K_M", Llama2_7B(), "model.layers.40.mlp.up_proj", 10, 4096).ok());
}

}  // namespace
}  // namespace ql
