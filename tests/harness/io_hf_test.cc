// Hugging Face directory tests: config.json parsing against the docs/formats.md §5.2 table, round trips of random
// Llama/Qwen2/Qwen3 models (single file and sharded), bad directories, and LoadModel's format detection.
#include "harness/io/hf.h"

#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/io/gguf.h"
#include "harness/io/llama2c.h"
#include "harness/io/load.h"
#include "harness/io/rope_layout.h"
#include "harness/io/safetensors.h"
#include "harness/tokenizer/byte_bpe.h"
#include "io_testing.h"

namespace ql {
namespace {

using nlohmann::json;
using testing::ExpectConfigEq;
using testing::ExpectWeightsEq;
using testing::RandomModel;
using testing::RandomModelOptions;
using testing::TempDir;

// Config values of docs/formats.md §5.2 (SmolLM2-135M, Qwen2.5-0.5B, Qwen3-0.6B), trimmed to the relevant fields.
const char* kSmolLM2 = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":576,
  "intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"head_dim":64,
  "rope_theta":100000,"rms_norm_eps":1e-05,"tie_word_embeddings":true,"attention_bias":false,"mlp_bias":false,
  "vocab_size":49152,"max_position_embeddings":8192,"rope_scaling":null,"bos_token_id":0,"eos_token_id":0,
  "hidden_act":"silu"})";
const char* kQwen25 = R"({"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,
  "num_attention_heads":14,"num_key_value_heads":2,"rope_theta":1000000.0,"rms_norm_eps":1e-06,
  "tie_word_embeddings":true,"vocab_size":151936,"max_position_embeddings":32768,"use_sliding_window":false,
  "bos_token_id":151643,"eos_token_id":151643})";
const char* kQwen3 = R"({"model_type":"qwen3","hidden_size":1024,"intermediate_size":3072,"num_hidden_layers":28,
  "num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,"rope_theta":1000000,"rms_norm_eps":1e-06,
  "tie_word_embeddings":true,"attention_bias":false,"vocab_size":151936,"max_position_embeddings":40960,
  "eos_token_id":[151645, 151643]})";

TEST(IoHf, ParsesConfigsOfTheTargetModels) {
  auto s = io::ParseHfConfig(kSmolLM2, "smol/config.json");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->arch, "llama");
  EXPECT_EQ(s->dim, 576);
  EXPECT_EQ(s->hidden_dim, 1536);
  EXPECT_EQ(s->n_layers, 30);
  EXPECT_EQ(s->n_heads, 9);
  EXPECT_EQ(s->n_kv_heads, 3);
  EXPECT_EQ(s->head_dim, 64);
  EXPECT_EQ(s->rope_theta, 100000.0f);
  EXPECT_EQ(s->norm_eps, 1e-5f);
  EXPECT_TRUE(s->tied_embeddings);
  EXPECT_FALSE(s->qkv_bias);
  EXPECT_FALSE(s->qk_norm);
  EXPECT_FALSE(s->rope_interleaved);
  EXPECT_EQ(s->vocab_size, 49152);
  EXPECT_EQ(s->max_seq_len, 8192);
  EXPECT_EQ(s->bos_id, 0);

  auto q2 = io::ParseHfConfig(kQwen25, "qwen2/config.json");
  ASSERT_TRUE(q2.ok()) << q2.status().message();
  EXPECT_EQ(q2->head_dim, 64);  // absent: 896 / 14
  EXPECT_TRUE(q2->qkv_bias);
  EXPECT_FALSE(q2->qk_norm);
  EXPECT_EQ(q2->rope_theta, 1000000.0f);
  EXPECT_EQ(q2->norm_eps, 1e-6f);
  EXPECT_EQ(q2->eos_id, 151643);

  auto q3 = io::ParseHfConfig(kQwen3, "qwen3/config.json");
  ASSERT_TRUE(q3.ok()) << q3.status().message();
  EXPECT_EQ(q3->head_dim, 128);  // explicit, != 1024 / 16
  EXPECT_TRUE(q3->qk_norm);
  EXPECT_FALSE(q3->qkv_bias);
  EXPECT_EQ(q3->eos_id, 151645);  // first of the list
  EXPECT_EQ(q3->max_seq_len, 40960);
}

