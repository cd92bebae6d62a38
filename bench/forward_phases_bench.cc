// Where one window of the 135M forward pass spends its time, phase by phase: the ForwardHooks
// (harness/model/forward.h) time-stamp the boundaries (each linear's input, the keys/values, the
// queries, each block's output), so every phase is a wall-clock interval of the calling thread, and
// the process CPU time over the same interval says how busy the other threads were. Not a test.
//   build/ql_bench --benchmark_filter='ForwardPhases'
// Counters: ms per window of each phase (summed over layers) and, as "<phase>.busy", the process
// CPU-seconds over that phase's wall seconds (2.0 = both threads busy throughout, 1.0 = one idles).
// The linear_input hook makes the forward copy each linear's input once more (an extra memcpy of
// [T, in] floats per linear, inside the linear's phase); BM_Forward135M runs without it.
// Phases that hold two steps say so in their names ("v_proj+rope" = v_proj and q/k RoPE).

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "harness/util/cpu_time.h"
#include "harness/model/forward.h"
#include "harness/model/random_model.h"

namespace ql {
namespace {

double Wall() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Accumulates (wall, cpu) per phase; Mark(next) closes the running phase and opens `next`.
struct PhaseClock {
  std::map<std::string, std::pair<double, double>> total;  // phase -> (wall s, process CPU s)
  std::string open;
  double w0 = 0, c0 = 0;
  void Mark(const std::string& next) {
    const double w = Wall(), c = ProcessCpuSeconds();
    if (!open.empty()) {
      total[open].first += w - w0;
      total[open].second += c - c0;
    }
    open = next, w0 = w, c0 = c;
  }
};

// The phase a linear's input opens: the linear itself, plus the step after it up to the next hook.
std::string AfterLinear(std::string_view path) {
  const std::string_view name = path.substr(path.rfind('.') + 1);
  if (name == "v_proj") return "v_proj+rope";
  if (name == "o_proj") return "o_proj+resid+norm";
  if (name == "up_proj") return "up_proj+silu";
  if (name == "down_proj") return "down_proj+resid";
  return std::string(name);
}

void BM_ForwardPhases135M(benchmark::State& state) {
  static const Model m = RandomModel(SmolLM2_135MConfig(), 1);
  const int T = int(state.range(0));
  std::vector<int> tokens(T);
  for (int i = 0; i < T; ++i) tokens[i] = (i * 7919 + 1) % m.config.vocab_size;
  std::vector<float> logits(size_t(T) * m.config.vocab_size);
  PhaseClock clock;
  ForwardHooks hooks;
  hooks.linear_input = [&](std::string_view path, float*, int, int) { clock.Mark(AfterLinear(path)); };
  hooks.kv = [&](int, float*, float*, int) { clock.Mark("kv->q hooks"); };
  hooks.attn_q = [&](int, float*, int) { clock.Mark("attention"); };
  hooks.block_output = [&](int l, const float*, int) {
    clock.Mark(l + 1 < m.config.n_layers ? "input_norm" : "final_norm");
  };
  for (auto _ : state) {
    clock.Mark("embed+setup+input_norm0");
    const Status st = ForwardWindow(m, tokens, logits.data(), &hooks);
    clock.Mark("");
    if (!st.ok()) state.SkipWithError(st.message().c_str());
    benchmark::DoNotOptimize(logits.data());
  }
  const double n = double(state.iterations());
  for (const auto& [phase, wc] : clock.total) {
    state.counters[phase] = 1e3 * wc.first / n;
    state.counters[phase + ".busy"] = wc.second / wc.first;
  }
}
BENCHMARK(BM_ForwardPhases135M)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace ql
