// Throughput of the scalar reference block codecs (Quantize / Dequantize of a [256, 4096] tensor).
// Not a test: numbers only. Run: build/ql_bench --benchmark_filter=BlockCodec
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "kernels/format.h"

namespace {

constexpr int64_t kRows = 256, kCols = 4096;

std::vector<float> Weights() {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 0.02f);
  std::vector<float> x(size_t(kRows * kCols));  // [rows, cols]
  for (float& v : x) v = n(rng);
  return x;
}

void BM_BlockCodecQuantize(benchmark::State& state, std::string name) {
  const ql::BlockCodec* c = *ql::FindBlockCodec(name);
  const std::vector<float> x = Weights();
  for (auto _ : state) {
    auto p = c->Quantize(x.data(), kRows, kCols, {});
    benchmark::DoNotOptimize(p->bytes.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kRows * kCols);
}

void BM_BlockCodecDequantize(benchmark::State& state, std::string name) {
  const ql::BlockCodec* c = *ql::FindBlockCodec(name);
  const std::vector<float> x = Weights();
  const ql::PackedBlocks p = *c->Quantize(x.data(), kRows, kCols, {});
  std::vector<float> y(x.size());
  for (auto _ : state) {
    c->Dequantize(p, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kRows * kCols);
}

BENCHMARK_CAPTURE(BM_BlockCodecQuantize, mxfp8_e4m3, std::string("mxfp8_e4m3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecQuantize, mxfp6_e2m3, std::string("mxfp6_e2m3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecQuantize, mxfp4, std::string("mxfp4"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecQuantize, mxint8, std::string("mxint8"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecQuantize, nvfp4, std::string("nvfp4"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecQuantize, nf4, std::string("nf4"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecDequantize, mxfp4, std::string("mxfp4"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecDequantize, nvfp4, std::string("nvfp4"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BlockCodecDequantize, nf4, std::string("nf4"))->Unit(benchmark::kMillisecond);

}  // namespace
