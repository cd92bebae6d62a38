// The cost of one ParallelFor region (kernels/parallel.h) with trivial items: what every fork/join of
// the forward pass pays before its items' work. Not a test. Rates per second of process CPU time
// (all threads), so a loaded machine's descheduling does not count, and wall time beside it.
//   build/ql_bench --benchmark_filter='ParallelForRegion'
// Arg: items per region (each adds one relaxed counter increment of work).
#include <atomic>

#include <benchmark/benchmark.h>

#include "kernels/parallel.h"

namespace ql {
namespace {

void BM_ParallelForRegion(benchmark::State& state) {
  const int items = int(state.range(0));
  std::atomic<int> sink{0};
  for (auto _ : state) ParallelFor(items, 2, [&](int i, int) { sink.fetch_add(i, std::memory_order_relaxed); });
  benchmark::DoNotOptimize(sink.load());
  state.counters["regions/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ParallelForRegion)->Arg(2)->Arg(64)->MeasureProcessCPUTime()->MinTime(0.5);

}  // namespace
}  // namespace ql
