// Throughput of the scalar element codecs (Encode / Decode through the ElementCodec interface).
// Not a test: numbers only. Run: build/ql_bench --benchmark_filter=ElementCodec
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "kernels/format.h"

namespace {

std::vector<float> Inputs(float scale) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, scale);
  std::vector<float> x(4096);
  for (float& v : x) v = n(rng);
  return x;
}

void BM_ElementCodecEncode(benchmark::State& state, std::string name) {
  const ql::ElementCodec* c = *ql::FindElementCodec(name);
  const std::vector<float> x = Inputs(c->max_finite() / 4);
  std::vector<uint32_t> q(x.size());
  for (auto _ : state) {
    for (size_t i = 0; i < x.size(); ++i) q[i] = c->Encode(x[i]);
    benchmark::DoNotOptimize(q.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(x.size()));
}

void BM_ElementCodecDecode(benchmark::State& state, std::string name) {
  const ql::ElementCodec* c = *ql::FindElementCodec(name);
  const std::vector<float> x = Inputs(c->max_finite() / 4);
  std::vector<uint32_t> q(x.size());
  for (size_t i = 0; i < x.size(); ++i) q[i] = c->Encode(x[i]);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    for (size_t i = 0; i < q.size(); ++i) y[i] = c->Decode(q[i]);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(x.size()));
}

BENCHMARK_CAPTURE(BM_ElementCodecEncode, int4, std::string("int4"));
BENCHMARK_CAPTURE(BM_ElementCodecEncode, fp8_e4m3, std::string("fp8_e4m3"));
BENCHMARK_CAPTURE(BM_ElementCodecEncode, fp4_e2m1, std::string("fp4_e2m1"));
BENCHMARK_CAPTURE(BM_ElementCodecEncode, bf16, std::string("bf16"));
BENCHMARK_CAPTURE(BM_ElementCodecEncode, e8m10_ieee, std::string("e8m10_ieee"));
BENCHMARK_CAPTURE(BM_ElementCodecDecode, fp8_e4m3, std::string("fp8_e4m3"));
BENCHMARK_CAPTURE(BM_ElementCodecDecode, e8m10_ieee, std::string("e8m10_ieee"));

}  // namespace
