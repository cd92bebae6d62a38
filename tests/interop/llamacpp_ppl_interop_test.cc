// Interop (ctest LABEL interop): quantlab's PPL of a cell vs llama-perplexity on the file `quantlab export`
// writes for it, on quantlab-tiny (its held-out text, ctx 256, 8 chunks, -fa off). With `activations: llamacpp`
// quantlab computes what llama.cpp's CPU kernels compute for the linears; the FP32 fake-quant PPL is printed
// beside it for the gap (docs/gguf.md).
#include <cmath>
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"

namespace ql {
namespace {

const std::string kBin = QL_LLAMA_CPP_BIN;
const std::string kQuantlab = QL_QUANTLAB_BIN;
// quantlab-tiny, not SmolLM2: on SmolLM2 (wikitext-2, ctx 256, 4 chunks) even the q8_0 file gives
// llama-perplexity 29.44 against quantlab's 29.18 (-8.8e-3), a difference not explained yet (docs/gguf.md).
const std::string kModel = std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny";
const std::string kText = kModel + "/heldout.txt";
constexpr int kCtx = 256, kChunks = 8;

double QuantlabPpl(const std::string& scheme, bool llamacpp) {
  const std::string cmd = fmt::format(
      "{} eval --model {} --data {} --protocol llamacpp --ctx {} --chunks {} --baseline fp32 --scheme {} "
      "--layer-windows 1 --json{} 2>/dev/null",  // stdout: the one JSON object
      kQuantlab, kModel, kText, kCtx, kChunks, scheme,
      llamacpp ? " --activations llamacpp" : "");
  const qltest::CommandResult r = qltest::RunCommand(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd;
  if (r.exit_code != 0) return NAN;
  const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object() && j.contains("ppl")) << r.out;
  return j.is_object() && j.contains("ppl") ? j["ppl"].get<double>() : NAN;
}

double LlamaPerplexity(const std::string& export_flags) {
  const std::string out = ::testing::TempDir() + "ql_ppl_interop.gguf";
  qltest::CommandResult r =
      qltest::RunCommand(fmt::format("{} export --model {} {} --out {} 2>&1", kQuantlab, kModel, export_flags, out));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = qltest::RunCommand(fmt::format("{}/llama-perplexity -m {} -f {} -c {} --chunks {} -t 2 -fa off 2>&1", kBin, out,
                                     kText, kCtx, kChunks));
  std::remove(out.c_str());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const size_t at = r.out.find("Final estimate: PPL = ");
  EXPECT_NE(at, std::string::npos) << r.out;
  return at == std::string::npos ? NAN : std::stod(r.out.substr(at + 22));
}

// tol: the relative PPL gap act:llamacpp must stay within. Q8_0 weights reproduce llama.cpp (9e-6 on
// quantlab-tiny); for Q4_K_M the 1e-4 target is not reached yet (docs/gguf.md), so it only guards against
// the mode breaking (a wrong vec_dot_type or block rounding moves PPL by far more than 5e-3).
void Check(const std::string& name, const std::string& scheme, const std::string& export_flags, double tol) {
  const double llama = LlamaPerplexity(export_flags);
  const double fq = QuantlabPpl(scheme, false), lc = QuantlabPpl(scheme, true);
  std::printf("[ppl-interop] %s: llama-perplexity %.6f, quantlab act:llamacpp %.6f (%+.2e), FP32 fake-quant %.6f (%+.2e)\n",
              name.c_str(), llama, lc, lc / llama - 1, fq, fq / llama - 1);
  EXPECT_LT(std::fabs(lc / llama - 1), tol) << name;
}

TEST(PplInterop, Q8_0) { Check("q8_0", "q8_0", "--scheme q8_0", 1e-4); }
TEST(PplInterop, Q4_K_M) { Check("Q4_K_M", "Q4_K_M", "--preset Q4_K_M", 5e-3); }

}  // namespace
}  // namespace ql