TEST(IoHf, ConfigVariantsAndErrors) {
  json j = json::parse(kSmolLM2);
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_theta", 250000.0}, {"rope_type", "default"}};
  j.erase("num_key_value_heads");
  j.erase("head_dim");
  j.erase("tie_word_embeddings");
  auto c = io::ParseHfConfig(j.dump(), "c.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->rope_theta, 250000.0f);
  EXPECT_EQ(c->n_kv_heads, 9);    // absent: = heads
  EXPECT_EQ(c->head_dim, 64);     // 576 / 9
  EXPECT_FALSE(c->tied_embeddings);  // LlamaConfig default

  auto with = [&](const char* key, json v) {
    json k = json::parse(kSmolLM2);
    if (v.is_null()) k.erase(key); else k[key] = v;
    return io::ParseHfConfig(k.dump(), "x/config.json");
  };
  QL_EXPECT_ERROR(with("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}), "x/config.json", "llama3");
  QL_EXPECT_ERROR(with("model_type", "mistral"), "x/config.json", "mistral");
  QL_EXPECT_ERROR(with("hidden_size", nullptr), "x/config.json", "hidden_size", "missing");
  QL_EXPECT_ERROR(with("hidden_size", "576"), "hidden_size", "integer");
  QL_EXPECT_ERROR(with("attention_bias", true), "attention_bias");
  QL_EXPECT_ERROR(with("mlp_bias", true), "mlp_bias");
  QL_EXPECT_ERROR(with("hidden_act", "gelu"), "gelu");
  QL_EXPECT_ERROR(with("num_key_value_heads", 4), "n_kv_heads");  // 9 % 4 != 0
  QL_EXPECT_ERROR(io::ParseHfConfig("{\"model_type\": \"llama\",", "y/config.json"), "y/config.json",
                  "not valid JSON");
}

std::vector<RandomModelOptions> HfVariants() {
  std::vector<RandomModelOptions> v(4);
  v[1].tied = true;
  v[1].seed = 11;
  v[2].arch = "qwen2";
  v[2].qkv_bias = true;
  v[2].seed = 12;
  v[3].arch = "qwen3";
  v[3].qk_norm = true;
  v[3].head_dim = 16;
  v[3].tied = true;
  v[3].seed = 13;
  return v;
}

TEST(IoHf, RandomModelsRoundTrip) {
  TempDir tmp;
  for (const RandomModelOptions& o : HfVariants()) {
    const Model m = RandomModel(o);
    for (auto [dtype, code] : {std::pair{io::FloatDtype::kF32, 0}, std::pair{io::FloatDtype::kF16, 1},
                               std::pair{io::FloatDtype::kBF16, 2}}) {
      for (uint64_t shard : {uint64_t(0), uint64_t(4000)}) {
        SCOPED_TRACE(fmt::format("{} tied={} {} shard={}", o.arch, o.tied, io::FloatDtypeName(dtype), shard));
        const std::string dir = tmp / fmt::format("{}_{}_{}_{}", o.arch, o.seed, code, shard);
        ASSERT_TRUE(io::WriteHfDir(dir, m, dtype, shard).ok());
        EXPECT_EQ(std::filesystem::exists(dir + "/model.safetensors.index.json"), shard > 0);
        auto back = LoadModel(dir);
        ASSERT_TRUE(back.ok()) << back.status().message();
        ExpectConfigEq(m.config, back->config);
        ExpectWeightsEq(m, *back, code, code);  // safetensors stores every tensor in the one dtype
      }
    }
  }
}

TEST(IoHf, InterleavedModelIsPermutedToRotateHalf) {
  TempDir tmp;
  RandomModelOptions o;
  o.interleaved = true;
  o.arch = "qwen2";
  o.qkv_bias = true;
  const Model m = RandomModel(o);
  ASSERT_TRUE(io::WriteHfDir(tmp / "d", m, io::FloatDtype::kF32).ok());
  auto back = io::ReadHfDir(tmp / "d");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_FALSE(back->config.rope_interleaved);
  // Adjacent-pair row 2r + j of a head is rotate-half row j*hd/2 + r (hd 8): k head 1 row 3 (r=1, j=1) -> row 5.
  const auto& k0 = m.W("model.layers.1.self_attn.k_proj.bias").data;
  const auto& k1 = back->W("model.layers.1.self_attn.k_proj.bias").data;
  EXPECT_EQ(k1[8 + 5], k0[8 + 3]);
  EXPECT_EQ(k1[8 + 0], k0[8 + 0]);
  io::SetRopeLayout(&back.value(), true);
  ExpectConfigEq(m.config, back->config);
  ExpectWeightsEq(m, *back);
  // A llama model with q/k/v bias has no config.json (llama's attention_bias also adds an o_proj bias).
  o.arch = "llama";
  QL_EXPECT_ERROR(io::WriteHfDir(tmp / "e", RandomModel(o), io::FloatDtype::kF32), "qkv_bias=true");
}

TEST(IoHf, BadDirectoriesGiveClearErrors) {
  TempDir tmp;
  const Model m = RandomModel({});
  const std::string dir = tmp / "good";
  ASSERT_TRUE(io::WriteHfDir(dir, m, io::FloatDtype::kF32).ok());
  const std::string config = testing::ReadBytes(dir + "/config.json");
  auto copy_dir = [&](const std::string& name) {
    const std::string d = tmp / name;
    std::filesystem::copy(dir, d);
    return d;
  };
  {  // config shapes disagree with the tensors
    const std::string d = copy_dir("shape");
    json j = json::parse(config);
    j["intermediate_size"] = 64;
    testing::WriteBytes(d + "/config.json", j.dump());
    QL_EXPECT_ERROR(LoadModel(d), d, "mlp.gate_proj.weight", "[48, 32]", "[64, 32]");
  }
  {  // bad JSON
    const std::string d = copy_dir("json");
    testing::WriteBytes(d + "/config.json", config.substr(0, 30));
    QL_EXPECT_ERROR(LoadModel(d), d + "/config.json", "not valid JSON");
  }
  std::map<std::string, Tensor> w = m.weights;
  {  // a missing tensor
    const std::string d = copy_dir("missing");
    auto ww = w;
    ww.erase("model.layers.1.self_attn.v_proj.weight");
    ASSERT_TRUE(io::WriteSafetensors(d + "/model.safetensors", ww, io::FloatDtype::kF32).ok());
    QL_EXPECT_ERROR(LoadModel(d), d, "model.layers.1.self_attn.v_proj.weight", "missing");
  }
  {  // NaN and Inf weights
    const std::string d = copy_dir("nan");
    auto ww = w;
    ww["model.layers.0.mlp.down_proj.weight"].data[17] = std::numeric_limits<float>::quiet_NaN();
    ASSERT_TRUE(io::WriteSafetensors(d + "/model.safetensors", ww, io::FloatDtype::kF32).ok());
    QL_EXPECT_ERROR(LoadModel(d), d, "model.layers.0.mlp.down_proj.weight", "non-finite", "17");
    ww["model.layers.0.mlp.down_proj.weight"].data[17] = 0.5f;
    ww["model.layers.0.mlp.down_proj.weight"].data[18] = 1e6f;  // > 65504: stored as Inf in F16
    ASSERT_TRUE(io::WriteSafetensors(d + "/model.safetensors", ww, io::FloatDtype::kF16).ok());
    QL_EXPECT_ERROR(LoadModel(d), d, "model.layers.0.mlp.down_proj.weight", "non-finite");
  }
  {  // a tensor the config does not describe
    const std::string d = copy_dir("extra");
    auto ww = w;
    ww["model.layers.0.self_attn.o_proj.bias"] = Tensor{{32}, std::vector<float>(32, 0.0f)};
    ASSERT_TRUE(io::WriteSafetensors(d + "/model.safetensors", ww, io::FloatDtype::kF32).ok());
    QL_EXPECT_ERROR(LoadModel(d), d, "o_proj.bias", "not part of");
  }
  {  // truncated safetensors inside the directory
    const std::string d = copy_dir("trunc");
    const std::string st = testing::ReadBytes(d + "/model.safetensors");
    testing::WriteBytes(d + "/model.safetensors", st.substr(0, st.size() / 2));
    QL_EXPECT_ERROR(LoadModel(d), d + "/model.safetensors", "truncated");
  }
  {  // no weights at all
    const std::string d = copy_dir("noweights");
    std::filesystem::remove(d + "/model.safetensors");
    QL_EXPECT_ERROR(LoadModel(d), d, "model.safetensors");
  }
}

TEST(IoLoad, DetectsEveryFormat) {
  TempDir tmp;
  Model m = RandomModel({});
  m.config.rope_theta = 10000.0f;
  m.config.norm_eps = 1e-5f;
  ASSERT_TRUE(io::WriteHfDir(tmp / "hf", m, io::FloatDtype::kF32).ok());
  ASSERT_TRUE(io::WriteGguf(tmp / "m.gguf", m, io::FloatDtype::kF32).ok());
  ASSERT_TRUE(io::WriteLlama2c(tmp / "m.bin", m).ok());
  ASSERT_TRUE(io::WriteLlama2c(tmp / "v1.ckpt", m, 1).ok());  // "ak42" magic, any extension
  for (const std::string& p : {tmp / "hf", tmp / "hf/model.safetensors", tmp / "m.gguf", tmp / "m.bin",
                              tmp / "v1.ckpt"}) {
    SCOPED_TRACE(p);
    io::CheckpointInfo info;
    auto back = LoadModel(p, &info);
    ASSERT_TRUE(back.ok()) << back.status().message();
    io::SetRopeLayout(&back.value(), false);
    ExpectConfigEq(m.config, back->config);
    ExpectWeightsEq(m, *back);
    EXPECT_FALSE(info.tensors.empty());
  }
  QL_EXPECT_ERROR(LoadModel(tmp / "nothing"), "nothing", "no such file");
  testing::WriteBytes(tmp / "x.txt", "hello");
  QL_EXPECT_ERROR(LoadModel(tmp / "x.txt"), "x.txt", "unknown checkpoint format");
  std::filesystem::create_directories(tmp / "empty");
  QL_EXPECT_ERROR(LoadModel(tmp / "empty"), "empty", "config.json");
}

// A byte-level BPE tokenizer travels through tokenizer.json (HF) and tokenizer.ggml.* (GGUF "gpt2").
TEST(IoTokenizer, ByteBpeRoundTripsThroughHfAndGguf) {
  TempDir tmp;
  const std::string text =
      "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away, quickly and quietly.\n"
      "Quantization maps weights to a grid: scale, round, clamp. Then it dequantizes them again.";
  ByteBpeTrainOptions opt;
  opt.vocab_size = 300;
  opt.special_tokens = {"<|endoftext|>", "<|im_start|>"};
  opt.eos_index = 0;
  opt.min_frequency = 2;
  auto trained = TrainByteBpe(text, opt);
  ASSERT_TRUE(trained.ok()) << trained.status().message();
  std::shared_ptr<const ByteBpeTokenizer> bpe(std::move(trained.value()));
  ASSERT_GT(bpe->num_merges(), 10);
  RandomModelOptions o;
  o.arch = "qwen2";
  o.qkv_bias = true;
  o.vocab = bpe->vocab_size();
  Model m = RandomModel(o);
  m.tokenizer = bpe;
  const std::string sample = "The lazy fox<|endoftext|> quantizes the dog, quickly!";
  const std::vector<int> want = bpe->Encode(sample, false);
  ASSERT_TRUE(io::WriteHfDir(tmp / "hf", m, io::FloatDtype::kF32).ok());
  ASSERT_TRUE(std::filesystem::exists(tmp / "hf/tokenizer.json"));
  ASSERT_TRUE(io::WriteGguf(tmp / "m.gguf", m, io::FloatDtype::kF32).ok());
  for (const std::string& p : {tmp / "hf", tmp / "m.gguf"}) {
    SCOPED_TRACE(p);
    auto back = LoadModel(p);
    ASSERT_TRUE(back.ok()) << back.status().message();
    ASSERT_NE(back->tokenizer, nullptr);
    const auto* b = dynamic_cast<const ByteBpeTokenizer*>(back->tokenizer.get());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->vocab_size(), bpe->vocab_size());
    EXPECT_EQ(b->merges(), bpe->merges());
    EXPECT_EQ(b->eos_id(), bpe->eos_id());
    for (int id = 0; id < bpe->vocab_size(); ++id) EXPECT_EQ(b->Piece(id), bpe->Piece(id)) << id;
    EXPECT_EQ(b->Encode(sample, false), want);
    EXPECT_EQ(b->Decode(want), bpe->Decode(want));
  }
}

}  // namespace
}  // namespace ql
