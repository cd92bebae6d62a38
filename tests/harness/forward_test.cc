// ForwardWindow / ForwardCached / GenerateGreedy against the scalar oracle in reference_forward.h on
// small random models covering every architecture switch, plus hooks and error paths.
// Error norm: relative Frobenius error ||got - ref||_2 / ||ref||_2 over all logits, must be <= 1e-4.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/model/forward.h"
#include "harness/model/generate.h"
#include "harness/model/random_model.h"
#include "tests/harness/reference_forward.h"

namespace ql {
namespace {

using testing_ref::RelErr;
using testing_ref::Tokens;

ModelConfig SmallConfig() {  // GQA, rotate-half, untied
  ModelConfig c;
  c.dim = 48;
  c.hidden_dim = 72;
  c.n_layers = 2;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 37;
  c.rope_theta = 10000.f;
  c.norm_eps = 1e-5f;
  return c;
}

struct Case {
  std::string name;
  ModelConfig config;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({"gqa_rotate_half_untied", SmallConfig()});
  ModelConfig mha = SmallConfig();
  mha.n_heads = 4, mha.n_kv_heads = 4, mha.head_dim = 12, mha.rope_interleaved = true, mha.tied_embeddings = true;
  cases.push_back({"mha_interleaved_tied", mha});
  ModelConfig qwen2 = SmallConfig();
  qwen2.arch = "qwen2", qwen2.dim = 40, qwen2.n_heads = 4, qwen2.n_kv_heads = 2, qwen2.head_dim = 16;
  qwen2.qkv_bias = true, qwen2.tied_embeddings = true, qwen2.rope_theta = 1e6f, qwen2.norm_eps = 1e-6f;
  cases.push_back({"qkv_bias_head_dim_ne_dim_over_heads", qwen2});
  ModelConfig qwen3 = SmallConfig();
  qwen3.arch = "qwen3", qwen3.dim = 32, qwen3.n_heads = 4, qwen3.n_kv_heads = 2, qwen3.head_dim = 16;
  qwen3.qk_norm = true, qwen3.hidden_dim = 24;  // hidden < dim exercises buffer sizing
  cases.push_back({"qk_norm_gqa", qwen3});
  ModelConfig mq = SmallConfig();
  mq.n_heads = 6, mq.n_kv_heads = 1, mq.rope_interleaved = true;
  cases.push_back({"multi_query_interleaved", mq});
  cases.push_back({"stories260k_shape", Stories260KConfig()});
  return cases;
}

TEST(ForwardTest, MatchesReferenceAcrossArchitecturesAndLengths) {
  for (const Case& cs : Cases()) {
    const Model m = RandomModel(cs.config, 42);
    for (int T : {1, 2, 3, 17, 64, 65, 130}) {
      SCOPED_TRACE(cs.name + " T=" + std::to_string(T));
      const auto tok = Tokens(T, cs.config.vocab_size);
      std::vector<float> got(size_t(T) * cs.config.vocab_size);
      ASSERT_TRUE(ForwardWindow(m, tok, got.data()).ok());
      const auto ref = testing_ref::ReferenceForward(m, tok);
      EXPECT_LE(RelErr(got, ref), 1e-4);
    }
  }
}

TEST(ForwardTest, ThreadedAttentionPathMatchesReference) {
  // Attention work above forward.cc's kMinParallelFlops (5e7) runs on several threads with
  // single-threaded OpenBLAS; this shape (8 heads x 32, T = 400: ~9.5e7 flops) takes that path.
  ModelConfig c = SmallConfig();
  c.dim = 256, c.hidden_dim = 128, c.n_layers = 1, c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 32;
  c.vocab_size = 64;
  const Model m = RandomModel(c, 4);
  const auto tok = Tokens(400, c.vocab_size);
  std::vector<float> got(tok.size() * c.vocab_size);
  ASSERT_TRUE(ForwardWindow(m, tok, got.data()).ok());
  EXPECT_LE(RelErr(got, testing_ref::ReferenceForward(m, tok)), 1e-4);
}

TEST(ForwardTest, RandomLogitsAreSane) {
  // Not a correctness check of the forward pass; guards the test models' scaling: logits of order 1,
  // so the comparisons above are not dominated by one huge value or by noise around zero.
  const Model m = RandomModel(SmallConfig(), 1);
  const auto tok = Tokens(20, m.config.vocab_size);
  std::vector<float> l(20 * m.config.vocab_size);
  ASSERT_TRUE(ForwardWindow(m, tok, l.data()).ok());
  double ss = 0;
  for (float v : l) ss += double(v) * v;
  const double rms = std::sqrt(ss / l.size());
  EXPECT_GT(rms, 0.1);
  EXPECT_LT(rms, 10.0);
}

TEST(ForwardTest, RandomModelIsDeterministicAndSeeded) {
  const Model a = RandomModel(SmallConfig(), 7), b = RandomModel(SmallConfig(), 7), c = RandomModel(SmallConfig(), 8);
  EXPECT_EQ(a.W("model.layers.1.mlp.down_proj.weight").data, b.W("model.layers.1.mlp.down_proj.weight").data);
  EXPECT_NE(a.W("model.layers.1.mlp.down_proj.weight").data, c.W("model.layers.1.mlp.down_proj.weight").data);
  EXPECT_TRUE(a.Validate("random").ok());
  // std of a linear [out, in] is 1/sqrt(in): down_proj in = hidden_dim = 72.
  const auto& w = a.W("model.layers.0.mlp.down_proj.weight").data;
  double ss = 0;
  for (float v : w) ss += double(v) * v;
  EXPECT_NEAR(std::sqrt(ss / w.size()), 1 / std::sqrt(72.0), 0.1 / std::sqrt(72.0));
}

TEST(ForwardTest, SmolLM2ShapeHasPublishedParameterCount) {
  // By hand from docs/formats.md §5.2: embedding 49152·576 = 28,311,552; per layer q/o 2·576² + k/v 2·576·192 +
  // MLP 3·576·1536 + 2 norms·576 = 3,540,096, ×30; final norm 576 -> 134,515,008 (the "135M").
  EXPECT_EQ(SmolLM2_135MConfig().ParameterCount(), 134515008);
  EXPECT_TRUE(SmolLM2_135MConfig().Validate().ok());
}

TEST(ForwardTest, HooksSeeEveryLinearKvAndBlockWithRightShapes) {
  const ModelConfig c = SmallConfig();
  const Model m = RandomModel(c, 3);
  const int T = 9;
  const auto tok = Tokens(T, c.vocab_size);
  std::vector<std::string> paths;
  std::vector<int> ins, kv_layers, block_layers;
  std::vector<std::vector<float>> blocks;
  ForwardHooks hooks;
  hooks.linear_input = [&](std::string_view path, float* x, int t, int in) {
    EXPECT_EQ(t, T);
    paths.emplace_back(path);
    ins.push_back(in);
  };
  hooks.kv = [&](int layer, float* k, float* v, int t) {
    EXPECT_EQ(t, T);
    kv_layers.push_back(layer);
  };
  hooks.block_output = [&](int layer, const float* h, int t) {
    EXPECT_EQ(t, T);
    block_layers.push_back(layer);
    blocks.emplace_back(h, h + size_t(t) * c.dim);
  };
  std::vector<float> logits(size_t(T) * c.vocab_size);
  ASSERT_TRUE(ForwardWindow(m, tok, logits.data(), &hooks).ok());
  std::vector<std::string> want_paths;
  std::vector<int> want_ins;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* s : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"})
      want_paths.push_back(p + s), want_ins.push_back(c.dim);
    want_paths.push_back(p + "self_attn.o_proj"), want_ins.push_back(c.n_heads * c.head_dim);
    want_paths.push_back(p + "mlp.gate_proj"), want_ins.push_back(c.dim);
    want_paths.push_back(p + "mlp.up_proj"), want_ins.push_back(c.dim);
    want_paths.push_back(p + "mlp.down_proj"), want_ins.push_back(c.hidden_dim);
  }
  want_paths.push_back("lm_head"), want_ins.push_back(c.dim);
  EXPECT_EQ(paths, want_paths);
  EXPECT_EQ(ins, want_ins);
  EXPECT_EQ(kv_layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(block_layers, (std::vector<int>{0, 1}));
  // The block outputs are the reference's residual stream after each block.
  std::vector<std::vector<float>> ref_blocks;
  ForwardHooks ref_hooks;
  ref_hooks.block_output = [&](int, const float* h, int t) { ref_blocks.emplace_back(h, h + size_t(t) * c.dim); };
  testing_ref::ReferenceForward(m, tok, &ref_hooks);
  ASSERT_EQ(ref_blocks.size(), blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) EXPECT_LE(RelErr(blocks[i], ref_blocks[i]), 1e-4);
}

TEST(ForwardTest, StopAtInputEndsThePassAfterThatLinearsHook) {
  // For every linear: the pass stops right after its linear_input hook, having shown every linear up to
  // it the inputs a full pass shows them (bit for bit), no later hook runs and the logits are untouched.
  const ModelConfig c = SmallConfig();
  const Model m = RandomModel(c, 4);
  const int T = 9;
  const auto tok = Tokens(T, c.vocab_size);
  std::vector<std::pair<std::string, std::vector<float>>> full;
  ForwardHooks all;
  all.linear_input = [&](std::string_view path, float* x, int t, int in) {
    full.emplace_back(std::string(path), std::vector<float>(x, x + size_t(t) * in));
  };
  std::vector<float> logits(size_t(T) * c.vocab_size);
  ASSERT_TRUE(ForwardWindow(m, tok, logits.data(), &all).ok());
  ASSERT_EQ(full.size(), size_t(7 * c.n_layers + 1));
  for (size_t stop = 0; stop < full.size(); ++stop) {
    std::vector<std::pair<std::string, std::vector<float>>> seen;
    int blocks = 0;
    ForwardHooks h;
    h.stop_at_input = full[stop].first;
    h.linear_input = [&](std::string_view path, float* x, int t, int in) {
      seen.emplace_back(std::string(path), std::vector<float>(x, x + size_t(t) * in));
    };
    h.block_output = [&](int, const float*, int) { ++blocks; };
    std::vector<float> untouched(logits.size(), -7.0f);
    ASSERT_TRUE(ForwardWindow(m, tok, untouched.data(), &h).ok());
    ASSERT_EQ(seen.size(), stop + 1) << full[stop].first;
    for (size_t i = 0; i <= stop; ++i) {
      EXPECT_EQ(seen[i].first, full[i].first);
      EXPECT_EQ(seen[i].second, full[i].second) << full[i].first;  // bitwise
    }
    EXPECT_EQ(blocks, int(stop) / 7) << full[stop].first;  // the blocks completed before the stop
    EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](float v) { return v == -7.0f; }));
  }
}

