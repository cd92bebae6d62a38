// Quantize / dequantize / fake-quantize throughput for one representative scheme of every format
// family, in GB/s of fp32 input ([n, n] Gaussian weights). Not a test; numbers go in reports.
//   build/ql_bench --benchmark_filter=Quant
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "kernels/quantizer.h"

namespace {

const std::vector<float>& Input(int64_t n) {  // [n, n], built once per size
  static std::vector<float> x;
  static int64_t built = 0;
  if (built != n) {
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0, 0.02f);
    x.resize(size_t(n * n));
    for (float& v : x) v = d(rng);
    built = n;
  }
  return x;
}

ql::Scheme MustParse(const std::string& s) {
  auto r = ql::ParseScheme(s);
  QL_CHECK(r.ok(), "{}", r.status().message());
  return *r;
}

void BM_Quantize(benchmark::State& state, std::string scheme) {
  const int64_t n = state.range(0);
  const std::vector<float>& x = Input(n);
  const ql::Scheme s = MustParse(scheme);
  double bpw = 0;
  for (auto _ : state) {
    auto q = ql::Quantize(s, x.data(), n, n);
    QL_CHECK(q.ok(), "{}", q.status().message());
    bpw = q->BitsPerWeight();
    benchmark::DoNotOptimize(q->Bytes());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * n * n * 4);
  state.counters["bpw"] = bpw;
}

void BM_Dequantize(benchmark::State& state, std::string scheme) {
  const int64_t n = state.range(0);
  const std::vector<float>& x = Input(n);
  auto q = ql::Quantize(MustParse(scheme), x.data(), n, n);
  QL_CHECK(q.ok(), "{}", q.status().message());
  std::vector<float> y(x.size());
  for (auto _ : state) {
    q->Dequantize(y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * n * n * 4);
}

void BM_FakeQuantize(benchmark::State& state, std::string scheme) {
  const int64_t n = state.range(0);
  const std::vector<float>& x = Input(n);
  const ql::Scheme s = MustParse(scheme);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    QL_CHECK(ql::FakeQuantize(s, x.data(), n, n, y.data()).ok());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * n * n * 4);
}

// One scheme per family: int sym/asym/odd width, ints with clipping search, scaled and unscaled
// minifloats, MX, NVFP4, NF4, GGUF legacy and k-quant blocks.
#define QL_SCHEME_BENCH(name, scheme, n)                                                      \
  BENCHMARK_CAPTURE(BM_Quantize, name, std::string(scheme))->Arg(n)->Unit(benchmark::kMillisecond);   \
  BENCHMARK_CAPTURE(BM_Dequantize, name, std::string(scheme))->Arg(n)->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(BM_FakeQuantize, name, std::string(scheme))->Arg(n)->Unit(benchmark::kMillisecond)

QL_SCHEME_BENCH(int8_channel, "int8:channel", 4096);
QL_SCHEME_BENCH(int4_g128, "int4:g128", 4096);
QL_SCHEME_BENCH(int4_g128_asym, "int4:g128:asym:s=fp16", 4096);
QL_SCHEME_BENCH(int3_g64, "int3:g64", 4096);
QL_SCHEME_BENCH(int4_g128_pct, "int4:g128:pct99.9", 1024);
QL_SCHEME_BENCH(int4_g128_mse, "int4:g128:mse", 1024);
QL_SCHEME_BENCH(bf16_cast, "bf16", 4096);
QL_SCHEME_BENCH(fp8_e4m3_tensor, "fp8_e4m3:tensor", 4096);
QL_SCHEME_BENCH(fp4_e2m1_g32_e8m0, "fp4_e2m1:g32:s=e8m0", 4096);
QL_SCHEME_BENCH(mxfp4, "mxfp4", 4096);
QL_SCHEME_BENCH(mxfp8_e4m3, "mxfp8_e4m3", 4096);
QL_SCHEME_BENCH(nvfp4, "nvfp4", 4096);
QL_SCHEME_BENCH(nf4, "nf4", 4096);
QL_SCHEME_BENCH(q8_0, "q8_0", 4096);
QL_SCHEME_BENCH(q4_0, "q4_0", 4096);
QL_SCHEME_BENCH(q4_k, "q4_k", 1024);
QL_SCHEME_BENCH(q6_k, "q6_k", 1024);

}  // namespace
