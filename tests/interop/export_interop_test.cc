// Interop (ctest LABEL interop): `quantlab export` against llama.cpp's llama-quantize on the same F32 GGUF
// (SmolLM2-135M converted by quantlab itself): every llama.cpp mix (--preset), every 32-block type (--scheme vs
// llama-quantize --pure), q2_k (the one block type no mix writes on SmolLM2) and F16/BF16 give the same tensor
// types and byte-identical tensor data; the metadata differences are listed. And llama-perplexity runs on an
// exported file.
#include <cctype>
#include "tests/test_paths.h"
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "harness/io/gguf.h"
#include "tests/interop/gguf_compare.h"
#include "tests/run_command.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {

const std::string kBin = QL_LLAMA_CPP_BIN;
const std::string kQuantlab = QL_QUANTLAB_BIN;
const std::string kSmol = std::string(QL_SHARED_DIR) + "/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

// This process's own directory (removed with the 540 MB F32 file when the process ends): two interop runs
// at once, e.g. from two worktrees, must not delete each other's files.
std::string TmpDir() {
  static const qltest::TempDir dir("ql_export_interop");
  return dir.str();
}

// The F32 GGUF both tools start from, written once by quantlab from the Q4_1 file.
const std::string& F32File() {
  static const std::string path = [] {
    const std::string p = TmpDir() + "/smollm2-f32.gguf";
    const qltest::CommandResult r = qltest::RunCommand(
        fmt::format("{} export --model {} --scheme f32 --out {} 2>&1", kQuantlab, kSmol, p));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return p;
  }();
  return path;
}

// The identical tensors' types, "q4_0×210 q6_K×1", for the log.
std::string TypeList(const std::map<std::string, int>& types) {
  std::string s;
  for (const auto& [t, n] : types) s += fmt::format(" {}×{}", t, n);
  return s;
}

// Exports with quantlab and llama-quantize and compares; returns the identical tensors' counts by type.
std::map<std::string, int> ExportAndCompare(const std::string& label, const std::string& ql_args,
                                            const std::string& llama_flags, const std::string& llama_type) {
  std::map<std::string, int> types;
  const std::string ours = TmpDir() + "/ql-" + label + ".gguf", theirs = TmpDir() + "/llama-" + label + ".gguf";
  qltest::CommandResult r = qltest::RunCommand(
      fmt::format("{} export --model {} {} --out {} 2>&1", kQuantlab, F32File(), ql_args, ours));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  if (r.exit_code != 0) return types;
  r = qltest::RunCommand(
      fmt::format("{}/llama-quantize {} {} {} {} 2>&1", kBin, llama_flags, F32File(), theirs, llama_type));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  if (r.exit_code != 0) return types;
  const interop::GgufComparison c = interop::CompareGgufFiles(ours, theirs);
  types = c.identical_by_type;
  std::printf("[export-interop] %-8s %3d tensors, %9lld bytes identical (%s ); metadata differences:%s\n",
              label.c_str(), c.tensors, static_cast<long long>(c.bytes), TypeList(types).c_str(),
              c.meta_diff.empty() ? " none" : c.meta_diff.c_str());
  std::remove(ours.c_str());
  std::remove(theirs.c_str());
  return types;
}

// Adds b's counts to a.
void AddCounts(std::map<std::string, int>* a, const std::map<std::string, int>& b) {
  for (const auto& [t, n] : b) (*a)[t] += n;
}

TEST(ExportInterop, MixesByteIdenticalWithLlamaQuantize) {
  std::map<std::string, int> seen;
  for (const char* mix : {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
                          "Q8_0", "IQ4_NL", "IQ4_XS"}) {
    SCOPED_TRACE(mix);
    AddCounts(&seen, ExportAndCompare(mix, fmt::format("--preset {}", mix), "", mix));
  }
  std::printf("[export-interop] identical tensors over the 12 mixes by type:%s\n", TypeList(seen).c_str());
  // Every block type the mixes choose on SmolLM2 was compared. q2_k is not among them (the Q2_K mix gives its
  // only 256-column matrices, ffn_down, q3_k): Q2KByteIdenticalWithLlamaQuantizePure covers it; q4_1 is
  // a pure type only.
  for (const char* t : {"q3_K", "q4_K", "q5_K", "q6_K", "iq4_xs", "q4_0", "q5_0", "q5_1", "q8_0", "iq4_nl"})
    EXPECT_GT(seen[t], 0) << t << " was not compared by any mix";
}

