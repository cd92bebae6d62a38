// Trainer step time (loss + gradients + AdamW) on quantlab-tiny's shape (dim 256, 6 layers, 8/4 heads,
// MLP 704, vocab 4096), batch 4 x 256 tokens, on 1 and 2 threads: the QAT/QLoRA inner loop. Real and
// CPU time side by side; the two thread counts give bitwise the same weights
// (tests/harness/train_threads_test.cc).
//   build/ql_bench --benchmark_filter=TrainStep
#include <benchmark/benchmark.h>

#include <vector>

#include "harness/train/train_model.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

ModelConfig TinyShape() {
  ModelConfig c;
  c.dim = 256;
  c.hidden_dim = 704;
  c.n_layers = 6;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 32;
  c.vocab_size = 4096;
  c.max_seq_len = 256;
  c.tied_embeddings = true;
  return c;
}

void BM_TrainStep(benchmark::State& state) {
  SetNumThreads(int(state.range(0)));
  Model m = train::InitModel(TinyShape(), 1);
  const int b = 4, t = 256;
  std::vector<int> tok(size_t(b) * (t + 1));
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = int((i * 2654435761u) % 4096u);
  train::AdamWState st = train::NewAdamW(m);
  train::TensorMap g = train::ZerosLike(m);
  for (auto _ : state) {
    train::SetZero(&g);
    auto loss = train::LossAndGradients(m, tok.data(), b, t, &g);
    if (!loss.ok()) state.SkipWithError(loss.status().message().c_str());
    train::AdamWStep(&m, g, 1e-3f, train::AdamWOptions{}, &st);
  }
  state.counters["tokens/s"] = benchmark::Counter(double(b) * t * double(state.iterations()), benchmark::Counter::kIsRate);
  SetNumThreads(0);
}
BENCHMARK(BM_TrainStep)->Arg(1)->Arg(2)->Iterations(5)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ql
