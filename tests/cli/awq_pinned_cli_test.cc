// AWQ's search is fused and abandons candidates early (kernels/group_error.h, harness/quant/awq.cc), by
// rules meant to choose exactly what the plain search chose. This pins one AWQ cell on quantlab-tiny to
// the numbers of the plain search (GEMM per candidate and group, every candidate summed in full, α in
// order), recorded with the implementation before the fused one (commit 31b16ea).
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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
  EXPECT_EQ(j["ppl"].get<double>(), 25.245237309436682);
  EXPECT_EQ(j["kld_mean"].get<double>(), 0.021406543015457396);
}

}  // namespace
