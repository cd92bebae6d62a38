// Benchmarks of the forward pass: this machine's sgemm peak (OpenBLAS, all its threads) and
// ForwardWindow tokens/s and GFLOP/s on the SmolLM2-135M (FP32 and BF16 compute) and stories260K
// shapes. Not tests. (GEMM candidates per shape: bench/gemm_bench.cc.)
//   build/ql_bench --benchmark_filter='Sgemm|Forward' --benchmark_repetitions=3
// Variants named *Cpu report rates per second of process CPU time summed over threads (GFLOP per
// core-second): on a shared machine wall time measures the other jobs, CPU time measures us.
// FLOP count of a window of T tokens (counters "GFLOP/s"):
//   linears   2·T·P_lin, P_lin = every linear weight incl. the LM head (the tied embedding counted as
//             the head, since the lookup itself is free) — what the sgemms do;
//   attention 2·L·H·hd·T·(T+1): the causal QKᵀ and P·V products, each L·H·hd·T(T+1)/2 multiply-adds.
// Norms, RoPE, softmax and SiLU are not counted (O(T·dim) and O(L·H·T²) exps).
#include <cblas.h>

#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "harness/io/llama2c.h"
#include "harness/model/forward.h"
#include "harness/model/generate.h"
#include "harness/model/random_model.h"

namespace ql {
namespace {

double WindowFlops(const ModelConfig& c, int T) {
  const double D = c.dim, F = c.hidden_dim, hd = c.head_dim, H = c.n_heads, KV = c.n_kv_heads;
  const double per_layer = D * H * hd + 2 * D * KV * hd + H * hd * D + 3 * D * F;
  const double p_lin = c.n_layers * per_layer + double(c.vocab_size) * D;
  return 2.0 * T * p_lin + 2.0 * c.n_layers * H * hd * double(T) * (T + 1);
}

void BM_SgemmPeak(benchmark::State& state) {
  const int n = int(state.range(0));
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["blas_threads"] = openblas_get_num_threads();
}
BENCHMARK(BM_SgemmPeak)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
// Same, with rates per second of process CPU time (all threads): robust when other jobs share the cores.
BENCHMARK(BM_SgemmPeak)->Name("BM_SgemmPeakCpu")->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime();

// The linears of one 135M layer at T tokens, as ForwardWindow calls them (X·Wᵀ).
void BM_SgemmShapes135M(benchmark::State& state) {
  const int T = int(state.range(0)), in = int(state.range(1)), out = int(state.range(2));
  std::vector<float> x(size_t(T) * in, 0.5f), w(size_t(out) * in, 0.25f), y(size_t(T) * out);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f, x.data(), in, w.data(), in, 0.0f, y.data(), out);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * T * in * out * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SgemmShapes135M)
    ->Args({512, 576, 576})    // q_proj, o_proj
    ->Args({512, 576, 192})    // k_proj, v_proj
    ->Args({512, 576, 1536})   // gate_proj, up_proj
    ->Args({512, 1536, 576})   // down_proj
    ->Args({512, 576, 49152})  // lm_head
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// The same shapes, computed as two single-threaded sgemms on half the rows each (one std::thread per
// half): the alternative to OpenBLAS's own threading that a row-split forward pass would use.
void BM_SgemmShapes135MRowSplit(benchmark::State& state) {
  const int T = int(state.range(0)), in = int(state.range(1)), out = int(state.range(2));
  std::vector<float> x(size_t(T) * in, 0.5f), w(size_t(out) * in, 0.25f), y(size_t(T) * out);
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
  for (auto _ : state) {
    auto half = [&](int r0, int r1) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, out, in, 1.0f, x.data() + size_t(r0) * in, in,
                  w.data(), in, 0.0f, y.data() + size_t(r0) * out, out);
    };
    std::thread other(half, T / 2, T);
    half(0, T / 2);
    other.join();
    benchmark::DoNotOptimize(y.data());
  }
  openblas_set_num_threads(saved);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * T * in * out * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SgemmShapes135MRowSplit)
    ->Args({512, 576, 576})
    ->Args({512, 576, 1536})
    ->Args({512, 1536, 576})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

