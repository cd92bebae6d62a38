// Attention-input quantization (ForwardHooks::attn_q / attn_probs, harness/quant/attn_quant.h): hook
// coverage and no-op identity, the quantizers against hand-computed values, the forward against the
// scalar oracle (tests/harness/reference_forward.h) under Q/P/KV quantization, decoding vs window, and
// the effect of coarse P quantization on stories260K.
#include "harness/quant/attn_quant.h"
#include "tests/test_paths.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "harness/io/load.h"
#include "harness/model/forward.h"
#include "harness/model/generate.h"
#include "harness/model/random_model.h"
#include "harness/quant/kv_quant.h"
#include "harness/tokenizer/tokenizer.h"
#include "tests/harness/reference_forward.h"

namespace ql {
namespace {

using testing_ref::RelErr;
using testing_ref::Tokens;

ModelConfig GqaConfig() {  // 6 query heads over 2 KV heads (group 3), rotate-half RoPE
  ModelConfig c;
  c.dim = 48, c.hidden_dim = 72, c.n_layers = 2, c.n_heads = 6, c.n_kv_heads = 2, c.head_dim = 8;
  c.vocab_size = 37, c.rope_theta = 10000.f, c.norm_eps = 1e-5f;
  return c;
}

Scheme S(const char* text) {
  auto s = ParseScheme(text);
  QL_CHECK(s.ok(), "{}", s.status().message());
  return *s;
}

// (a) Hooks that change nothing leave the logits bit for bit; every (layer, head, query) row of P is
// seen exactly once with its causal prefix summing to 1 and zeros after it. Both the serial and the
// threaded attention path (the latter with T = 400 on 8 heads x 32, above forward.cc's threshold).
TEST(AttentionQuantTest, NoOpHooksAreBitwiseIdentityAndCoverEveryRow) {
  ModelConfig big = GqaConfig();
  big.dim = 256, big.hidden_dim = 128, big.n_layers = 1, big.n_heads = 8, big.n_kv_heads = 2, big.head_dim = 32;
  big.vocab_size = 64;
  for (const auto& [c, T] : {std::pair{GqaConfig(), 70}, std::pair{big, 400}}) {
    SCOPED_TRACE(T);
    const Model m = RandomModel(c, 3);
    const auto tok = Tokens(T, c.vocab_size);
    std::vector<float> plain(size_t(T) * c.vocab_size), hooked(plain.size());
    ASSERT_TRUE(ForwardWindow(m, tok, plain.data()).ok());
    std::mutex mu;
    std::set<std::tuple<int, int, int>> seen;  // (layer, head, query position)
    int q_calls = 0, bad_rows = 0;
    ForwardHooks hooks;
    hooks.attn_q = [&](int layer, float*, int t) {
      EXPECT_EQ(t, T);
      EXPECT_EQ(layer, q_calls++);
    };
    hooks.attn_probs = [&](int layer, int head, int q_pos0, float* p, int rows, int cols) {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_GE(cols, q_pos0 + rows);
      for (int r = 0; r < rows; ++r) {
        EXPECT_TRUE(seen.insert({layer, head, q_pos0 + r}).second);
        double sum = 0;
        for (int u = 0; u < cols; ++u) {
          const float x = p[size_t(r) * cols + u];
          if (u <= q_pos0 + r) sum += x;
          else if (x != 0.0f) ++bad_rows;
        }
        if (std::abs(sum - 1.0) > 1e-5) ++bad_rows;
      }
    };
    ASSERT_TRUE(ForwardWindow(m, tok, hooked.data(), &hooks).ok());
    EXPECT_EQ(std::memcmp(plain.data(), hooked.data(), sizeof(float) * plain.size()), 0);
    EXPECT_EQ(q_calls, c.n_layers);
    EXPECT_EQ(seen.size(), size_t(c.n_layers) * c.n_heads * T);
    EXPECT_EQ(bad_rows, 0);
  }
}

// Q: one scale per (token, head); P: one per row over its causal prefix. Expected values by hand:
// int8 sym x -> round(x * 127 / amax) * amax / 127 (docs/formats.md §1.4); fp8_e4m3 noscale rounds to 3
// mantissa bits.
TEST(AttentionQuantTest, QuantizersArePerTokenHeadAndPerRow) {
  ForwardHooks hooks;
  AttentionQuantizer aq(S("int8:token"), S("fp8_e4m3:noscale"), /*n_heads=*/2, /*head_dim=*/2);
  aq.Install(&hooks);
  ASSERT_TRUE(hooks.attn_q && hooks.attn_probs);
  // q: [T=2, 2 heads x 2]; head 0 of token 0 has amax 1.0, head 1 amax 100: separate scales.
  std::vector<float> q = {1.0f, 0.3f, 100.0f, 0.3f, 2.0f, -0.5f, 0.012f, 0.02f};
  hooks.attn_q(0, q.data(), 2);
  auto int8 = [](double x, double amax) { return float(std::round(x * 127 / amax) * amax / 127); };
  const std::vector<float> want_q = {int8(1.0, 1.0),   int8(0.3, 1.0),  int8(100, 100),   int8(0.3, 100),
                                     int8(2.0, 2.0),   int8(-0.5, 2.0), int8(0.012, 0.02), int8(0.02, 0.02)};
  for (size_t i = 0; i < q.size(); ++i) EXPECT_FLOAT_EQ(q[i], want_q[i]) << i;
  EXPECT_EQ(q[3], 0.0f);  // 0.3 is below half a step of 100/127
  // p: rows for queries 1 and 2 (q_pos0 = 1), cols 3; row 0's causal prefix is 2 entries.
  std::vector<float> p = {0.3f, 0.7f, 0.0f, 0.2f, 0.5f, 0.3f};
  hooks.attn_probs(0, 0, 1, p.data(), 2, 3);
  const std::vector<float> want_p = {0.3125f, 0.6875f, 0.0f, 0.203125f, 0.5f, 0.3125f};
  for (size_t i = 0; i < p.size(); ++i) EXPECT_FLOAT_EQ(p[i], want_p[i]) << i;
  EXPECT_TRUE(aq.status().ok());

  // P per row with int8:token: the scale follows each row's own max.
  ForwardHooks h2;
  AttentionQuantizer aq2(std::nullopt, S("int8:token"), 1, 4);
  aq2.Install(&h2);
  EXPECT_FALSE(h2.attn_q);
  std::vector<float> p2 = {1.0f, 0.0f, 0.0f, 0.0f, 0.6f, 0.4f, 0.0f, 0.0f};
  h2.attn_probs(1, 0, 0, p2.data(), 2, 4);
  EXPECT_FLOAT_EQ(p2[4], 0.6f);
  EXPECT_FLOAT_EQ(p2[5], int8(0.4, 0.6));

  EXPECT_TRUE(CheckRowLocalScheme(S("int4:g16"), "q").ok());
  EXPECT_TRUE(CheckRowLocalScheme(S("mxfp4"), "q").ok());
  for (const char* bad : {"int8:tensor", "int8:channel", "int8:channel_in", "int8:b4x4"}) {
    Status st = CheckRowLocalScheme(S(bad), "attention p");
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.message().find("shares a scale across tokens"), std::string::npos) << st.message();
  }
}

// KV per head through the kv hook, as the sweep runner does.
void InstallKv(ForwardHooks* hooks, const Scheme& kv, const ModelConfig& c) {
  hooks->kv = [kv, c](int, float* k, float* v, int T) {
    QL_CHECK(FakeQuantizeKvHeads(kv, k, T, c.n_kv_heads, c.head_dim).ok(), "kv");
    QL_CHECK(FakeQuantizeKvHeads(kv, v, T, c.n_kv_heads, c.head_dim).ok(), "kv");
  };
}

// (b) The optimized forward (blocked, stacked GQA heads, padded P blocks) under Q/P/KV quantization
// equals the scalar oracle that quantizes the same operands one (head, query) row at a time.
// T = 70 spans two query blocks of 64.
TEST(AttentionQuantTest, ForwardMatchesReferenceUnderQkvpQuantization) {
  const ModelConfig c = GqaConfig();
  const Model m = RandomModel(c, 7);
  const int T = 70;
  const auto tok = Tokens(T, c.vocab_size, 1);
  std::vector<float> plain(size_t(T) * c.vocab_size);
  ASSERT_TRUE(ForwardWindow(m, tok, plain.data()).ok());
  struct Combo {
    const char *q, *p, *kv;
  };
  for (const Combo& cb : {Combo{"int8:token", "int8:token", "int8:token"},
                          Combo{"fp8_e4m3:token", "fp8_e4m3:noscale", nullptr},
                          Combo{nullptr, "int4:token:asym", nullptr}, Combo{"int4:g4", nullptr, "int4:token"}}) {
    SCOPED_TRACE(fmt::format("q={} p={} kv={}", cb.q ? cb.q : "-", cb.p ? cb.p : "-", cb.kv ? cb.kv : "-"));
    ForwardHooks hooks;
    AttentionQuantizer aq(cb.q ? std::optional(S(cb.q)) : std::nullopt, cb.p ? std::optional(S(cb.p)) : std::nullopt,
                          c.n_heads, c.head_dim);
    aq.Install(&hooks);
    if (cb.kv) InstallKv(&hooks, S(cb.kv), c);
    std::vector<float> got(plain.size());
    ASSERT_TRUE(ForwardWindow(m, tok, got.data(), &hooks).ok());
    ASSERT_TRUE(aq.status().ok()) << aq.status().message();
    EXPECT_GT(RelErr(got, plain), 1e-4);  // the quantization is applied
    EXPECT_LE(RelErr(got, testing_ref::ReferenceForward(m, tok, &hooks)), 1e-4);
  }
}

// The head and query-position arguments of attn_probs name the right rows: a hook that reweights P by
// head and position changes the forward exactly as it changes the oracle.
TEST(AttentionQuantTest, ProbsHookHeadAndPositionMatchReference) {
  const ModelConfig c = GqaConfig();
  const Model m = RandomModel(c, 8);
  const int T = 70;
  const auto tok = Tokens(T, c.vocab_size, 2);
  std::vector<float> plain(size_t(T) * c.vocab_size), got(plain.size());
  ASSERT_TRUE(ForwardWindow(m, tok, plain.data()).ok());
  ForwardHooks hooks;
  hooks.attn_probs = [](int layer, int head, int q_pos0, float* p, int rows, int cols) {
    for (int r = 0; r < rows; ++r) {
      const float w = (1.0f + 0.3f * head) * (1.0f + 0.05f * ((q_pos0 + r) % 7)) * (layer == 1 ? 0.5f : 1.0f);
      for (int u = 0; u <= q_pos0 + r; ++u) p[size_t(r) * cols + u] *= w;
    }
  };
  ASSERT_TRUE(ForwardWindow(m, tok, got.data(), &hooks).ok());
  EXPECT_GT(RelErr(got, plain), 1e-3);
  EXPECT_LE(RelErr(got, testing_ref::ReferenceForward(m, tok, &hooks)), 1e-5);
  // Writing into the causally masked part does nothing: the forward re-applies the mask.
  ForwardHooks leaky = hooks;
  leaky.attn_probs = [&](int layer, int head, int q_pos0, float* p, int rows, int cols) {
    hooks.attn_probs(layer, head, q_pos0, p, rows, cols);
    for (int r = 0; r < rows; ++r)
      for (int u = q_pos0 + r + 1; u < cols; ++u) p[size_t(r) * cols + u] = 5.0f;
  };
  std::vector<float> leaked(plain.size());
  ASSERT_TRUE(ForwardWindow(m, tok, leaked.data(), &leaky).ok());
  EXPECT_EQ(std::memcmp(leaked.data(), got.data(), sizeof(float) * got.size()), 0);
}

// (e) Token-by-token decoding through the KV cache gives the window's logits under attention
// quantization (row-local schemes see the same rows in both paths).
TEST(AttentionQuantTest, CachedDecodingMatchesWindowUnderAttentionQuantization) {
  const ModelConfig c = GqaConfig();
  const Model m = RandomModel(c, 9);
  const int T = 70;
  const auto tok = Tokens(T, c.vocab_size, 3);
  ForwardHooks hooks;
  AttentionQuantizer aq(S("int8:token"), S("fp8_e4m3:noscale"), c.n_heads, c.head_dim);
  aq.Install(&hooks);
  InstallKv(&hooks, S("int8:token"), c);
  std::vector<float> full(size_t(T) * c.vocab_size), plain(full.size());
  ASSERT_TRUE(ForwardWindow(m, tok, full.data(), &hooks).ok());
  ASSERT_TRUE(ForwardWindow(m, tok, plain.data()).ok());
  EXPECT_GT(RelErr(full, plain), 1e-4);
  KvCache cache = KvCache::ForModel(c, T);
  std::vector<float> last(c.vocab_size);
  ASSERT_TRUE(ForwardCached(m, std::span<const int>(tok.data(), 5), &cache, last.data(), &hooks).ok());
  EXPECT_LE(RelErr(last, std::vector<float>(full.begin() + 4 * c.vocab_size, full.begin() + 5 * c.vocab_size)), 1e-4);
  for (int t = 5; t < T; ++t) {
    ASSERT_TRUE(ForwardCached(m, std::span<const int>(tok.data() + t, 1), &cache, last.data(), &hooks).ok());
    const std::vector<float> row(full.begin() + size_t(t) * c.vocab_size, full.begin() + size_t(t + 1) * c.vocab_size);
    ASSERT_LE(RelErr(last, row), 1e-4) << "position " << t;
  }
  EXPECT_TRUE(aq.status().ok());
}

// (c) On the real stories260K and text: quantizing P changes the logits, and 8-bit P (int8 per row,
// fp8_e4m3 cast) costs far less than int4 per row.
TEST(AttentionQuantTest, CoarsePQuantizationHurtsMoreOnStories260K) {
  auto m = LoadModel(std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin");
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::ifstream f(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<int> tok = m->tokenizer->Encode(ss.str().substr(0, 4000), /*add_bos=*/true);
  tok.resize(std::min<size_t>(tok.size(), 200));
  const int V = m->config.vocab_size;
  std::vector<float> plain(tok.size() * V);
  ASSERT_TRUE(ForwardWindow(*m, tok, plain.data()).ok());
  auto err = [&](const char* p) {
    ForwardHooks hooks;
    AttentionQuantizer aq(std::nullopt, S(p), m->config.n_heads, m->config.head_dim);
    aq.Install(&hooks);
    std::vector<float> got(plain.size());
    EXPECT_TRUE(ForwardWindow(*m, tok, got.data(), &hooks).ok());
    return RelErr(got, plain);
  };
  const double e_int4 = err("int4:token"), e_int8 = err("int8:token"), e_fp8 = err("fp8_e4m3:noscale");
  EXPECT_GT(e_int8, 0.0);
  EXPECT_GT(e_fp8, 0.0);
  EXPECT_GT(e_int4, 1e-2);
  EXPECT_LT(e_int8, e_int4 / 4);
  EXPECT_LT(e_fp8, e_int4 / 4);
  std::printf("stories260K logits rel. error from P quantization: int4 %.3g, int8 %.3g, fp8_e4m3 %.3g\n", e_int4,
              e_int8, e_fp8);
}

}  // namespace
}  // namespace ql
