// Independent windows on several threads (ForwardWindowsEach, used by ComputeBaseline and
// EvaluateAgainstBaseline when one window cannot fill the cores): bitwise the same baseline and the
// same per-token records as one window after another, with thread-safe activation, KV and attention
// hooks; when the split is taken; errors name their window.
#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "datasets/protocol.h"
#include "harness/eval/baseline.h"
#include "harness/eval/evaluator.h"
#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "harness/quant/attn_quant.h"
#include "harness/quant/kv_quant.h"
#include "kernels/parallel.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

// Restores the default thread count when a test ends.
struct ThreadsGuard {
  ~ThreadsGuard() { SetNumThreads(0); }
};

std::vector<Window> RandomWindows(const ModelConfig& c, int ctx, int chunks, uint32_t seed) {
  std::vector<int> toks(size_t(ctx) * std::max(chunks, 2) + 7);  // the llama.cpp protocol wants >= 2 windows of text
  uint32_t x = seed;
  for (int& t : toks) {
    x = x * 1664525u + 1013904223u;
    t = int((x >> 8) % uint32_t(c.vocab_size));
  }
  auto spec = ProtocolSpec::Parse("llamacpp:ctx" + std::to_string(ctx) + ":chunks" + std::to_string(chunks));
  QL_CHECK(spec.ok(), "{}", spec.status().message());
  auto w = BuildWindows(*spec, toks, 1);
  QL_CHECK(w.ok() && int(w->size()) == chunks, "windows");
  return *w;
}

bool SameBits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}
template <class T>
bool SameBits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TEST(EvalWindows, SplitOnlyWhenOneWindowCannotFillTheCores) {
  ThreadsGuard g;
  SetNumThreads(2);
  EXPECT_EQ(WindowThreads(Stories260KConfig(), 512, 1580), 2);
  EXPECT_EQ(WindowThreads(Stories260KConfig(), 512, 1), 1);       // one window: nothing to split
  EXPECT_EQ(WindowThreads(SmolLM2_135MConfig(), 512, 8), 1);     // 2·512·576·1536 flops fill both cores
  SetNumThreads(1);
  EXPECT_EQ(WindowThreads(Stories260KConfig(), 512, 1580), 1);
}

TEST(EvalWindows, BaselineBitwiseTheSameAtOneAndTwoThreads) {
  ThreadsGuard g;
  const Model m = RandomModel(Stories260KConfig(), 3);
  const std::vector<Window> windows = RandomWindows(m.config, 96, 5, 11);
  for (int top_k : {0, 16}) {
    SetNumThreads(1);
    auto b1 = ComputeBaseline(m, windows, top_k);
    SetNumThreads(2);
    ASSERT_EQ(WindowThreads(m.config, 96, 5), 2);
    auto b2 = ComputeBaseline(m, windows, top_k);
    ASSERT_TRUE(b1.ok() && b2.ok());
    EXPECT_EQ(b1->n(), CountScored(windows));
    EXPECT_TRUE(SameBits(b1->nll, b2->nll)) << top_k;
    EXPECT_TRUE(SameBits(b1->top1, b2->top1)) << top_k;
    EXPECT_TRUE(SameBits(b1->logp, b2->logp)) << top_k;
    EXPECT_TRUE(SameBits(b1->top_idx, b2->top_idx)) << top_k;
    EXPECT_TRUE(SameBits(b1->top_logp, b2->top_logp)) << top_k;
    EXPECT_EQ(top_k == 0 ? b1->logp.size() : b1->top_idx.size(), size_t(b1->n()) * (top_k == 0 ? 512 : top_k));
  }
}

// Activation (int8 per token), KV-cache (int8 per token and head) and attention (Q and P) fake
// quantization hooks, all pure or locked, as the cell pipeline installs them.
struct QuantHooks {
  Scheme act = *ParseScheme("int8:token");
  Scheme kv = *ParseScheme("int8:token");
  AttentionQuantizer attn;
  ForwardHooks hooks;
  explicit QuantHooks(const ModelConfig& c) : attn(*ParseScheme("int8:token"), *ParseScheme("int8:token"), c.n_heads, c.head_dim) {
    attn.Install(&hooks);
    hooks.linear_input = [this](std::string_view, float* x, int T, int in) {
      std::vector<float> out(size_t(T) * in);
      QL_CHECK(FakeQuantize(act, x, T, in, out.data()).ok());
      std::copy(out.begin(), out.end(), x);
    };
    const int kvh = c.n_kv_heads, hd = c.head_dim;
    hooks.kv = [this, kvh, hd](int, float* k, float* v, int T) {
      QL_CHECK(FakeQuantizeKvHeads(kv, k, T, kvh, hd).ok() && FakeQuantizeKvHeads(kv, v, T, kvh, hd).ok());
    };
  }
};

