// GGUF tests: header bytes laid out by hand from docs/formats.md §4, every metadata type round trip, random models
// written as F32/F16/BF16 and read back, hand-built Q8_0/Q4_0 blocks, the stories260K vocabulary round
// trip, and bad files (each a Status naming the file and the problem).
#include "harness/io/gguf.h"
#include "tests/test_paths.h"

#include <limits>

#include <gtest/gtest.h>

#include "harness/io/load.h"
#include "harness/io/rope_layout.h"
#include "harness/tokenizer/spm_bpe.h"
#include "kernels/gguf_blocks.h"
#include "io_testing.h"

namespace ql {
namespace {

using io::GgufType;
using io::GgufValue;
using testing::ExpectConfigEq;
using testing::ExpectWeightsEq;
using testing::RandomModel;
using testing::RandomModelOptions;
using testing::TempDir;

const std::string kGguf = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.gguf";

TEST(IoGguf, NameMapping) {
  EXPECT_EQ(io::GgufToHfName("blk.3.ffn_down.weight"), "model.layers.3.mlp.down_proj.weight");
  EXPECT_EQ(io::GgufToHfName("blk.12.attn_k_norm.weight"), "model.layers.12.self_attn.k_norm.weight");
  EXPECT_EQ(io::GgufToHfName("blk.0.attn_v.bias"), "model.layers.0.self_attn.v_proj.bias");
  EXPECT_EQ(io::GgufToHfName("blk.1.attn_output.weight"), "model.layers.1.self_attn.o_proj.weight");
  EXPECT_EQ(io::GgufToHfName("output.weight"), "lm_head.weight");
  EXPECT_EQ(io::GgufToHfName("output_norm.weight"), "model.norm.weight");
  EXPECT_EQ(io::GgufToHfName("token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(io::GgufToHfName("rope_freqs.weight"), "");
  EXPECT_EQ(io::HfToGgufName("model.layers.7.post_attention_layernorm.weight"), "blk.7.ffn_norm.weight");
  EXPECT_EQ(io::HfToGgufName("model.layers.0.input_layernorm.weight"), "blk.0.attn_norm.weight");
  RandomModelOptions o;
  o.arch = "qwen3";
  o.qkv_bias = true;
  o.qk_norm = true;
  for (const auto& [hf, shape] : RandomModel(o).ExpectedTensors()) {
    const std::string g = io::HfToGgufName(hf);
    ASSERT_FALSE(g.empty()) << hf;
    EXPECT_EQ(io::GgufToHfName(g), hf);
  }
}

TEST(IoGguf, HeaderBytesByHand) {
  TempDir tmp;
  io::GgufTensorBlob t{"t", {5, 3}, 0, std::vector<uint8_t>(60, 0)};  // PyTorch shape [3, 5], F32
  ASSERT_TRUE(io::WriteGgufFile(tmp / "h.gguf", {}, {t}).ok());
  const std::string b = testing::ReadBytes(tmp / "h.gguf");
  auto u32 = [&](size_t o) { uint32_t v; std::memcpy(&v, b.data() + o, 4); return v; };
  auto u64 = [&](size_t o) { uint64_t v; std::memcpy(&v, b.data() + o, 8); return v; };
  EXPECT_EQ(b.substr(0, 4), "GGUF");
  EXPECT_EQ(u32(4), 3u);    // version
  EXPECT_EQ(u64(8), 1u);    // tensor_count
  EXPECT_EQ(u64(16), 0u);   // kv_count
  EXPECT_EQ(u64(24), 1u);   // name length
  EXPECT_EQ(b[32], 't');
  EXPECT_EQ(u32(33), 2u);   // n_dims
  EXPECT_EQ(u64(37), 5u);   // ne[0] innermost
  EXPECT_EQ(u64(45), 3u);
  EXPECT_EQ(u32(53), 0u);   // F32
  EXPECT_EQ(u64(57), 0u);   // offset
  // Header ends at 65, padded to 96 (alignment 32); 60 data bytes padded to 64.
  EXPECT_EQ(b.size(), 96u + 64u);
  auto f = io::ReadGgufHeader(tmp / "h.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->data_start, 96u);
  EXPECT_EQ(f->tensors[0].TorchShape(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(f->tensors[0].nbytes, 60u);
}

TEST(IoGguf, EveryMetadataTypeRoundTrips) {
  TempDir tmp;
  auto mk = [](GgufType t) { GgufValue v; v.type = t; return v; };
  GgufValue u8 = mk(GgufType::kU8), i8 = mk(GgufType::kI8), u16 = mk(GgufType::kU16), i16 = mk(GgufType::kI16),
            u64 = mk(GgufType::kU64), i64 = mk(GgufType::kI64), f64 = mk(GgufType::kF64);
  u8.u = 250; i8.i = -100; u16.u = 65000; i16.i = -30000; u64.u = (uint64_t(1) << 40) + 3; i64.i = -(int64_t(1) << 40);
  f64.f = 0.1;
  GgufValue nested = GgufValue::Array(
      GgufType::kArray, {GgufValue::Array(GgufType::kI32, {GgufValue::I32(-1), GgufValue::I32(2)}),
                         GgufValue::Array(GgufType::kI32, {})});
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"a.u8", u8}, {"a.i8", i8}, {"a.u16", u16}, {"a.i16", i16}, {"a.u32", GgufValue::U32(4000000000u)},
      {"a.i32", GgufValue::I32(-2000000000)}, {"a.f32", GgufValue::F32(0.1f)}, {"a.bool", GgufValue::Bool(true)},
      {"a.str", GgufValue::Str("h\xc3\xa9llo \xe2\x96\x81")}, {"a.u64", u64}, {"a.i64", i64}, {"a.f64", f64},
      {"a.strs", GgufValue::Array(GgufType::kString, {GgufValue::Str(""), GgufValue::Str("x")})},
      {"a.nested", nested}, {"general.alignment", GgufValue::U32(64)}};
  io::GgufTensorBlob t1{"x", {3}, 0, std::vector<uint8_t>(12, 1)};
  io::GgufTensorBlob t2{"y", {2, 2}, 1, std::vector<uint8_t>(8, 2)};
  ASSERT_TRUE(io::WriteGgufFile(tmp / "kv.gguf", kv, {t1, t2}, 64).ok());
  auto f = io::ReadGgufHeader(tmp / "kv.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->kv.size(), kv.size());
  EXPECT_EQ(f->Find("a.u8")->u, 250u);
  EXPECT_EQ(f->Find("a.i8")->i, -100);
  EXPECT_EQ(f->Find("a.u16")->u, 65000u);
  EXPECT_EQ(f->Find("a.i16")->i, -30000);
  EXPECT_EQ(f->Find("a.u32")->u, 4000000000u);
  EXPECT_EQ(f->Find("a.i32")->i, -2000000000);
  EXPECT_EQ(f->Find("a.f32")->f, double(0.1f));
  EXPECT_EQ(f->Find("a.bool")->u, 1u);
  EXPECT_EQ(f->Find("a.str")->s, "h\xc3\xa9llo \xe2\x96\x81");
  EXPECT_EQ(f->Find("a.u64")->u, (uint64_t(1) << 40) + 3);
  EXPECT_EQ(f->Find("a.i64")->i, -(int64_t(1) << 40));
  EXPECT_EQ(f->Find("a.f64")->f, 0.1);
  EXPECT_EQ(f->Find("a.strs")->items.size(), 2u);
  EXPECT_EQ(f->Find("a.strs")->items[1].s, "x");
  const GgufValue* n = f->Find("a.nested");
  ASSERT_EQ(n->items.size(), 2u);
  EXPECT_EQ(n->items[0].elem, GgufType::kI32);
  EXPECT_EQ(n->items[0].items[0].i, -1);
  EXPECT_EQ(n->items[0].items[1].i, 2);
  EXPECT_TRUE(n->items[1].items.empty());
  EXPECT_EQ(f->alignment, 64u);
  EXPECT_EQ(f->data_start % 64, 0u);
  EXPECT_EQ(f->tensors[1].offset, 64u);  // 12 bytes padded to 64
}

struct Variant {
  const char* name;
  RandomModelOptions o;
};
std::vector<Variant> Variants() {
  std::vector<Variant> v;
  RandomModelOptions a;
  v.push_back({"llama untied", a});
  a.tied = true;
  a.seed = 2;
  v.push_back({"llama tied", a});
  RandomModelOptions q2;
  q2.arch = "qwen2";
  q2.qkv_bias = true;
  q2.tied = true;
  q2.seed = 3;
  v.push_back({"qwen2 bias tied", q2});
  RandomModelOptions q3;
  q3.arch = "qwen3";
  q3.qk_norm = true;
  q3.head_dim = 16;  // != dim / heads, like Qwen3-0.6B
  q3.seed = 4;
  v.push_back({"qwen3 qk_norm hd16", q3});
  RandomModelOptions il;  // already in adjacent-pair layout
  il.interleaved = true;
  il.qkv_bias = true;
  il.seed = 5;
  v.push_back({"llama interleaved bias", il});
  return v;
}

TEST(IoGguf, RandomModelsRoundTripF32F16Bf16) {
  TempDir tmp;
  for (const Variant& v : Variants()) {
    const Model m = RandomModel(v.o);
    for (auto [dtype, code] : {std::pair{io::FloatDtype::kF32, 0}, std::pair{io::FloatDtype::kF16, 1},
                               std::pair{io::FloatDtype::kBF16, 2}}) {
      SCOPED_TRACE(fmt::format("{} {}", v.name, io::FloatDtypeName(dtype)));
      const std::string path = tmp / "m.gguf";
      ASSERT_TRUE(io::WriteGguf(path, m, dtype).ok());
      auto back = LoadModel(path);
      ASSERT_TRUE(back.ok()) << back.status().message();
      EXPECT_EQ(back->config.rope_interleaved, v.o.arch == "llama");
      io::SetRopeLayout(&back.value(), m.config.rope_interleaved);
      ExpectConfigEq(m.config, back->config);
      ExpectWeightsEq(m, *back, code, /*dtype_1d=*/0);  // 1-D norms/biases are written F32
    }
  }
}

TEST(IoGguf, HandBuiltQuantBlocksDequantize) {
  TempDir tmp;
  // Q8_0 block: half d = 0.5 (0x3800), qs[j] = j - 16  ->  x[j] = (j - 16) * 0.5.
  std::vector<uint8_t> q8(34);
  q8[0] = 0x00;
  q8[1] = 0x38;
  for (int j = 0; j < 32; ++j) q8[2 + j] = uint8_t(int8_t(j - 16));
  // Q4_0 block: half d = 2 (0x4000), qs[j] = (j & 15) | ((15 - j) << 4): x[j] = (j - 8)·2, x[j+16] = (7 - j)·2.
  std::vector<uint8_t> q4(18);
  q4[1] = 0x40;
  for (int j = 0; j < 16; ++j) q4[2 + j] = uint8_t(j | ((15 - j) << 4));
  ASSERT_TRUE(io::WriteGgufFile(tmp / "q.gguf", {}, {{"a", {32}, 8, q8}, {"b", {32}, 2, q4}}).ok());
  auto f = io::ReadGgufHeader(tmp / "q.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  io::FileReader r;
  ASSERT_TRUE(r.Open(tmp / "q.gguf").ok());
  auto a = io::ReadGgufTensor(*f, r, f->tensors[0]);
  auto b = io::ReadGgufTensor(*f, r, f->tensors[1]);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  for (int j = 0; j < 32; ++j) EXPECT_EQ(a->data[j], (j - 16) * 0.5f);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(b->data[j], (j - 8) * 2.0f);
    EXPECT_EQ(b->data[j + 16], (7 - j) * 2.0f);
  }
  // iq2_xxs (id 16) is in the type table but cannot be dequantized: a clear error naming it.
  ASSERT_TRUE(io::WriteGgufFile(tmp / "k.gguf", {}, {{"c", {256}, 16, std::vector<uint8_t>(66)}}).ok());
  auto fk = io::ReadGgufHeader(tmp / "k.gguf");
  ASSERT_TRUE(fk.ok()) << fk.status().message();
  io::FileReader rk;
  ASSERT_TRUE(rk.Open(tmp / "k.gguf").ok());
  QL_EXPECT_ERROR(io::ReadGgufTensor(*fk, rk, fk->tensors[0]), "k.gguf", "'c'", "iq2_xxs");
}

TEST(IoGguf, Stories260KTokenizerAndWeightsRoundTrip) {
  TempDir tmp;
  auto m = io::ReadGguf(kGguf);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_TRUE(io::WriteGguf(tmp / "s.gguf", *m, io::FloatDtype::kF32).ok());
  auto back = io::ReadGguf(tmp / "s.gguf");
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectConfigEq(m->config, back->config);
  ExpectWeightsEq(*m, *back);
  const auto* a = dynamic_cast<const SpmBpeTokenizer*>(m->tokenizer.get());
  const auto* b = dynamic_cast<const SpmBpeTokenizer*>(back->tokenizer.get());
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->vocab_size(), b->vocab_size());
  for (int id = 0; id < a->vocab_size(); ++id) {
    EXPECT_EQ(a->Piece(id), b->Piece(id));
    EXPECT_EQ(a->Score(id), b->Score(id));
    EXPECT_EQ(a->Type(id), b->Type(id));
  }
  EXPECT_EQ(a->Piece(3), "<0x00>");  // README: ids 3..258 are the byte tokens
  EXPECT_EQ(a->bos_id(), 1);
  EXPECT_EQ(a->eos_id(), 2);
}

// Rebuilds a written file's pieces so a test can break one thing and write it again.
struct Parts {
  std::vector<std::pair<std::string, GgufValue>> kv;
  std::vector<io::GgufTensorBlob> blobs;
};
Parts Disassemble(const std::string& path) {
  auto f = io::ReadGgufHeader(path);
  QL_CHECK(f.ok(), "{}", f.status().message());
  const std::string bytes = testing::ReadBytes(path);
  Parts p;
  p.kv = f->kv;
  for (const io::GgufTensorInfo& t : f->tensors) {
    const char* d = bytes.data() + f->data_start + t.offset;
    p.blobs.push_back({t.name, t.ne, t.type, std::vector<uint8_t>(d, d + t.nbytes)});
  }
  return p;
}

TEST(IoGguf, BadFilesGiveClearErrors) {
  TempDir tmp;
  const std::string good = tmp / "good.gguf";
  ASSERT_TRUE(io::WriteGguf(good, RandomModel({}), io::FloatDtype::kF32).ok());
  const std::string bytes = testing::ReadBytes(good);
  auto hdr = io::ReadGgufHeader(good);
  ASSERT_TRUE(hdr.ok());
  // Truncated: in the counts, in the metadata, in the tensor infos, before the data, mid-tensor, 1 byte short.
  for (size_t n : {size_t(3), size_t(20), size_t(100), size_t(hdr->data_start - 40), size_t(hdr->data_start),
                   size_t(hdr->data_start + 1000), bytes.size() - 1}) {
    const std::string p = tmp / fmt::format("t{}.gguf", n);
    testing::Truncate(good, p, n);
    QL_EXPECT_ERROR(io::ReadGguf(p), p, "truncated");
  }
  // Wrong magic.
  const std::string magic = tmp / "magic.gguf";
  testing::WriteBytes(magic, "GGML" + bytes.substr(4));
  QL_EXPECT_ERROR(io::ReadGguf(magic), magic, "wrong magic");
  // Version 1.
  const std::string v1 = tmp / "v1.gguf";
  testing::WriteBytes(v1, bytes);
  testing::PatchPod<uint32_t>(v1, 4, 1);
  QL_EXPECT_ERROR(io::ReadGguf(v1), v1, "version 1");

  Parts parts = Disassemble(good);
  auto write = [&](const std::string& name, const Parts& p, uint32_t align = 32) {
    const std::string path = tmp / name;
    QL_CHECK(io::WriteGgufFile(path, p.kv, p.blobs, align).ok(), "write {}", name);
    return path;
  };
  // Unknown ggml type id.
  {
    Parts p = parts;
    p.blobs[3].type = 99;
    const std::string path = write("type99.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, p.blobs[3].name, "unknown ggml type id 99");
  }
  // A missing tensor.
  {
    Parts p = parts;
    auto it = std::find_if(p.blobs.begin(), p.blobs.end(), [](auto& b) { return b.name == "blk.1.ffn_up.weight"; });
    ASSERT_TRUE(it != p.blobs.end());
    p.blobs.erase(it);
    const std::string path = write("missing.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, "model.layers.1.mlp.up_proj.weight", "missing");
  }
  // Shapes that disagree with the metadata: feed_forward_length 48 -> 40.
  {
    Parts p = parts;
    for (auto& [k, v] : p.kv)
      if (k == "llama.feed_forward_length") v = GgufValue::U32(40);
    const std::string path = write("shape.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, "mlp.gate_proj.weight", "[48, 32]", "[40, 32]");
  }
  // A NaN weight.
  {
    Parts p = parts;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    auto& b = p.blobs[5];
    std::memcpy(b.data.data() + 8, &nan, 4);
    const std::string path = write("nan.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, io::GgufToHfName(b.name), "non-finite");
  }
  // Unknown tensor name, unsupported architecture, missing required key, bad alignment.
  {
    Parts p = parts;
    p.blobs.push_back({"rope_freqs.weight", {4}, 0, std::vector<uint8_t>(16)});
    const std::string path = write("extra.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, "rope_freqs.weight");
  }
  {
    Parts p = parts;
    p.kv[0].second = GgufValue::Str("gemma");
    const std::string path = write("arch.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, "gemma", "not supported");
  }
  {
    Parts p = parts;
    std::erase_if(p.kv, [](auto& kv) { return kv.first == "llama.attention.layer_norm_rms_epsilon"; });
    const std::string path = write("noeps.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, "layer_norm_rms_epsilon", "missing");
  }
  {
    Parts p = parts;
    for (auto& [k, v] : p.kv)
      if (k == "general.alignment") v = GgufValue::U32(24);
    const std::string path = write("align.gguf", p);
    QL_EXPECT_ERROR(io::ReadGguf(path), path, "general.alignment", "power of two");
  }
  // A tensor offset that is not aligned, and two tensors that overlap: patch the offset field of
  // tensor #1 in place (it follows: name, u32 n_dims, u64 ne[n_dims], u32 type).
  {
    const io::GgufTensorInfo& t1 = hdr->tensors[1];
    const size_t name_at = bytes.find(t1.name);
    ASSERT_NE(name_at, std::string::npos);
    const size_t offset_field = name_at + t1.name.size() + 4 + 8 * t1.ne.size() + 4;
    const std::string mis = tmp / "misaligned.gguf";
    testing::WriteBytes(mis, bytes);
    testing::PatchPod<uint64_t>(mis, offset_field, t1.offset + 4);
    QL_EXPECT_ERROR(io::ReadGguf(mis), mis, t1.name, "not a multiple of the alignment");
    const std::string over = tmp / "overlap.gguf";
    testing::WriteBytes(over, bytes);
    testing::PatchPod<uint64_t>(over, offset_field, hdr->tensors[0].offset + 32);
    QL_EXPECT_ERROR(io::ReadGguf(over), over, "overlap");
  }
}

// A whole model whose 2-D weights with 32-multiple rows are stored as Q8_0 (the rest F32) loads, and each
// dequantized weight is within Q8_0's rounding bound of the original: per block d = absmax/127 (fp16),
// |x - q·d| <= d/2 plus the fp16 rounding of d (|q| <= 127, relative 2^-11).
TEST(IoGguf, Q8_0ModelLoadsWithinRoundingBound) {
  TempDir tmp;
  const Model m = RandomModel({});
  ASSERT_TRUE(io::WriteGguf(tmp / "f32.gguf", m, io::FloatDtype::kF32).ok());
  Parts p = Disassemble(tmp / "f32.gguf");
  int quantized = 0;
  for (io::GgufTensorBlob& b : p.blobs) {
    if (b.ne.size() != 2 || b.ne[0] % 32 != 0) continue;
    std::vector<float> x(b.data.size() / 4);
    std::memcpy(x.data(), b.data.data(), b.data.size());
    std::vector<uint8_t> q;
    for (uint64_t r = 0; r < b.ne[1]; ++r) {
      auto row = QuantizeGgmlRow(8, x.data() + r * b.ne[0], int64_t(b.ne[0]));
      ASSERT_TRUE(row.ok()) << row.status().message();
      q.insert(q.end(), row->begin(), row->end());
    }
    b.type = 8;
    b.data = std::move(q);
    ++quantized;
  }
  EXPECT_EQ(quantized, 1 + 2 * 6 + 1);  // embedding, q/k/v/o/gate/up per layer, lm_head (down_proj rows are 48)
  ASSERT_TRUE(io::WriteGgufFile(tmp / "q8.gguf", p.kv, p.blobs).ok());
  io::CheckpointInfo info;
  auto back = io::ReadGguf(tmp / "q8.gguf", &info);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(info.tensors[0].dtype, "q8_0");
  io::SetRopeLayout(&back.value(), false);
  for (const auto& [name, t] : m.weights) {
    const Tensor& g = back->W(name);
    ASSERT_EQ(g.shape, t.shape);
    const bool q8 = t.shape.size() == 2 && t.shape[1] % 32 == 0;
    for (int64_t b0 = 0; b0 < t.numel(); b0 += 32) {
      const int64_t n = std::min<int64_t>(32, t.numel() - b0);
      float amax = 0;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(t.data[b0 + i]));
      const float d = amax / 127.0f;
      const float bound = q8 ? d * 0.5f + 127.0f * d * 0x1p-11f + 1e-7f : 0.0f;
      for (int64_t i = 0; i < n; ++i)
        ASSERT_LE(std::fabs(g.data[b0 + i] - t.data[b0 + i]), bound) << name << "[" << b0 + i << "]";
    }
  }
}

TEST(IoGguf, ReadsGgufAsWrittenByLlamaCpp) {
  // stories260K.gguf (written by llama.cpp's converter) loads with the SPM vocabulary and F32 weights.
  io::CheckpointInfo info;
  auto m = io::ReadGguf(kGguf, &info);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(info.format, "gguf v3");
  EXPECT_EQ(info.tensors.size(), 48u);
  EXPECT_EQ(info.tensors[0].stored_name, "token_embd.weight");
  EXPECT_EQ(info.tensors[0].shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(info.tensors[0].dtype, "f32");
  EXPECT_TRUE(m->config.tied_embeddings);  // output.weight is a bitwise copy
  EXPECT_EQ(m->config.bos_id, 1);
  EXPECT_EQ(m->config.eos_id, 2);
}

}  // namespace
}  // namespace ql
