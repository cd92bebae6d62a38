// Quantization time of each algorithm on the SmolLM2-135M shape (random weights, random calibration
// tokens: 4 windows x 128 tokens), int4:g32 on every linear except lm_head. One iteration each, with
// OpenBLAS on one thread as the CLI runs it (harness/cli/main.cc), CPU time of the whole process:
//   build/ql_bench --benchmark_filter=Algo
// BM_FakeQuant: round-to-nearest of every linear but lm_head in one scheme (what a weight-only cell's
// quantize step costs), on quantlab's threads, CPU time of the whole process:
//   build/ql_bench --benchmark_filter=FakeQuant
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>

#include "harness/model/random_model.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"

namespace ql {
namespace {

struct Setup {
  Model model = RandomModel(SmolLM2_135MConfig(), 1);
  CalibrationSet calib;
  std::vector<std::pair<std::string, std::string>> schemes;
  Setup() {
    std::mt19937_64 rng(3);
    for (int i = 0; i < 4; ++i) {
      std::vector<int> w(128);
      for (auto& t : w) t = int(rng() % uint64_t(model.config.vocab_size));
      calib.windows.push_back(w);
    }
    for (const auto& m : model.LinearModules())
      if (m != "lm_head") schemes.emplace_back(m, "int4:g32");
  }
};

Setup& S() {
  static Setup s;
  return s;
}

void BM_Algo(benchmark::State& state, const std::string& name, nlohmann::json params) {
  auto algo = FindAlgorithm(name);
  if (!algo.ok()) {
    state.SkipWithError(algo.status().message().c_str());
    return;
  }
  // The CLI's path: quantlab's own kernels thread, OpenBLAS (the rotations' LAPACK; GPTQ uses none) does not.
  const int blas = openblas_get_num_threads();
  openblas_set_num_threads(1);
  for (auto _ : state) {
    state.PauseTiming();
    Model m = S().model;
    AlgorithmRuntime rt;
    AlgorithmContext ctx;
    ctx.module_schemes = &S().schemes;
    ctx.params = params;
    ctx.calibration = &S().calib;
    ctx.runtime = &rt;
    state.ResumeTiming();
    Status s = (*algo)->apply(m, ctx);
    if (!s.ok()) state.SkipWithError(s.message().c_str());
  }
  openblas_set_num_threads(blas);
}

// One run, wall time, and the CPU time of every thread of the process.
void Once(benchmark::internal::Benchmark* b) {
  b->Iterations(1)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kSecond);
}

BENCHMARK_CAPTURE(BM_Algo, rtn, std::string("rtn"), nlohmann::json::object())->Apply(Once);
BENCHMARK_CAPTURE(BM_Algo, gptq, std::string("gptq"), nlohmann::json::object())->Apply(Once);
BENCHMARK_CAPTURE(BM_Algo, gptq_layerwise, std::string("gptq"), nlohmann::json{{"true_sequential", false}})
    ->Apply(Once);
BENCHMARK_CAPTURE(BM_Algo, awq, std::string("awq"), nlohmann::json::object())->Apply(Once);
BENCHMARK_CAPTURE(BM_Algo, smoothquant, std::string("smoothquant"), nlohmann::json::object())
    ->Apply(Once);
BENCHMARK_CAPTURE(BM_Algo, llm_int8, std::string("llm_int8"), nlohmann::json::object())
    ->Apply(Once);
BENCHMARK_CAPTURE(BM_Algo, rotation, std::string("rotation"), nlohmann::json::object())
    ->Apply(Once);

void BM_FakeQuant(benchmark::State& state, const std::string& scheme) {
  for (auto _ : state) {
    state.PauseTiming();
    Model m = S().model;
    state.ResumeTiming();
    for (const auto& [module, s] : S().schemes) {
      Status st = RtnModule(m, module, scheme);
      if (!st.ok()) state.SkipWithError(st.message().c_str());
    }
  }
}

BENCHMARK_CAPTURE(BM_FakeQuant, int4_g32, std::string("int4:g32"))->Apply(Once);
BENCHMARK_CAPTURE(BM_FakeQuant, nvfp4, std::string("nvfp4"))->Apply(Once);
BENCHMARK_CAPTURE(BM_FakeQuant, mxfp4, std::string("mxfp4"))->Apply(Once);
BENCHMARK_CAPTURE(BM_FakeQuant, q4_k, std::string("q4_k"))->Apply(Once);
BENCHMARK_CAPTURE(BM_FakeQuant, q6_k, std::string("q6_k"))->Apply(Once);
BENCHMARK_CAPTURE(BM_FakeQuant, q5_0, std::string("q5_0"))->Apply(Once);

}  // namespace
}  // namespace ql
