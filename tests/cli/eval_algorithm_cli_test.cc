// Tests of `quantlab eval --algorithm` on stories260K: rtn through the algorithm registry gives the
// same numbers as plain --scheme, rotation without effective quantization keeps the model, GPTQ needs
// --calib, bad parameters are one-line errors.
#include <algorithm>
#include "tests/test_paths.h"
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"

namespace {

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";
const std::string kData = std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt";
const std::string kBase = std::string(QL_QUANTLAB_BIN) + " eval --model " + kModel + " --data " + kData +
                          " --ctx 64 --chunks 3 --baseline fp32 --layer-windows 1 ";

qltest::CommandResult Eval(const std::string& args) { return qltest::RunCommand(kBase + args + " 2>&1"); }

nlohmann::json RunJson(const std::string& args) {
  const auto r = qltest::RunCommand(kBase + args + " --json 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.out;
  return nlohmann::json::parse(r.out, nullptr, false);
}

TEST(EvalAlgorithmCli, RtnThroughTheRegistryMatchesPlainScheme) {
  const auto plain = RunJson("--scheme int4:g32");
  const auto rtn = RunJson("--scheme int4:g32 --algorithm rtn");
  ASSERT_FALSE(plain.is_discarded() || rtn.is_discarded());
  EXPECT_EQ(rtn["algorithm"], "rtn");
  EXPECT_DOUBLE_EQ(rtn["ppl"].get<double>(), plain["ppl"].get<double>());
  EXPECT_DOUBLE_EQ(rtn["kld_mean"].get<double>(), plain["kld_mean"].get<double>());
  EXPECT_DOUBLE_EQ(rtn["bits_per_weight"].get<double>(), plain["bits_per_weight"].get<double>());
  EXPECT_GT(rtn["kld_mean"].get<double>(), 1e-4);  // int4 does change the model
}

TEST(EvalAlgorithmCli, RotationAtFp16KeepsTheModel) {
  // An fp16 cast changes each weight by < 2^-11 relative: the rotated model computes nearly the same
  // function (R4 is off), so KLD and the per-layer errors (compared in the rotated basis) are ~ 0.
  // Compared in the original basis they would be of order 1.
  const auto j = RunJson("--scheme fp16 --algorithm rotation --param r4=false");
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["algorithm"], "rotation");
  EXPECT_EQ(j["algo_params"]["r4"], false);
  EXPECT_LT(j["kld_mean"].get<double>(), 1e-5);
  EXPECT_NEAR(j["ppl"].get<double>(), j["ppl_base"].get<double>(), 1e-3 * j["ppl_base"].get<double>());
  ASSERT_EQ(j["layer_errors"].size(), 5u);
  for (const auto& l : j["layer_errors"]) EXPECT_LT(l["rel_mse"].get<double>(), 1e-5) << l.dump();
}

TEST(EvalAlgorithmCli, GptqWithCalibration) {
  const auto r = Eval("--scheme int4:g32 --algorithm gptq");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("--calib"), std::string::npos) << r.out;
  const auto j = RunJson("--scheme int4:g32 --algorithm rotation --param quantizer=gptq --param 'gptq={\"act_order\": true}' "
                         "--calib " + kData + " --calib-samples 4 --calib-seqlen 64");
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["algo_params"]["gptq"]["act_order"], true);
  EXPECT_EQ(j["calibration"]["samples"], 4);
  EXPECT_GT(j["kld_mean"].get<double>(), 0.0);
  EXPECT_LT(j["kld_mean"].get<double>(), 0.5);
}

TEST(EvalAlgorithmCli, BadArgumentsAreOneLineErrors) {
  for (const std::string& args : {std::string("--scheme int4:g32 --algorithm nosuch"),
                                  std::string("--scheme int4:g32 --algorithm rotation --param bogus=1"),
                                  std::string("--scheme int4:g32 --algorithm rotation --param r1"),
                                  std::string("--algorithm rtn"), std::string("--scheme int4:g32 --param r1=true")}) {
    const auto r = Eval(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(r.out.rfind("quantlab eval: ", 0), 0u) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  }
}

// QL_SIMD caps the dispatch for every subcommand; a wrong value stops before any work, naming it.
TEST(EvalAlgorithmCli, SimdCapFromTheEnvironment) {
  const auto bad = qltest::RunCommand("QL_SIMD=avx1024 " + std::string(QL_QUANTLAB_BIN) + " formats 2>&1");
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_EQ(bad.out, "quantlab: QL_SIMD: unknown SIMD target 'avx1024': use native, avx2 or sse4\n");
  const auto ok = qltest::RunCommand("QL_SIMD=avx2 " + std::string(QL_QUANTLAB_BIN) + " formats 2>&1");
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
}

}  // namespace
