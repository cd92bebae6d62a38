// Tests of `quantlab eval` as a user runs it: one-line errors with a non-zero exit, and --json output.
#include <array>
#include "tests/test_paths.h"
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "tests/run_command.h"
#include <nlohmann/json.hpp>

namespace {

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";
const std::string kData = std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt";

using CliRun = qltest::CommandResult;
CliRun Quantlab(const std::string& args, bool with_stderr) {
  return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(EvalCli, ErrorsAreOneLineAndNonZero) {
  const std::string base = "eval --model " + kModel + " --data " + kData + " --chunks 2";
  const std::string ok = base + " --ctx 64";
  for (const std::string& args :
       {"eval --model /nonexistent/m.bin --data " + kData, "eval --model " + kModel + " --data /nonexistent.txt",
        ok + " --scheme int9:nonsense", base + " --ctx 1024", ok + " --protocol wiki", ok + " --baseline fp8"}) {
    const CliRun r = Quantlab(args, true);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(Lines(r.out), 1) << args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("quantlab eval: ", 0), 0u) << r.out;
  }
  EXPECT_NE(Quantlab("eval --model " + kModel + " --data /nonexistent.txt", true).out.find("/nonexistent.txt"),
            std::string::npos);
  EXPECT_NE(Quantlab(base + " --ctx 1024", true).out.find("512"), std::string::npos);
}

TEST(EvalCli, JsonHasTheNumbers) {
  const CliRun r = Quantlab("eval --model " + kModel + " --data " + kData +
                             " --ctx 64 --chunks 4 --scheme int8:channel --json --layer-windows 1",
                         false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(Lines(r.out), 1);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["protocol"], "llamacpp:ctx64:chunks4");
  EXPECT_EQ(j["tokens_scored"], 4 * (64 - 32 - 1));
  EXPECT_EQ(j["weight_scheme"], "int8:channel");
  EXPECT_GT(j["ppl_base"].get<double>(), 1.0);
  EXPECT_GE(j["kld_mean"].get<double>(), 0.0);
  EXPECT_LT(j["kld_mean"].get<double>(), 0.01);
  EXPECT_LE(j["dppl_lo"].get<double>(), j["dppl"].get<double>());
  EXPECT_GE(j["dppl_hi"].get<double>(), j["dppl"].get<double>());
  // int8 with one fp32 scale per row: 8 + 32/in_features bits (in = 64 or 172) → between 8.1 and 8.5.
  EXPECT_GT(j["bits_per_weight"].get<double>(), 8.1);
  EXPECT_LT(j["bits_per_weight"].get<double>(), 8.5);
  EXPECT_EQ(j["layer_errors"].size(), 5u);
  // 5 layers × 7 + the tied lm_head: eval quantizes what a sweep with `ignore: none` does (the one
  // shared tensor, so the embedding too); --ignore lm_head or --tied-head untie choose otherwise.
  EXPECT_EQ(j["quantized_tensors"], 36);
}

}  // namespace
