// The core's multiply-add rate from one instruction in a loop, no memory: 512-bit FP32 FMA
// (VFMADD231PS, 16 multiply-adds) against BF16 pair dot products (VDPBF16PS, 32 multiply-adds), each
// with 16 independent accumulators so latency does not limit it. One thread. What bounds the GEMMs of
// bench/gemm_bench.cc on this CPU: on a core that issues two FMAs but one VDPBF16PS per cycle, BF16
// inputs cannot beat FP32. Not tests.
//   build/ql_bench --benchmark_filter=Peak
#include <immintrin.h>

#include <benchmark/benchmark.h>

#include "kernels/gemm_bf16.h"

namespace ql {
namespace {

constexpr int kAcc = 16;
constexpr int64_t kSteps = 1 << 22;
volatile float g_seed = 0.999f;  // read at run time, so the loops cannot be folded

__attribute__((target("avx512f"))) float Sum(const __m512* acc) {
  alignas(64) float lanes[16];
  __m512 sum = acc[0];
  for (int i = 1; i < kAcc; ++i) sum = _mm512_add_ps(sum, acc[i]);
  _mm512_store_ps(lanes, sum);
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}

__attribute__((target("avx512f"))) float FmaLoop() {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512 a = _mm512_set1_ps(g_seed), b = _mm512_set1_ps(1e-3f);
  for (int64_t s = 0; s < kSteps; ++s)
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(a, acc[i], b);
  return Sum(acc);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) float Dpbf16Loop() {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(float(i) * g_seed);
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x3a833a83);
  for (int64_t s = 0; s < kSteps; ++s)
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  return Sum(acc);
}

template <float (*Loop)(), int kMacsPerInstruction>
void BM_Peak(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f") || (kMacsPerInstruction == 32 && !HasAvx512Bf16())) {
    state.SkipWithError("instruction not supported on this CPU");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(Loop());
  const double flops = 2.0 * kMacsPerInstruction * kAcc * double(kSteps) * double(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Peak<FmaLoop, 16>)->Name("BM_PeakFmaF32x16")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Peak<Dpbf16Loop, 32>)->Name("BM_PeakDpbf16x32")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ql