TEST(ForwardTest, ModifyingHooksChangeOutputAsTheReferenceDoes) {
  const ModelConfig c = SmallConfig();
  const Model m = RandomModel(c, 5);
  const int T = 11;
  const auto tok = Tokens(T, c.vocab_size);
  std::vector<float> plain(size_t(T) * c.vocab_size), hooked(plain.size());
  ASSERT_TRUE(ForwardWindow(m, tok, plain.data()).ok());
  ForwardHooks hooks;
  // Fake-quantize the inputs of one linear to a 0.25 grid, and zero the values of layer 1's KV head 0.
  hooks.linear_input = [&](std::string_view path, float* x, int t, int in) {
    if (path != "model.layers.0.self_attn.k_proj") return;
    for (int i = 0; i < t * in; ++i) x[i] = std::round(x[i] * 4.0f) / 4.0f;
  };
  hooks.kv = [&](int layer, float* k, float* v, int t) {
    if (layer != 1) return;
    for (int i = 0; i < t; ++i) std::fill(v + size_t(i) * c.n_kv_heads * c.head_dim,
                                          v + size_t(i) * c.n_kv_heads * c.head_dim + c.head_dim, 0.0f);
  };
  ASSERT_TRUE(ForwardWindow(m, tok, hooked.data(), &hooks).ok());
  EXPECT_GT(RelErr(hooked, plain), 1e-3);  // the hooks matter
  EXPECT_LE(RelErr(hooked, testing_ref::ReferenceForward(m, tok, &hooks)), 1e-4);  // exactly as specified
}

