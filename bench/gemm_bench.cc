// GEMM candidates on the SmolLM2-135M linear shapes (C[T, out] = X[T, in] · W[out, in]ᵀ) and the
// 2048³ peak: quantlab's own kernels/gemm.h, OpenBLAS (cblas_sgemm, as the environment configures
// it), oneDNN matmul FP32 and BF16 (when built with libdnnl-dev; weights reordered once, outside the
// timed loop, as a deployment would) and BLIS (libblis, loaded with dlopen so its BLAS symbols do not
// clash with OpenBLAS's). Threads: NumThreads() for quantlab and BLIS, OpenBLAS's and OpenMP's own
// defaults for the others (all 2 on the workplace machines). Not tests.
//   build/ql_bench --benchmark_filter='Gemm' --benchmark_min_time=0.5
#include <cblas.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include "harness/util/cpu_time.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/parallel.h"
#ifdef QL_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace ql {
namespace {

struct Shape {
  int T, in, out;
  explicit Shape(const benchmark::State& s) : T(int(s.range(0))), in(int(s.range(1))), out(int(s.range(2))) {}
  double Flops() const { return 2.0 * T * in * out; }
};

std::vector<float> Fill(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * float(int(i * 2654435761u % 2001) - 1000) / 1000.0f;
  return v;
}

// Runs body() per iteration. Counters: GFLOP/s of wall time, and GFLOP per second of process CPU time
// summed over threads ("core-s"): on a shared machine the second measures the kernel, the first the
// machine's load too.
template <class Body>
void Timed(benchmark::State& state, const Shape& s, const Body& body) {
  const double cpu0 = ProcessCpuSeconds();
  for (auto _ : state) body();
  const double cpu = ProcessCpuSeconds() - cpu0;
  state.counters["GFLOP/s"] = benchmark::Counter(s.Flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/core-s"] = s.Flops() * 1e-9 * double(state.iterations()) / cpu;
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int T : {512, 1024})
    for (auto [in, out] : {std::pair{576, 576}, {576, 1536}, {576, 192}, {1536, 576}, {576, 49152}})
      b->Args({T, in, out});
  b->Args({2048, 2048, 2048});  // the peak
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void BM_GemmQuantlab(benchmark::State& state) {
  const Shape s(state);
  const auto x = Fill(size_t(s.T) * s.in, 1), w = Fill(size_t(s.out) * s.in, 0.1f);
  std::vector<float> y(size_t(s.T) * s.out);
  Timed(state, s, [&] {
    Gemm(s.T, s.out, s.in, 1.0f, x.data(), s.in, w.data(), s.in, BLayout::kNK, y.data(), s.out, NumThreads());
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel(GemmTarget());
}
BENCHMARK(BM_GemmQuantlab)->Apply(Shapes);

void BM_GemmQuantlabBf16(benchmark::State& state) {  // inputs rounded inside, as the forward pass calls it
  const Shape s(state);
  const auto x = Fill(size_t(s.T) * s.in, 1), w = Fill(size_t(s.out) * s.in, 0.1f);
  std::vector<float> y(size_t(s.T) * s.out);
  Timed(state, s, [&] {
    GemmBf16(s.T, s.out, s.in, 1.0f, x.data(), s.in, w.data(), s.in, BLayout::kNK, y.data(), s.out, NumThreads());
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel(HasAvx512Bf16() ? "avx512_bf16" : "emulated");
}
BENCHMARK(BM_GemmQuantlabBf16)->Apply(Shapes);

void BM_GemmOpenBlas(benchmark::State& state) {
  const Shape s(state);
  const auto x = Fill(size_t(s.T) * s.in, 1), w = Fill(size_t(s.out) * s.in, 0.1f);
  std::vector<float> y(size_t(s.T) * s.out);
  Timed(state, s, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.T, s.out, s.in, 1.0f, x.data(), s.in, w.data(), s.in,
                0.0f, y.data(), s.out);
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel(openblas_get_corename());
}
BENCHMARK(BM_GemmOpenBlas)->Apply(Shapes);

// BLIS typed API (BLISTypedAPI.md): bli_sgemm(transa, transb, m, n, k, alpha, a, rsa, csa, b, rsb, csb,
// beta, c, rsc, csc); dim_t and inc_t are int64_t; strides express Wᵀ without a transpose flag.
using BliSgemm = void (*)(int, int, int64_t, int64_t, int64_t, const float*, const float*, int64_t, int64_t,
                          const float*, int64_t, int64_t, const float*, float*, int64_t, int64_t);
using BliSetThreads = void (*)(int64_t);

void BM_GemmBlis(benchmark::State& state) {
  static void* lib = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!lib) return state.SkipWithError("libblis.so.4 not found (apt-get install libblis4)");
  const auto sgemm = reinterpret_cast<BliSgemm>(dlsym(lib, "bli_sgemm"));
  const auto set_threads = reinterpret_cast<BliSetThreads>(dlsym(lib, "bli_thread_set_num_threads"));
  if (!sgemm || !set_threads) return state.SkipWithError("libblis lacks bli_sgemm");
  set_threads(NumThreads());
  const Shape s(state);
  const auto x = Fill(size_t(s.T) * s.in, 1), w = Fill(size_t(s.out) * s.in, 0.1f);
  std::vector<float> y(size_t(s.T) * s.out);
  const float one = 1, zero = 0;
  Timed(state, s, [&] {
    sgemm(0, 0, s.T, s.out, s.in, &one, x.data(), s.in, 1, w.data(), 1, s.in, &zero, y.data(), s.out, 1);
    benchmark::DoNotOptimize(y.data());
  });
}
BENCHMARK(BM_GemmBlis)->Apply(Shapes);

#ifdef QL_HAVE_DNNL
// oneDNN matmul, src [T, in] and weights [in, out] (strides of W[out, in] read as Wᵀ) in `dt`, dst FP32.
void RunDnnl(benchmark::State& state, dnnl::memory::data_type dt) {
  using md = dnnl::memory::desc;
  const Shape s(state);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const md src_md({s.T, s.in}, dt, dnnl::memory::dims{s.in, 1});
  const md w_plain({s.in, s.out}, dnnl::memory::data_type::f32, dnnl::memory::dims{1, s.in});
  const md w_any({s.in, s.out}, dt, dnnl::memory::format_tag::any);
  const md dst_md({s.T, s.out}, dnnl::memory::data_type::f32, dnnl::memory::dims{s.out, 1});
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, dst_md), eng);
  auto x = Fill(size_t(s.T) * s.in, 1), w = Fill(size_t(s.out) * s.in, 0.1f);
  std::vector<float> y(size_t(s.T) * s.out);
  // Inputs converted (src) and reordered (weights) once, outside the timed loop.
  dnnl::memory x32(md({s.T, s.in}, dnnl::memory::data_type::f32, dnnl::memory::dims{s.in, 1}), eng, x.data());
  dnnl::memory src(src_md, eng), wts(pd.weights_desc(), eng), w32(w_plain, eng, w.data());
  dnnl::memory dst(dst_md, eng, y.data());
  dnnl::reorder(x32, src).execute(strm, x32, src);
  dnnl::reorder(w32, wts).execute(strm, w32, wts);
  strm.wait();
  dnnl::matmul mm(pd);
  Timed(state, s, [&] {
    mm.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wts}, {DNNL_ARG_DST, dst}});
    strm.wait();
    benchmark::DoNotOptimize(y.data());
  });
  state.SetLabel(pd.impl_info_str());
}
void BM_GemmDnnlF32(benchmark::State& state) { RunDnnl(state, dnnl::memory::data_type::f32); }
void BM_GemmDnnlBf16(benchmark::State& state) { RunDnnl(state, dnnl::memory::data_type::bf16); }
BENCHMARK(BM_GemmDnnlF32)->Apply(Shapes);
BENCHMARK(BM_GemmDnnlBf16)->Apply(Shapes);
#endif

}  // namespace
}  // namespace ql
