// The forward pass gives bitwise the same logits for 1 and 2 threads (quantlab's NumThreads, OpenMP
// and OpenBLAS thread counts all switched together), on a random model whose linears and attention
// are large enough to run threaded and on the trained stories260K, plain and with the hooks that
// amplify last-bit differences: per-token int8 activation fake-quant on every linear input (a flip
// of one rounding moves a value by a whole step), int4 KV-cache and int8/fp8 attention Q/P; and in
// the BF16 compute mode.
#include <cblas.h>
#include "tests/test_paths.h"

#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/io/llama2c.h"
#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "harness/quant/attn_quant.h"
#include "harness/quant/kv_quant.h"
#include "kernels/parallel.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"
#include "tests/harness/reference_forward.h"

namespace ql {
namespace {

void SetAllThreadCounts(int n) {
  SetNumThreads(n);
  openblas_set_num_threads(n);
}

struct ThreadCountGuard {  // restores the process's thread counts
  int blas = openblas_get_num_threads();
  ~ThreadCountGuard() {
    SetNumThreads(0);
    openblas_set_num_threads(blas);
  }
};

Scheme S(const char* text) {
  auto s = ParseScheme(text);
  QL_CHECK(s.ok(), "{}", s.status().message());
  return *s;
}

// Hooks as the sweep runner installs them (harness/sweep/runner.cc): every linear input fake-quantized
// per token, K and V per head, attention Q per token and P per row.
struct QuantHooks {
  Scheme act = S("int8:token"), kv = S("int4:g32");
  std::unique_ptr<AttentionQuantizer> attn;
  ForwardHooks hooks;
  explicit QuantHooks(const ModelConfig& c) {
    attn = std::make_unique<AttentionQuantizer>(S("int8:token"), S("fp8_e4m3:noscale"), c.n_heads, c.head_dim);
    attn->Install(&hooks);
    hooks.linear_input = [this](std::string_view, float* x, int T, int in) {
      std::vector<float> out(size_t(T) * in);
      QL_CHECK(FakeQuantize(act, x, T, in, out.data()).ok(), "act");
      std::memcpy(x, out.data(), sizeof(float) * out.size());
    };
    hooks.kv = [this, c](int, float* k, float* v, int T) {
      QL_CHECK(FakeQuantizeKvHeads(kv, k, T, c.n_kv_heads, c.head_dim).ok(), "kv");
      QL_CHECK(FakeQuantizeKvHeads(kv, v, T, c.n_kv_heads, c.head_dim).ok(), "kv");
    };
  }
};

std::vector<float> Logits(const Model& m, const std::vector<int>& tokens, const ForwardHooks* hooks, int threads) {
  SetAllThreadCounts(threads);
  std::vector<float> logits(tokens.size() * size_t(m.config.vocab_size));
  const Status st = ForwardWindow(m, tokens, logits.data(), hooks);
  QL_CHECK(st.ok(), "{}", st.message());
  return logits;
}

void ExpectSameBitsFor1And2Threads(const Model& m, int T) {
  ThreadCountGuard guard;
  const std::vector<int> tokens = testing_ref::Tokens(T, m.config.vocab_size);
  for (bool hooked : {false, true}) {
    SCOPED_TRACE(hooked ? "with activation/KV/attention fake-quant hooks" : "no hooks");
    QuantHooks q(m.config);
    const ForwardHooks* hooks = hooked ? &q.hooks : nullptr;
    const std::vector<float> one = Logits(m, tokens, hooks, 1);
    const std::vector<float> two = Logits(m, tokens, hooks, 2);
    ASSERT_EQ(one.size(), two.size());
    size_t differ = 0;
    for (size_t i = 0; i < one.size(); ++i) differ += std::memcmp(&one[i], &two[i], sizeof(float)) != 0;
    EXPECT_EQ(differ, 0u) << "of " << one.size() << " logits";
    EXPECT_TRUE(q.attn->status().ok()) << q.attn->status().message();
  }
}

TEST(ForwardDeterminismTest, RandomModelBitwiseEqualFor1And2Threads) {
  // Every linear above gemm.cc's single-thread threshold (4e6 flops) with several column blocks, and
  // attention above forward.cc's kMinParallelFlops (5e7): both run on 2 threads when allowed.
  ModelConfig c;
  c.dim = 256, c.hidden_dim = 640, c.n_layers = 2, c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 32;
  c.vocab_size = 3000, c.rope_theta = 10000.f, c.norm_eps = 1e-5f;
  ExpectSameBitsFor1And2Threads(RandomModel(c, 7), 400);
}

TEST(ForwardDeterminismTest, Bf16ComputeBitwiseEqualFor1And2Threads) {
  ModelConfig c;
  c.dim = 256, c.hidden_dim = 640, c.n_layers = 2, c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 32;
  c.vocab_size = 3000, c.rope_theta = 10000.f, c.norm_eps = 1e-5f;
  Model m = RandomModel(c, 8);
  m.matmul = MatmulPrecision::kBf16;
  ExpectSameBitsFor1And2Threads(m, 400);
}

TEST(ForwardDeterminismTest, Stories260KBitwiseEqualFor1And2Threads) {
  const std::string dir = std::string(QL_SHARED_DIR) + "/models/stories260K/";
  auto m = io::ReadLlama2c(dir + "stories260K.bin", dir + "tok512.bin");
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExpectSameBitsFor1And2Threads(*m, 256);
}

TEST(ForwardDeterminismTest, WindowsInParallelEqualSequentialWindows) {
  // stories260K is too small to split one window; ForwardWindows runs whole windows on 2 threads.
  const std::string dir = std::string(QL_SHARED_DIR) + "/models/stories260K/";
  auto m = io::ReadLlama2c(dir + "stories260K.bin", dir + "tok512.bin");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int V = m->config.vocab_size;
  std::vector<std::vector<int>> toks;
  for (int w = 0; w < 5; ++w) toks.push_back(testing_ref::Tokens(64 + 37 * w, V, w));
  std::vector<std::span<const int>> windows(toks.begin(), toks.end());
  QuantHooks q(m->config);  // the hooks are thread-safe: every call quantizes its own rows
  const ForwardHooks* hooked = &q.hooks;
  for (const ForwardHooks* hooks : {static_cast<const ForwardHooks*>(nullptr), hooked}) {
    std::vector<std::vector<float>> seq, par;
    for (const auto& t : toks) {
      seq.emplace_back(t.size() * V);
      par.emplace_back(t.size() * V);
      ASSERT_TRUE(ForwardWindow(*m, t, seq.back().data(), hooks).ok());
    }
    std::vector<float*> out;
    for (auto& p : par) out.push_back(p.data());
    ASSERT_TRUE(ForwardWindows(*m, windows, out, hooks, 2).ok());
    for (size_t w = 0; w < toks.size(); ++w)
      EXPECT_EQ(0, std::memcmp(seq[w].data(), par[w].data(), sizeof(float) * seq[w].size())) << "window " << w;
  }
  std::vector<float*> too_few(2);
  const Status st = ForwardWindows(*m, windows, too_few);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("5 windows but 2 logits buffers"), std::string::npos) << st.message();
}

TEST(ForwardDeterminismTest, ParallelRegionsDoNotNest) {
  ThreadCountGuard guard;
  SetNumThreads(2);
  std::vector<int> inner(4, -1);
  ParallelFor(4, 2, [&](int i, int) { inner[i] = NumThreads(); });
  for (int n : inner) EXPECT_EQ(n, 1);
  EXPECT_EQ(NumThreads(), 2);
}

}  // namespace
}  // namespace ql
