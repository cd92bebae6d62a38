// The compact reference (harness/sweep/compact_reference.h): cells run against BF16 bits of the reference
// give bit for bit the results of cells run against the FP32 reference, for weight-only, W8A8, calibrated,
// untied-head and whole-model (rotation) cells; the work model is restored exactly; a reference that is not
// BF16 (an fp32 baseline) is never compacted. On stories260K (tied head, 5 layers).
#include "tests/test_paths.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/compact_reference.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Returns whether the cell ran (a combination the algorithm refuses fails the same way on both).
bool ExpectSameResult(const CellResult& a, const CellResult& b, const std::string& label) {
  EXPECT_EQ(a.cell.id, b.cell.id) << label;
  EXPECT_EQ(a.cell.status, b.cell.status) << label << ": " << a.cell.reason << " / " << b.cell.reason;
  EXPECT_EQ(a.cell.reason, b.cell.reason) << label;
  if (a.cell.status != "ok" || b.cell.status != "ok") return false;
  EXPECT_TRUE(a.metrics && b.metrics) << label;
  if (!a.metrics || !b.metrics || a.metrics->values.size() != b.metrics->values.size()) return false;
  for (size_t i = 0; i < a.metrics->values.size(); ++i) {
    EXPECT_EQ(a.metrics->values[i].has_value(), b.metrics->values[i].has_value()) << label << " metric " << i;
    if (a.metrics->values[i] && b.metrics->values[i]) {
      EXPECT_TRUE(SameBits(*a.metrics->values[i], *b.metrics->values[i])) << label << " metric " << i;
    }
  }
  EXPECT_EQ(a.tensor_errors.size(), b.tensor_errors.size()) << label;
  for (size_t i = 0; i < std::min(a.tensor_errors.size(), b.tensor_errors.size()); ++i) {
    const TensorErrorRow &x = a.tensor_errors[i], &y = b.tensor_errors[i];
    EXPECT_EQ(x.tensor, y.tensor);
    EXPECT_TRUE(SameBits(x.mse, y.mse) && SameBits(x.sqnr_db, y.sqnr_db) && SameBits(x.max_abs, y.max_abs)) << x.tensor;
    EXPECT_EQ(x.bytes, y.bytes) << x.tensor;
  }
  EXPECT_EQ(a.layer_errors.size(), b.layer_errors.size()) << label;
  for (size_t i = 0; i < std::min(a.layer_errors.size(), b.layer_errors.size()); ++i)
    EXPECT_TRUE(SameBits(a.layer_errors[i].rel_mse, b.layer_errors[i].rel_mse)) << label << " layer " << i;
  EXPECT_EQ(a.arrays, b.arrays) << label;  // nll, kld, p_diff, histograms: float arrays, equal values
  return true;
}

class CompactReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(40000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir_.path() / "eval.txt", std::ios::binary) << text.substr(0, 20000);
    std::ofstream(dir_.path() / "calib.txt", std::ios::binary) << text.substr(20000);
  }
  std::string Yaml(const std::string& extra) const {
    return "name: compact\nmodel: " + kModel + "\ndata: " + (dir_.path() / "eval.txt").string() +
           "\nprotocol: {name: llamacpp, ctx: 64, chunks: 3}\ncalibration: {data: " +
           (dir_.path() / "calib.txt").string() + ", samples: 4, seqlen: 32}\n" + extra;
  }
  qltest::TempDir dir_{"ql_compact_reference_test"};
};

TEST_F(CompactReferenceTest, CellsGiveTheSameBitsAsAgainstTheFp32Reference) {
  const std::string grid =
      "grid:\n  schemes: [int4:g32, W8A8, Q4_K_M]\n  algorithms: [rtn, {name: gptq, blocksize: 32}, "
      "{name: rotation, r4: false}]\n  ignore: [none, lm_head]\n";
  int ran = 0;
  for (const std::string& extra : {std::string(), std::string("tied_head: untie\n")}) {
    auto e = ParseExperiment(Yaml(extra + grid), "t.yaml");
    ASSERT_TRUE(e.ok()) << e.status().message();
    const std::vector<Cell> cells = ExpandGrid(*e);
    ASSERT_EQ(cells.size(), 18u);
    auto plain = OpenSession(*e, cells, {});
    auto compact = OpenSession(*e, cells, {});
    ASSERT_TRUE(plain.ok() && compact.ok()) << plain.status().message();
    ASSERT_TRUE(CanCompactReference(**compact, cells));
    ASSERT_TRUE(CompactReference(compact->get()));
    EXPECT_FALSE((*compact)->reference_bf16.empty());
    for (const auto& [name, t] : (*compact)->reference.weights) {
      EXPECT_TRUE(t.data.empty()) << name << ": the FP32 values are released";
      EXPECT_EQ(t.shape, (*plain)->reference.W(name).shape) << name;
    }
    Model work_plain = WorkModel(**plain), work_compact = WorkModel(**compact);
    for (const auto& [name, t] : (*plain)->reference.weights) ASSERT_EQ(work_compact.W(name).data, t.data) << name;
    for (const Cell& c : cells) {
      auto pp = PlanCell(**plain, c), pc = PlanCell(**compact, c);
      ASSERT_TRUE(pp.ok() && pc.ok()) << c.Label();
      const CellResult a = RunCell(**plain, work_plain, *pp);
      const CellResult b = RunCell(**compact, work_compact, *pc);
      ran += ExpectSameResult(a, b, extra + c.Label());
      // Restored from the BF16 bits: the FP32 reference exactly, whatever the algorithm changed.
      ASSERT_EQ(work_compact.weights.size(), (*plain)->reference.weights.size()) << c.Label();
      for (const auto& [name, t] : (*plain)->reference.weights)
        ASSERT_EQ(work_compact.W(name).data, t.data) << c.Label() << ": " << name;
    }
  }
  EXPECT_GE(ran, 24) << "of 36 cells ran";
}

TEST_F(CompactReferenceTest, AnFp32BaselineIsNeverCompacted) {
  auto e = ParseExperiment(Yaml("baseline: fp32\ngrid:\n  schemes: [int4:g32]\n  algorithms: [rtn]\n"), "t.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::vector<Cell> cells = ExpandGrid(*e);
  auto s = OpenSession(*e, cells, {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_FALSE(CanCompactReference(**s, cells));
  // Asked anyway: its weights are not all BF16 numbers, so nothing changes.
  const Model before = (*s)->reference;
  EXPECT_FALSE(CompactReference(s->get()));
  EXPECT_TRUE((*s)->reference_bf16.empty());
  for (const auto& [name, t] : before.weights) EXPECT_EQ((*s)->reference.W(name).data, t.data) << name;
}

}  // namespace
}  // namespace ql