TEST(EvalWindows, RecordsWithHooksBitwiseTheSameAtOneAndTwoThreads) {
  ThreadsGuard g;
  const Model m = RandomModel(Stories260KConfig(), 5);
  const std::vector<Window> windows = RandomWindows(m.config, 80, 6, 17);
  SetNumThreads(1);
  const Baseline base = *ComputeBaseline(m, windows, 0);
  Model q = m;  // a weight "cell": int4 per group of 32 on every linear
  for (const std::string& mod : q.LinearModules())
    if (q.Has(mod + ".weight")) {
      Tensor& t = q.W(mod + ".weight");
      ASSERT_TRUE(FakeQuantize(*ParseScheme("int4:g32"), t.data.data(), t.rows(), t.cols(), t.data.data()).ok());
    }
  QuantHooks h1(m.config), h2(m.config);
  auto r1 = EvaluateAgainstBaseline(q, windows, base, &h1.hooks);
  SetNumThreads(2);
  auto r2 = EvaluateAgainstBaseline(q, windows, base, &h2.hooks);
  ASSERT_TRUE(r1.ok() && r2.ok());
  ASSERT_EQ(r1->size(), base.n());
  EXPECT_TRUE(SameBits(r1->nll_base, r2->nll_base));
  EXPECT_TRUE(SameBits(r1->nll_quant, r2->nll_quant));
  EXPECT_TRUE(SameBits(r1->kld, r2->kld));
  EXPECT_TRUE(SameBits(r1->p_diff, r2->p_diff));
  EXPECT_TRUE(SameBits(r1->same_top, r2->same_top));
  EXPECT_TRUE(h1.attn.status().ok() && h2.attn.status().ok());
  // The hooks did something: the quantized model's records are not the baseline's.
  EXPECT_FALSE(SameBits(r1->nll_base, r1->nll_quant));
  double kld = 0;
  for (double v : r2->kld) kld += v;
  EXPECT_GT(kld, 0);
}

// One forward per window: EvaluateCell's records and layer errors are those of EvaluateAgainstBaseline
// and LayerOutputErrors (which re-runs the reference and the test model), bit for bit.
TEST(EvalWindows, EvaluateCellIsTheTwoPassesInOne) {
  ThreadsGuard g;
  const Model m = RandomModel(Stories260KConfig(), 7);
  const std::vector<Window> windows = RandomWindows(m.config, 64, 5, 23);
  const Baseline base = *ComputeBaseline(m, windows, 8);
  Model q = m;
  for (const std::string& mod : q.LinearModules())
    if (q.Has(mod + ".weight")) {
      Tensor& t = q.W(mod + ".weight");
      ASSERT_TRUE(FakeQuantize(*ParseScheme("int4:g32"), t.data.data(), t.rows(), t.cols(), t.data.data()).ok());
    }
  // A stand-in for a rotation's basis map: every stream scaled by -0.5 (exact in binary).
  const std::function<void(float*, int, int)> basis = [](float* h, int T, int D) {
    for (size_t i = 0; i < size_t(T) * D; ++i) h[i] *= -0.5f;
  };
  for (int threads : {1, 2})
    for (int n_layer_windows : {1, 2})
      for (bool mapped : {false, true}) {
        SetNumThreads(threads);
        const auto f = mapped ? basis : std::function<void(float*, int, int)>{};
        QuantHooks h1(m.config), h2(m.config);
        auto records = EvaluateAgainstBaseline(q, windows, base, &h1.hooks);
        auto layers = LayerOutputErrors(m, q, windows, n_layer_windows, &h1.hooks, f);
        auto ref = CaptureBlockOutputs(m, windows, n_layer_windows);
        ASSERT_TRUE(records.ok() && layers.ok() && ref.ok());
        ASSERT_EQ(ref->h.size(), size_t(n_layer_windows));
        EXPECT_EQ(ref->bytes(), size_t(n_layer_windows) * m.config.n_layers * 64 * m.config.dim * sizeof(float));
        auto e = EvaluateCell(q, windows, base, &h2.hooks, *ref, f);
        ASSERT_TRUE(e.ok()) << e.status().message();
        const std::string at = fmt::format("threads {} windows {} mapped {}", threads, n_layer_windows, mapped);
        EXPECT_TRUE(SameBits(records->nll_quant, e->records.nll_quant)) << at;
        EXPECT_TRUE(SameBits(records->kld, e->records.kld)) << at;
        EXPECT_TRUE(SameBits(records->same_top, e->records.same_top)) << at;
        ASSERT_EQ(layers->size(), e->layers.size());
        for (size_t l = 0; l < layers->size(); ++l) {
          EXPECT_GT((*layers)[l].mse, 0) << at;
          EXPECT_EQ((*layers)[l].n, e->layers[l].n) << at;
          EXPECT_EQ((*layers)[l].mse, e->layers[l].mse) << at << " layer " << l;
          EXPECT_EQ((*layers)[l].rel_mse, e->layers[l].rel_mse) << at << " layer " << l;
          EXPECT_EQ((*layers)[l].max_abs, e->layers[l].max_abs) << at << " layer " << l;
        }
      }
}

