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

#include "kernels/gemm.h"
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

void Report(benchmark::State& state, const Shape& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(s.Flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
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
  for (auto _ : state) {
    Gemm(s.T, s.out, s.in, 1.0f, x.data(), s.in, w.data(), s.in, BLayout::kNK, y.data(), s.out, NumThreads());
    benchmark::DoNotOptimize(y.data());
  }
  Report(state, s);
  state.SetLabel(GemmTarget());
}
BENCHMARK(BM_GemmQuantlab)->Apply(Shapes);

void BM_GemmOpenBlas(benchmark::State& state) {
  const Shape s(state);
  const auto x = Fill(size_t(s.T) * s.in, 1), w = Fill(size_t(s.out) * s.in, 0.1f);
  std::vector<float> y(size_t(s.T) * s.out);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.T, s.out, s.in, 1.0f, x.data(), s.in, w.data(), s.in,
                0.0f, y.data(), s.out);
    benchmark::DoNotOptimize(y.data());
  }
  Report(state, s);
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
  for (auto _ : state) {
    sgemm(0, 0, s.T, s.out, s.in, &one, x.data(), s.in, 1, w.data(), 1, s.in, &zero, y.data(), s.out, 1);
    benchmark::DoNotOptimize(y.data());
  }
  Report(state, s);
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
  for (auto _ : state) {
    mm.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wts}, {DNNL_ARG_DST, dst}});
    strm.wait();
    benchmark::DoNotOptimize(y.data());
  }
  Report(state, s);
  state.SetLabel(pd.impl_info_str());
}
void BM_GemmDnnlF32(benchmark::State& state) { RunDnnl(state, dnnl::memory::data_type::f32); }
void BM_GemmDnnlBf16(benchmark::State& state) { RunDnnl(state, dnnl::memory::data_type::bf16); }
BENCHMARK(BM_GemmDnnlF32)->Apply(Shapes);
BENCHMARK(BM_GemmDnnlBf16)->Apply(Shapes);
#endif

}  // namespace
}  // namespace ql
