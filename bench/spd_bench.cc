// GPTQ's factor on the 135M shapes: kernels/spd.h's InverseCholeskyUpper (quantlab's threads) against the
// route it replaced, Armadillo chol(inv_sympd(H), "upper") on OpenBLAS/LAPACK (one thread, as the CLI runs
// it), and the Hessian's Gram accumulation (128 tokens) against OpenBLAS dsyrk. Wall time per call:
//   build/ql_bench --benchmark_filter='BM_Spd|BM_Lapack|BM_Gram|BM_Dsyrk'
// (BM_SpdCholesky and BM_SpdInvertUpper: its two halves, each n³/3 flops.)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <armadillo>
#include <random>
#include <vector>

#include "kernels/parallel.h"
#include "kernels/spd.h"

namespace ql {
namespace {

// H = XᵀX/T + 0.01·mean(diag)·I for X ~ N(0,1) [n/3, n]: rank-deficient before damping, as a Hessian of few tokens.
std::vector<double> Hessian(int64_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  const int64_t T = n / 3;
  std::vector<float> x(size_t(T * n));
  for (float& v : x) v = g(rng);
  std::vector<double> h(size_t(n * n), 0.0);
  GramUpperAdd(x.data(), T, n, h.data(), NumThreads());
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += h[size_t(i * n + i)] / double(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) h[size_t(j * n + i)] = h[size_t(i * n + j)] += (i == j ? 0.01 * mean : 0.0);
  return h;
}

void BM_SpdInverseCholesky(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<double> h = Hessian(n);
  std::vector<double> r(h.size());
  for (auto _ : state) benchmark::DoNotOptimize(InverseCholeskyUpper(h.data(), n, r.data(), NumThreads()));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n / 3, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SpdCholesky(benchmark::State& state) {  // the first half of the factor: Cholesky of H
  const int64_t n = state.range(0);
  const std::vector<double> h = Hessian(n);
  std::vector<double> u;
  for (auto _ : state) {
    u = h;
    benchmark::DoNotOptimize(CholeskyUpper(u.data(), n, NumThreads()));
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(n) * n * n / 3, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SpdInvertUpper(benchmark::State& state) {  // the second half: the triangular inverse
  const int64_t n = state.range(0);
  std::vector<double> u = Hessian(n), v(u.size());
  CholeskyUpper(u.data(), n, NumThreads());
  for (auto _ : state) InvertUpper(u.data(), n, v.data(), NumThreads());
  state.counters["GFLOP/s"] = benchmark::Counter(double(n) * n * n / 3, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_LapackInverseCholesky(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<double> h = Hessian(n);
  const arma::mat H(h.data(), n, n);
  const int blas = openblas_get_num_threads();
  openblas_set_num_threads(1);
  arma::mat Hinv, U;
  for (auto _ : state) benchmark::DoNotOptimize(arma::inv_sympd(Hinv, H) && arma::chol(U, Hinv, "upper"));
  openblas_set_num_threads(blas);
}

std::vector<float> Tokens(int64_t T, int64_t n) {
  std::mt19937 rng(2);
  std::normal_distribution<float> g;
  std::vector<float> x(size_t(T * n));
  for (float& v : x) v = g(rng);
  return x;
}

void BM_Gram(benchmark::State& state) {
  const int64_t n = state.range(0), T = 128;
  const std::vector<float> x = Tokens(T, n);
  std::vector<double> h(size_t(n * n), 0.0);
  for (auto _ : state) GramUpperAdd(x.data(), T, n, h.data(), NumThreads());
  state.counters["GFLOP/s"] = benchmark::Counter(double(T) * n * n, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Dsyrk(benchmark::State& state) {  // what calibration.cc ran before: the window converted, then dsyrk
  const int64_t n = state.range(0), T = 128;
  const std::vector<float> x = Tokens(T, n);
  std::vector<double> h(size_t(n * n), 0.0), xd;
  const int blas = openblas_get_num_threads();
  openblas_set_num_threads(1);
  for (auto _ : state) {
    xd.assign(x.begin(), x.end());
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(n), int(T), 1.0, xd.data(), int(n), 1.0, h.data(), int(n));
  }
  openblas_set_num_threads(blas);
}

BENCHMARK(BM_SpdInverseCholesky)->Arg(576)->Arg(1536)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SpdCholesky)->Arg(576)->Arg(1536)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SpdInvertUpper)->Arg(576)->Arg(1536)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LapackInverseCholesky)->Arg(576)->Arg(1536)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Gram)->Arg(576)->Arg(1536)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Dsyrk)->Arg(576)->Arg(1536)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace ql