// One window of a large vocabulary: the window is not split, its scored rows are (log-softmax,
// top-k sort and KLD on two threads, 80 rows x 16384 > the threaded minimum), still bitwise.
TEST(EvalWindows, RowsOfOneWindowScoredInParallelBitwise) {
  ThreadsGuard g;
  ModelConfig c = Stories260KConfig();
  c.vocab_size = 16384;
  const Model m = RandomModel(c, 9);
  const std::vector<Window> windows = RandomWindows(c, 160, 1, 29);
  ASSERT_EQ(windows[0].score_end - windows[0].score_begin, 79);
  Model q = m;
  Tensor& t = q.W("model.layers.0.mlp.down_proj.weight");
  ASSERT_TRUE(FakeQuantize(*ParseScheme("int4:g32"), t.data.data(), t.rows(), t.cols(), t.data.data()).ok());
  for (int top_k : {0, 64}) {
    SetNumThreads(1);
    auto b1 = ComputeBaseline(m, windows, top_k);
    ASSERT_TRUE(b1.ok());
    auto r1 = EvaluateAgainstBaseline(q, windows, *b1);
    SetNumThreads(2);
    auto b2 = ComputeBaseline(m, windows, top_k);
    ASSERT_TRUE(b2.ok());
    auto r2 = EvaluateAgainstBaseline(q, windows, *b1);
    ASSERT_TRUE(r1.ok() && r2.ok());
    EXPECT_TRUE(SameBits(b1->nll, b2->nll) && SameBits(b1->top1, b2->top1)) << top_k;
    EXPECT_TRUE(SameBits(b1->logp, b2->logp) && SameBits(b1->top_idx, b2->top_idx)) << top_k;
    EXPECT_TRUE(SameBits(b1->top_logp, b2->top_logp)) << top_k;
    EXPECT_TRUE(SameBits(r1->nll_quant, r2->nll_quant) && SameBits(r1->kld, r2->kld)) << top_k;
    EXPECT_TRUE(SameBits(r1->same_top, r2->same_top)) << top_k;
    double kld = 0;
    for (double v : r2->kld) kld += v;
    EXPECT_GT(kld, 0) << top_k;
  }
}

TEST(EvalWindows, ErrorsNameTheirWindow) {
  const Model m = RandomModel(Stories260KConfig(), 1);
  std::vector<int> good(16, 3), bad(16, 3);
  bad[4] = m.config.vocab_size;  // outside the vocabulary
  const std::vector<std::span<const int>> windows = {good, bad, good};
  int consumed = 0;
  Status st = ForwardWindowsEach(m, windows, nullptr, 1, [&](int, int, const float*) {
    ++consumed;
    return Status::Ok();
  });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("window 1:"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("outside the vocabulary"), std::string::npos) << st.message();
  EXPECT_EQ(consumed, 2);  // the good windows were still consumed
  const std::vector<std::span<const int>> ok = {good, good};
  st = ForwardWindowsEach(m, ok, nullptr, 2, [&](int i, int, const float*) {
    return i == 1 ? Status::Error("consumer says no") : Status::Ok();
  });
  EXPECT_EQ(st.message(), "window 1: consumer says no");
}

}  // namespace
}  // namespace ql
