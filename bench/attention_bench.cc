// One layer's causal attention products on the SmolLM2-135M shape (9 query heads in 3 KV groups,
// head_dim 64), one thread, the forward pass's work items (KV group x block of 64 queries, the
// group's 3 heads stacked): the causal kernels of kernels/attention.h against the Gemm path they
// replace (S by Gemm over the block's whole key range, softmax, P·V by Gemm), bitwise the same result
// (tests/kernels/attention_test.cc). Not a test.
//   build/ql_bench --benchmark_filter='Attention135M'
// Counter GFLOP/core-s: the causal count 2·H·hd·T·(T+1) (QKᵀ and P·V) per second of CPU time.
#include <algorithm>
#include <cmath>
#include <vector>

#include <benchmark/benchmark.h>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"

namespace ql {
namespace {

constexpr int kHeads = 9, kKv = 3, kHd = 64, kGroup = kHeads / kKv, kBlock = 64;

struct Layer {
  int T;
  std::vector<float> q, k, v;  // q [T, H*hd], k/v [T, KV*hd]
  explicit Layer(int t) : T(t), q(size_t(t) * kHeads * kHd), k(size_t(t) * kKv * kHd), v(k.size()) {
    for (size_t i = 0; i < q.size(); ++i) q[i] = float(int(i * 2654435761u % 2001) - 1000) / 1000.0f;
    for (size_t i = 0; i < k.size(); ++i) k[i] = float(int(i * 40503u % 2001) - 1000) / 1000.0f;
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(int(i * 69069u % 2001) - 1000) / 1000.0f;
  }
  double Flops() const { return 2.0 * kHeads * kHd * double(T) * (T + 1); }
};

// Runs item(g, r0, rows, qg, s, og) over every (KV group, query block) with the stacked queries in qg.
template <class Item>
void ForItems(const Layer& L, std::vector<float>& scratch, const Item& item) {
  const int m_max = kGroup * kBlock;
  scratch.resize(size_t(m_max) * (2 * kHd + L.T));
  float* qg = scratch.data();
  float* og = qg + size_t(m_max) * kHd;
  float* s = og + size_t(m_max) * kHd;
  for (int g = 0; g < kKv; ++g)
    for (int r0 = 0; r0 < L.T; r0 += kBlock) {
      const int rows = std::min(kBlock, L.T - r0);
      for (int j = 0; j < kGroup; ++j)
        for (int r = 0; r < rows; ++r)
          std::copy_n(L.q.data() + size_t(r0 + r) * kHeads * kHd + (g * kGroup + j) * kHd, kHd,
                      qg + (size_t(j) * rows + r) * kHd);
      item(g, r0, rows, qg, s, og);
    }
}

void BM_Attention135MGemm(benchmark::State& state) {
  const Layer L(int(state.range(0)));
  std::vector<float> scratch;
  const float scale = 1.0f / std::sqrt(float(kHd));
  for (auto _ : state) {
    ForItems(L, scratch, [&](int g, int r0, int rows, float* qg, float* s, float* og) {
      const int m = kGroup * rows, keys = r0 + rows;
      Gemm(m, keys, kHd, scale, qg, kHd, L.k.data() + g * kHd, kKv * kHd, BLayout::kNK, s, keys, 1);
      for (int i = 0; i < m; ++i) {
        const int valid = r0 + i % rows + 1;
        ops::Softmax(s + size_t(i) * keys, valid);
        std::fill(s + size_t(i) * keys + valid, s + size_t(i + 1) * keys, 0.0f);
      }
      Gemm(m, kHd, keys, 1.0f, s, keys, L.v.data() + g * kHd, kKv * kHd, BLayout::kKN, og, kHd, 1);
    });
    benchmark::DoNotOptimize(scratch.data());
  }
  state.counters["GFLOP/core-s"] = benchmark::Counter(L.Flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Attention135MGemm)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

void BM_Attention135MCausal(benchmark::State& state) {
  const Layer L(int(state.range(0)));
  std::vector<float> scratch;
  const float scale = 1.0f / std::sqrt(float(kHd));
  const size_t kp_floats = AttentionKeyPanelFloats(L.T, kHd);
  std::vector<float> kp(kKv * kp_floats);
  std::vector<int> valid(kGroup * kBlock);
  for (auto _ : state) {
    for (int g = 0; g < kKv; ++g)
      PackAttentionKeys(L.k.data() + g * kHd, kKv * kHd, L.T, kHd, kp.data() + g * kp_floats);
    ForItems(L, scratch, [&](int g, int r0, int rows, float* qg, float* s, float* og) {
      const int m = kGroup * rows, keys = r0 + rows;
      for (int i = 0; i < m; ++i) valid[i] = r0 + i % rows + 1;
      CausalScores(qg, kHd, m, kHd, kp.data() + g * kp_floats, keys, valid.data(), scale, s, keys);
      for (int i = 0; i < m; ++i) ops::Softmax(s + size_t(i) * keys, valid[i]);
      CausalPV(s, keys, m, valid.data(), L.v.data() + g * kHd, kKv * kHd, kHd, og, kHd);
    });
    benchmark::DoNotOptimize(scratch.data());
  }
  state.counters["GFLOP/core-s"] = benchmark::Counter(L.Flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Attention135MCausal)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

}  // namespace
}  // namespace ql