TEST(ForwardTest, ErrorsNameTheBadValue) {
  ModelConfig c = SmallConfig();
  c.max_seq_len = 8;
  const Model m = RandomModel(c, 1);
  std::vector<float> logits(size_t(16) * c.vocab_size);
  std::vector<int> bad = {1, 2, 37, 3};
  Status st = ForwardWindow(m, bad, logits.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("token id 37"), std::string::npos) << st.message();
  bad = {1, -4};
  st = ForwardWindow(m, bad, logits.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("-4"), std::string::npos) << st.message();
  st = ForwardWindow(m, Tokens(9, c.vocab_size), logits.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("max_seq_len 8"), std::string::npos) << st.message();
  EXPECT_TRUE(ForwardWindow(m, Tokens(8, c.vocab_size), logits.data()).ok());
  EXPECT_FALSE(ForwardWindow(m, std::vector<int>{}, logits.data()).ok());
}

TEST(ForwardTest, CachedDecodingMatchesWindow) {
  for (const Case& cs : Cases()) {
    SCOPED_TRACE(cs.name);
    const ModelConfig& c = cs.config;
    const Model m = RandomModel(c, 9);
    const int T = 70;
    const auto tok = Tokens(T, c.vocab_size, 3);
    std::vector<float> full(size_t(T) * c.vocab_size);
    ASSERT_TRUE(ForwardWindow(m, tok, full.data()).ok());
    KvCache cache = KvCache::ForModel(c, T);
    std::vector<float> last(c.vocab_size);
    // Prefill 5 tokens, then one at a time; each step's logits = the window's row at that position.
    ASSERT_TRUE(ForwardCached(m, std::span<const int>(tok.data(), 5), &cache, last.data()).ok());
    EXPECT_LE(RelErr(last, std::vector<float>(full.begin() + 4 * c.vocab_size, full.begin() + 5 * c.vocab_size)), 1e-5);
    for (int t = 5; t < T; ++t) {
      ASSERT_TRUE(ForwardCached(m, std::span<const int>(tok.data() + t, 1), &cache, last.data()).ok());
      const std::vector<float> row(full.begin() + size_t(t) * c.vocab_size, full.begin() + size_t(t + 1) * c.vocab_size);
      ASSERT_LE(RelErr(last, row), 1e-5) << "position " << t;
    }
    EXPECT_EQ(cache.length, T);
    EXPECT_FALSE(ForwardCached(m, std::span<const int>(tok.data(), 1), &cache, last.data()).ok());  // full
  }
}

TEST(ForwardTest, GreedyGenerationFollowsReferenceArgmax) {
  ModelConfig c = SmallConfig();
  c.eos_id = -1;  // random weights: do not stop early
  const Model m = RandomModel(c, 11);
  auto gen = GenerateGreedy(m, {1, 5}, 12);
  ASSERT_TRUE(gen.ok()) << gen.status().message();
  ASSERT_EQ(gen->size(), 14u);
  std::vector<int> seq = {1, 5};
  for (int s = 0; s < 12; ++s) {  // recompute everything with the oracle, argmax of the last row
    const auto ref = testing_ref::ReferenceForward(m, seq);
    const float* last = ref.data() + (seq.size() - 1) * c.vocab_size;
    seq.push_back(int(std::max_element(last, last + c.vocab_size) - last));
  }
  EXPECT_EQ(*gen, seq);
  EXPECT_FALSE(GenerateGreedy(m, {}, 3).ok());
  EXPECT_FALSE(GenerateGreedy(m, {1, 999}, 3).ok());
}

}  // namespace
}  // namespace ql
