// Benchmarks of task scoring (harness/eval/tasks.h) on the SmolLM2-135M shape with random weights:
// items/s with the shared KV-cached prefix against every candidate run alone, on ARC-like items
// (a ~60-byte question, four ~20-byte choices). Not tests.
//   build/ql_bench --benchmark_filter='TaskScore' --benchmark_min_time=0.1
// Reported per process CPU second (UseRealTime off): on a shared machine wall time measures the others.
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "datasets/tasks.h"
#include "harness/eval/tasks.h"
#include "harness/model/random_model.h"
#include "harness/tokenizer/byte_bpe.h"

namespace ql {
namespace {

// Byte-level BPE over the 256 bytes, no merges: one token a byte, so token counts are byte counts.
std::shared_ptr<const Tokenizer> ByteTokenizer() {
  ByteBpeSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.push_back(ByteBpeTokenizer::ByteToUnicode(uint8_t(b)));
  spec.eos_id = 0;
  auto t = ByteBpeTokenizer::Create(spec);
  QL_CHECK(t.ok(), "{}", t.status().message());
  return std::shared_ptr<const Tokenizer>(std::move(*t));
}

const Model& Smol() {
  static const Model m = [] {
    Model r = RandomModel(SmolLM2_135MConfig(), 5);
    r.tokenizer = ByteTokenizer();
    return r;
  }();
  return m;
}

TaskSet ArcLike(int n) {
  std::string text;
  for (int i = 0; i < n; ++i)
    text += "{\"query\": \"Question: which of these would a student most likely use to measure " + std::to_string(i) +
            "?\", \"choices\": [\"a ruler and a pencil\", \"a spring scale\", \"a thermometer only\", \"a stopwatch\"], "
            "\"gold\": 1}\n";
  auto s = ParseTaskText(text, "arc_like", "bench");
  QL_CHECK(s.ok(), "{}", s.status().message());
  return *s;
}

void BM_TaskScore(benchmark::State& state) {
  const TaskSet set = ArcLike(4);
  TaskScoreOptions opt;
  opt.share_prefix = state.range(0) != 0;
  int64_t tokens = 0;
  for (auto _ : state) {
    auto s = ScoreTask(Smol(), set, TaskConvention::kLmEval, opt);
    QL_CHECK(s.ok(), "{}", s.status().message());
    tokens += s->tokens_forwarded;
  }
  state.counters["items/s"] = benchmark::Counter(double(state.iterations()) * set.items.size(), benchmark::Counter::kIsRate);
  state.counters["tokens/s"] = benchmark::Counter(double(tokens), benchmark::Counter::kIsRate);
  state.SetLabel(opt.share_prefix ? "shared prefix" : "each candidate alone");
}
BENCHMARK(BM_TaskScore)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ql
