// Shared helpers for the checkpoint I/O tests: a temp directory with string paths, a seeded random model,
// bitwise tensor comparison and file patching. Test-only; not part of the harness library.
#pragma once

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "harness/model/model.h"
#include "kernels/half.h"
#include "tests/temp_dir.h"

namespace ql::testing {

// A string path from `dir / "name"` (what the I/O functions take).
class TempDir {
 public:
  std::string operator/(const std::string& name) const { return dir_.sub(name); }
  std::string str() const { return dir_.str(); }

 private:
  qltest::TempDir dir_{"ql_io_test"};
};

struct RandomModelOptions {
  std::string arch = "llama";
  bool tied = false;
  bool qkv_bias = false;
  bool qk_norm = false;
  int head_dim = 8;  // dim 32 / 4 heads
  bool interleaved = false;
  int vocab = 40;
  uint32_t seed = 1;
};

// GQA model: dim 32, 2 layers, 4 heads, 2 kv heads, hidden 48, vocab 40 (by default). Values N(0, 1) with a few
// magnitudes that fp16 cannot hold exactly (so the F16/BF16 checks see real rounding).
inline Model RandomModel(const RandomModelOptions& o) {
  Model m;
  ModelConfig& c = m.config;
  c.arch = o.arch;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = o.head_dim;
  c.vocab_size = o.vocab;
  c.max_seq_len = 64;
  c.rope_theta = 500000.0f;
  c.norm_eps = 1e-6f;
  c.rope_interleaved = o.interleaved;
  c.tied_embeddings = o.tied;
  c.qkv_bias = o.qkv_bias;
  c.qk_norm = o.qk_norm;
  c.bos_id = 1;
  c.eos_id = 2;
  std::mt19937 rng(o.seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& [name, shape] : m.ExpectedTensors()) {
    Tensor t;
    t.shape = shape;
    t.data.resize(size_t(t.numel()));
    for (float& v : t.data) v = nd(rng);
    t.data[0] = 1.0f / 3.0f;        // not exact in fp16 or bf16
    if (t.data.size() > 1) t.data[1] = 1e-7f;  // fp16 subnormal range
    m.weights[name] = std::move(t);
  }
  return m;
}

inline void ExpectConfigEq(const ModelConfig& a, const ModelConfig& b, bool compare_seq_len = true) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.hidden_dim, b.hidden_dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  if (compare_seq_len) {
    EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  }
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_interleaved, b.rope_interleaved);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.bos_id, b.bos_id);
  EXPECT_EQ(a.eos_id, b.eos_id);
}

// Expected value after storing in a dtype: 0 = exact (fp32), 1 = fp16 RNE, 2 = bf16 RNE.
inline float StoreRound(float v, int dtype) {
  if (dtype == 1) return F16ToF32(F32ToF16(v));
  if (dtype == 2) return Bf16ToF32(F32ToBf16(v));
  return v;
}

// Every tensor of `want` is in `got` with the same shape and bit-identical values after rounding
// through `dtype` (`dtype_1d` for 1-D tensors); no extra tensors.
inline void ExpectWeightsEq(const Model& want, const Model& got, int dtype = 0, int dtype_1d = 0) {
  EXPECT_EQ(want.weights.size(), got.weights.size());
  for (const auto& [name, t] : want.weights) {
    auto it = got.weights.find(name);
    ASSERT_TRUE(it != got.weights.end()) << "missing " << name;
    ASSERT_EQ(t.shape, it->second.shape) << name;
    const int d = t.shape.size() >= 2 ? dtype : dtype_1d;
    size_t mismatches = 0;
    for (size_t i = 0; i < t.data.size(); ++i) {
      const float e = StoreRound(t.data[i], d);
      if (F32Bits(e) != F32Bits(it->second.data[i]) && ++mismatches <= 3)
        ADD_FAILURE() << name << "[" << i << "]: want " << e << " got " << it->second.data[i];
    }
    EXPECT_EQ(mismatches, 0u) << name;
  }
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}
inline void Truncate(const std::string& src, const std::string& dst, size_t n) {
  WriteBytes(dst, ReadBytes(src).substr(0, n));
}
template <typename T>
inline void PatchPod(const std::string& path, size_t offset, T v) {
  std::string b = ReadBytes(path);
  std::memcpy(b.data() + offset, &v, sizeof(T));
  WriteBytes(path, b);
}

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const StatusOr<T>& s) { return s.status(); }

// The expression fails and its message contains every given substring.
#define QL_EXPECT_ERROR(expr, ...)                                                   \
  do {                                                                               \
    auto _r = (expr);                                                                \
    ASSERT_FALSE(_r.ok()) << "expected an error from " #expr;                        \
    const std::string& _m = ::ql::testing::StatusOf(_r).message();                   \
    for (const std::string& _s : std::vector<std::string>{__VA_ARGS__})              \
      EXPECT_NE(_m.find(_s), std::string::npos) << "message '" << _m << "' lacks '" << _s << "'"; \
  } while (0)

}  // namespace ql::testing