TEST(ExportInterop, PureTypesByteIdenticalWithLlamaQuantize) {
  // SmolLM2's rows (576) are whole 32-blocks but not 256-blocks, so the single-type exports are the 32-block
  // types; the 256-block types are covered by the mixes above (ffn_down, 1536 columns).
  for (const char* t : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl"}) {
    SCOPED_TRACE(t);
    std::string upper = t;
    for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
    ExportAndCompare(std::string("pure-") + t, fmt::format("--scheme {}", t), "--pure", upper);
  }
}

// llama-quantize --pure Q2_K writes SmolLM2's ffn_down (1536 columns) in q2_K and its other matrices (576
// columns, not whole 256-blocks) in the fallback q4_0; quantlab writes the same file from a recipe: q4_0 with
// down_proj overridden to q2_k.
std::string Q2KRecipe(const std::string& f32, const std::string& text) {
  const std::string path = TmpDir() + "/pure-q2k.yaml";
  std::ofstream(path) << "name: pure-q2k\nmodel: " << f32 << "\ndata: " << text << "\nbaseline: fp32\n"
                      << "overrides:\n  - {targets: [\"re:.*down_proj\"], scheme: q2_k}\ngrid:\n  schemes: [q4_0]\n";
  return path;
}

TEST(ExportInterop, Q2KByteIdenticalWithLlamaQuantizePure) {
  const std::string text = std::string(QL_SHARED_DIR) + "/data/wikitext-2-raw-test.txt";
  const std::map<std::string, int> types =
      ExportAndCompare("pure-q2_k", "--recipe " + Q2KRecipe(F32File(), text), "--pure", "Q2_K");
  EXPECT_EQ(types.count("q2_K") ? types.at("q2_K") : 0, 30);  // ffn_down of the 30 layers
  EXPECT_EQ(types.count("q4_0") ? types.at("q4_0") : 0, 6 * 30 + 1);  // q, k, v, o, gate, up; token_embd
}

TEST(ExportInterop, F16AndBf16ByteIdenticalWithLlamaQuantize) {
  // llama-quantize F16 / BF16 converts every 2-D weight and keeps 1-D tensors F32, as `--scheme fp16 / bf16`.
  for (const auto& [ours, theirs] : {std::pair<const char*, const char*>{"fp16", "F16"}, {"bf16", "BF16"}}) {
    SCOPED_TRACE(ours);
    const std::map<std::string, int> types = ExportAndCompare(ours, fmt::format("--scheme {}", ours), "", theirs);
    EXPECT_EQ(types.count("f32") ? types.at("f32") : 0, 2 * 30 + 1) << "the norms stay F32";
    EXPECT_EQ(int(types.size()), 2) << TypeList(types);
  }
}

TEST(ExportInterop, LlamaPerplexityRunsOnAnExport) {
  const std::string out = TmpDir() + "/ql-q4km-ppl.gguf";
  qltest::CommandResult r = qltest::RunCommand(
      fmt::format("{} export --model {} --preset Q4_K_M --out {} 2>&1", kQuantlab, F32File(), out));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string text = std::string(QL_SHARED_DIR) + "/data/wikitext-2-raw-test.txt";
  r = qltest::RunCommand(
      fmt::format("{}/llama-perplexity -m {} -f {} -c 128 --chunks 4 -t 2 2>&1", kBin, out, text));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const size_t at = r.out.find("Final estimate: PPL = ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double ppl = std::stod(r.out.substr(at + 22));
  std::printf("[export-interop] llama-perplexity on quantlab's Q4_K_M export: %s\n",
              r.out.substr(at, r.out.find('\n', at) - at).c_str());
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 200.0);  // SmolLM2-135M on wikitext at ctx 128: ~30-60; a broken file gives thousands
  std::remove(out.c_str());
}

}  // namespace
}  // namespace ql
