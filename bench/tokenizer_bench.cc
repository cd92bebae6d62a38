// Encode throughput of the two tokenizers on the WikiText-2 test file (1.3 MB): tok512 SentencePiece
// BPE and a byte-level BPE trained on the same text. Not a test; run build/ql_bench --benchmark_filter=Tok.
#include <filesystem>
#include <fstream>
#include <iterator>

#include <benchmark/benchmark.h>

#include "harness/tokenizer/byte_bpe.h"
#include "harness/tokenizer/spm_bpe.h"

namespace {

// shared/ sits beside the source tree (bench/ -> repo root -> ../shared).
const std::string kShared =
    (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "shared").string();

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void BM_TokSpmEncodeWikitext(benchmark::State& state) {
  auto tok = ql::LoadLlama2cTokenizer(kShared + "/models/stories260K/tok512.bin", 512);
  std::string text = ReadFile(kShared + "/data/wikitext-2-raw-test.txt");
  if (!tok.ok() || text.empty()) {
    state.SkipWithError("tok512.bin or wikitext-2-raw-test.txt not found beside the source tree");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize((*tok)->Encode(text, true));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_TokSpmEncodeWikitext)->Unit(benchmark::kMillisecond);

void BM_TokByteBpeEncodeWikitext(benchmark::State& state) {
  std::string text = ReadFile(kShared + "/data/wikitext-2-raw-test.txt");
  ql::ByteBpeTrainOptions opt;
  opt.vocab_size = static_cast<int>(state.range(0));
  auto tok = ql::TrainByteBpe(text, opt);
  if (!tok.ok() || text.empty()) {
    state.SkipWithError("wikitext-2-raw-test.txt not found beside the source tree");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize((*tok)->Encode(text, false));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_TokByteBpeEncodeWikitext)->Arg(1024)->Arg(8192)->Unit(benchmark::kMillisecond);

}  // namespace