const Model& Model135M() {
  static const Model* m = new Model(RandomModel(SmolLM2_135MConfig(), 1));
  return *m;
}

const Model& ModelStories() {
  static const Model* m = [] {
    const std::string dir = std::string(QL_SHARED_DIR) + "/models/stories260K/";
    auto r = io::ReadLlama2c(dir + "stories260K.bin", dir + "tok512.bin");
    return new Model(r.ok() ? std::move(r).value() : RandomModel(Stories260KConfig(), 1));
  }();
  return *m;
}

void RunWindow(benchmark::State& state, const Model& m) {
  const int T = int(state.range(0));
  std::vector<int> tokens(T);
  for (int i = 0; i < T; ++i) tokens[i] = (i * 7919 + 1) % m.config.vocab_size;
  std::vector<float> logits(size_t(T) * m.config.vocab_size);
  for (auto _ : state) {
    const Status st = ForwardWindow(m, tokens, logits.data());
    if (!st.ok()) state.SkipWithError(st.message().c_str());
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(T, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(WindowFlops(m.config, T) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Forward135M(benchmark::State& state) { RunWindow(state, Model135M()); }
BENCHMARK(BM_Forward135M)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Forward135M)->Name("BM_Forward135MCpu")->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()->MinTime(2.0);

// The BF16 compute mode (Model::matmul = kBf16) on the same weights.
const Model& Model135MBf16() {
  static const Model* m = [] {
    Model* b = new Model(Model135M());
    b->matmul = MatmulPrecision::kBf16;
    return b;
  }();
  return *m;
}
void BM_Forward135MBf16(benchmark::State& state) { RunWindow(state, Model135MBf16()); }
BENCHMARK(BM_Forward135MBf16)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Forward135MBf16)->Name("BM_Forward135MBf16Cpu")->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()->MinTime(2.0);

void BM_ForwardStories260K(benchmark::State& state) { RunWindow(state, ModelStories()); }
BENCHMARK(BM_ForwardStories260K)->Arg(256)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();

// 8 independent windows of T tokens: one after the other (each splitting its own work) vs whole windows
// on NumThreads() threads (ForwardWindows); arg 1 selects. What an evaluator of a small model gains.
void BM_ForwardStories260KWindows(benchmark::State& state) {
  const Model& m = ModelStories();
  const int T = int(state.range(0)), V = m.config.vocab_size;
  const bool parallel = state.range(1) != 0;
  std::vector<std::vector<int>> toks(8, std::vector<int>(T));
  for (int w = 0; w < 8; ++w)
    for (int i = 0; i < T; ++i) toks[w][i] = (i * 7919 + 31 * w + 1) % V;
  std::vector<std::span<const int>> windows(toks.begin(), toks.end());
  std::vector<std::vector<float>> logits(8, std::vector<float>(size_t(T) * V));
  std::vector<float*> out;
  for (auto& l : logits) out.push_back(l.data());
  for (auto _ : state) {
    Status st = Status::Ok();
    if (parallel) {
      st = ForwardWindows(m, windows, out);
    } else {
      for (int w = 0; w < 8 && st.ok(); ++w) st = ForwardWindow(m, windows[w], out[w]);
    }
    if (!st.ok()) state.SkipWithError(st.message().c_str());
  }
  state.counters["tokens/s"] = benchmark::Counter(8.0 * T, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ForwardStories260KWindows)->Args({256, 0})->Args({256, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

// Greedy decoding speed (KV cache, one token per step) after a 1-token prompt.
void BM_Decode135M(benchmark::State& state) {
  const Model& m = Model135M();
  const int steps = int(state.range(0));
  for (auto _ : state) {
    auto r = GenerateGreedy(m, {1}, steps);
    if (!r.ok()) state.SkipWithError(r.status().message().c_str());
  }
  state.counters["tokens/s"] = benchmark::Counter(steps, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Decode135M)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace ql
