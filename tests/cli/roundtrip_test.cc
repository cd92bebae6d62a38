// End-to-end tests of `quantlab roundtrip` and `quantlab formats`: runs the built binary
// (QL_QUANTLAB_BIN), parses its --json output and checks the worked examples by hand values, and that
// bad input gives one line on stderr and a non-zero exit code.
#include <sys/wait.h>
#include "tests/test_paths.h"

#include <cmath>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "tests/run_command.h"
#include <nlohmann/json.hpp>

namespace {

using CliRun = qltest::CommandResult;

// Runs `quantlab <args>` through /bin/sh; stderr is merged into out when merge_stderr is set; stdin
// gets `input` when given.
CliRun Quantlab(const std::string& args, bool merge_stderr = false, const std::string& input = "") {
  return qltest::RunCommand((input.empty() ? "" : "printf '%s' '" + input + "' | ") + "'" + QL_QUANTLAB_BIN +
                            "' " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null"));
}

nlohmann::json Json(const std::string& args, const std::string& input = "") {
  const CliRun r = Quantlab(args, false, input);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.out;
  return nlohmann::json::parse(r.out);
}

TEST(RoundtripCliTest, Fp8DirectCast) {
  const nlohmann::json j = Json("roundtrip --scheme fp8_e4m3:noscale 6.625 --json");
  EXPECT_EQ(j["scheme"], "fp8_e4m3:noscale");
  ASSERT_EQ(j["dequantized"].size(), 1u);
  EXPECT_EQ(j["dequantized"][0].get<double>(), 6.5);
  EXPECT_DOUBLE_EQ(j["error"]["max_abs"].get<double>(), 0.125);
  EXPECT_EQ(j["bytes"].get<int>(), 1);
}

TEST(RoundtripCliTest, Int4GroupOf8) {
  const nlohmann::json j =
      Json("roundtrip --scheme int4:g8 0.12 -0.41 0.93 -0.05 0.55 -0.88 0.27 0.02 --json");
  EXPECT_EQ(j["codes"], (std::vector<int>{1, -3, 7, 0, 4, -7, 2, 0}));
  ASSERT_EQ(j["scales"].size(), 1u);
  EXPECT_NEAR(j["scales"][0].get<double>(), 0.93 / 7, 1e-7);  // 0.13286
  EXPECT_TRUE(j["zero_points"].empty());
  EXPECT_DOUBLE_EQ(j["bits_per_weight"].get<double>(), 8.0);  // 4 bytes of codes + 4-byte fp32 scale
  // Error fields, recomputed here from the printed values.
  double se = 0, sp = 0;
  for (size_t i = 0; i < 8; ++i) {
    const double x = j["input"][i], y = j["dequantized"][i];
    se += (x - y) * (x - y);
    sp += x * x;
  }
  EXPECT_NEAR(j["error"]["mse"].get<double>(), se / 8, 1e-12);
  EXPECT_NEAR(j["error"]["sqnr_db"].get<double>(), 10 * std::log10(sp / se), 1e-9);
  // The text output prints the scale to >= 5 significant digits.
  const CliRun t = Quantlab("roundtrip --scheme int4:g8 0.12 -0.41 0.93 -0.05 0.55 -0.88 0.27 0.02");
  EXPECT_EQ(t.exit_code, 0);
  EXPECT_NE(t.out.find("0.132857"), std::string::npos) << t.out;  // 0.93/7 = 0.1328571...
  EXPECT_NE(t.out.find("1 -3 7 0 4 -7 2 0"), std::string::npos) << t.out;
}

TEST(RoundtripCliTest, Int8Tensor) {
  const nlohmann::json j = Json("roundtrip --scheme int8:tensor -3 1 2 4 --json");
  EXPECT_EQ(j["codes"], (std::vector<int>{-95, 32, 64, 127}));
}

TEST(RoundtripCliTest, StdinCommasAndRows) {
  const nlohmann::json j = Json("roundtrip -s int8:channel --rows 2 --json -", "-3, 1,2 ,4\n");
  EXPECT_EQ(j["shape"], (std::vector<int>{2, 2}));
  ASSERT_EQ(j["scales"].size(), 2u);
  EXPECT_NEAR(j["scales"][0].get<double>(), 3.0 / 127, 1e-9);
  EXPECT_NEAR(j["scales"][1].get<double>(), 4.0 / 127, 1e-9);
  EXPECT_EQ(j["codes"], (std::vector<int>{-127, 42, 64, 127}));  // 1*127/3 = 42.33, 2*127/4 = 63.5
}

TEST(RoundtripCliTest, AsymShowsZeroPoints) {
  const nlohmann::json j = Json("roundtrip -s uint4:tensor -1 0 0.5 2 --json");
  EXPECT_EQ(j["scheme"], "int4:tensor:asym");
  EXPECT_EQ(j["zero_points"], (std::vector<int>{5}));
  EXPECT_EQ(j["codes"], (std::vector<int>{0, 5, 7, 15}));
}

TEST(RoundtripCliTest, BlockScheme) {
  std::string vals;
  for (int i = 0; i < 32; ++i) vals += std::to_string(0.1 * (i - 16)) + " ";
  const nlohmann::json j = Json("roundtrip -s MXFP4 --json " + vals);
  EXPECT_EQ(j["scheme"], "mxfp4");
  EXPECT_EQ(j["dequantized"].size(), 32u);
  EXPECT_EQ(j["bytes"].get<int>(), 17);  // 16 bytes of E2M1 + one E8M0 scale
  EXPECT_LT(j["error"]["max_abs"].get<double>(), 0.26);  // half the E2M1 step at the top (scale 0.25)
}

TEST(RoundtripCliTest, TextOutputHasAllSections) {
  const CliRun r = Quantlab("roundtrip -s int4:g2:asym 1 2 3 -4");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* key : {"scheme", "codes", "scales", "zero points", "dequantized", "mse", "sqnr",
                          "bits/weight", "bytes"})
    EXPECT_NE(r.out.find(key), std::string::npos) << key << "\n" << r.out;
}

TEST(RoundtripCliTest, BadInputFailsWithOneLine) {
  const char* bad[] = {
      "roundtrip --scheme int9:tensor 1 2",       // unknown format
      "roundtrip --scheme int4 1 2",              // no granularity
      "roundtrip --scheme int4:g8:wat 1 2",       // unknown option
      "roundtrip --scheme int4:g8 1 abc 2",       // not a number
      "roundtrip --scheme int4:g8 1 nan 2",       // NaN input
      "roundtrip --scheme int4:g8 --rows 3 1 2 3 4",  // rows do not divide
      "roundtrip --scheme int4:g8",               // no values
      "roundtrip --scheme int4:g8 - < /dev/null", // empty stdin
  };
  for (const char* args : bad) {
    const CliRun r = Quantlab(args, /*merge_stderr=*/true);
    EXPECT_NE(r.exit_code, 0) << args;
    ASSERT_FALSE(r.out.empty()) << args;
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << args << ": not one line:\n" << r.out;
    EXPECT_EQ(r.out.rfind("quantlab", 0), 0u) << r.out;
  }
  const CliRun nan_run = Quantlab("roundtrip --scheme int4:g8 1 nan 2", true);
  EXPECT_NE(nan_run.out.find("index 1"), std::string::npos) << nan_run.out;
  const CliRun word = Quantlab("roundtrip --scheme int4:g8:wat 1 2", true);
  EXPECT_NE(word.out.find("'wat'"), std::string::npos) << word.out;
  // Missing --scheme is a command-line error.
  EXPECT_NE(Quantlab("roundtrip 1 2", true).exit_code, 0);
}

TEST(FormatsCliTest, ListsEveryCodecAndTheSchemeOptions) {
  const nlohmann::json j = Json("formats --json");
  std::vector<std::string> elems, blocks;
  for (const auto& c : j["element_codecs"]) elems.push_back(c["name"]);
  for (const auto& c : j["block_codecs"]) blocks.push_back(c["name"]);
  for (const char* n : {"int4", "int8", "uint4", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "bf16", "e8m0"})
    EXPECT_NE(std::find(elems.begin(), elems.end(), n), elems.end()) << n;
  for (const char* n : {"mxfp4", "nvfp4", "nf4", "q4_k", "q8_0"})
    EXPECT_NE(std::find(blocks.begin(), blocks.end(), n), blocks.end()) << n;
  for (const auto& c : j["element_codecs"]) {
    if (c["name"] == "fp8_e4m3") {
      EXPECT_EQ(c["max_finite"].get<double>(), 448.0);
      EXPECT_EQ(c["bits"].get<int>(), 8);
    }
  }
  for (const auto& c : j["block_codecs"]) {
    if (c["name"] == "nvfp4") {
      EXPECT_EQ(c["block_size"].get<int>(), 16);
    }
  }
  EXPECT_GE(j["granularities"].size(), 7u);
  EXPECT_GE(j["clip_rules"].size(), 3u);
  EXPECT_GE(j["scale_dtypes"].size(), 5u);
  const CliRun text = Quantlab("formats");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("nvfp4"), std::string::npos);
  EXPECT_NE(text.out.find("b<R>x<C>"), std::string::npos);
}

}  // namespace
