// AWQ's search is fused and abandons candidates early (kernels/group_error.h, harness/quant/awq.cc), by
// rules meant to choose exactly what the plain search chose. This pins one AWQ cell on quantlab-tiny to
// the numbers of the plain search (GEMM per candidate and group, every candidate summed in full, α in
// order), recorded with the implementation before the fused one (commit 31b16ea) on an AVX-512 machine
// (16 float lanes). The plain search was not recorded on 8-lane (AVX2) machines, whose sums group
// differently in the last bits: there the cell is pinned to its own numbers (the fused search, recorded
// 2026-12-02) and must stay within 1e-6 of the plain search's 16-lane ones, which a different choice of
// scale or clip would not (the two widths differ by ~1e-7).
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/gemm.h"
#include "kernels/simd_target.h"
#include "tests/run_command.h"
#include "tests/test_paths.h"

namespace {

TEST(AwqPinnedCli, FusedSearchGivesThePlainSearchsNumbers) {
  const std::string tiny = std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny";
  const auto r = qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " eval --model " + tiny + " --data " + tiny +
                                    "/heldout.txt --protocol llamacpp --ctx 128 --chunks 2 --scheme int4:g32 "
                                    "--ignore lm_head --algorithm awq --calib " + tiny +
                                    "/calibration.txt --calib-samples 4 --calib-seqlen 128 --json 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  // 512 calibration tokens: two 256-row chunks in the scale search, the clip search's stop test reached.
  const double plain_ppl = 25.245237309436682, plain_kld = 0.021406543015457396;  // 16 lanes
  const double ppl = j["ppl"].get<double>(), kld = j["kld_mean"].get<double>();
  ASSERT_TRUE(ql::LimitSimdTargetFromEnvironment().ok());  // the width the binary ran at (QL_SIMD)
  switch (ql::SimdFloatLanes()) {
    case 16:
      EXPECT_EQ(ppl, plain_ppl);
      EXPECT_EQ(kld, plain_kld);
      break;
    case 8:
      EXPECT_EQ(ppl, 25.245234122457163);
      EXPECT_EQ(kld, 0.021406544053804117);
      break;
    default:
      ADD_FAILURE() << "no pinned numbers for " << ql::SimdFloatLanes() << " float lanes (" << ql::GemmTarget() << ")";
  }
  EXPECT_NEAR(ppl / plain_ppl, 1.0, 1e-6);
  EXPECT_NEAR(kld / plain_kld, 1.0, 1e-6);
}

}  // namespace
