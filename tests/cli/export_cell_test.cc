// `quantlab export --recipe / --cell` on quantlab-tiny: a Q4_K_M rtn cell exports byte-identical to
// `export --preset Q4_K_M` (the cell pipeline and export share LlamaMixScheme), from an experiment file and from
// a finished cell in a results store; overrides set per-tensor types; cells a GGUF file cannot hold are refused
// in one line naming the algorithm or the tensors (gptq and imatrix cells: export_algorithm_cell_test.cc).
#include <algorithm>
#include "tests/test_paths.h"
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "harness/io/gguf.h"
#include "tests/run_command.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kTiny = std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny";

class ExportCell : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ql_export_cell_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& n) const { return (dir_ / n).string(); }
  // A one-cell experiment file on the tiny model; returns its path.
  std::string Recipe(const std::string& name, const std::string& scheme, const std::string& extra = "") const {
    std::ofstream(P(name)) << "name: " << name << "\nmodel: " << kTiny << "\ndata: " << kTiny
                           << "/heldout.txt\nprotocol: {name: llamacpp, ctx: 64, chunks: 1}\n" << extra
                           << "grid:\n  schemes: [" << scheme << "]\n";
    return P(name);
  }
  qltest::CommandResult Quantlab(const std::string& args) const {
    return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + " 2>&1");
  }
  static std::string Bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  fs::path dir_;
};

TEST_F(ExportCell, RecipeAndStoredCellEqualThePresetExport) {
  const auto preset = Quantlab("export --model " + kTiny + " --preset Q4_K_M --out " + P("preset.gguf"));
  ASSERT_EQ(preset.exit_code, 0) << preset.out;
  const std::string recipe = Recipe("q4km.yaml", "Q4_K_M");
  const auto r = Quantlab("export --recipe " + recipe + " --out " + P("recipe.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string want = Bytes(P("preset.gguf"));
  ASSERT_GT(want.size(), 1000000u);
  EXPECT_TRUE(Bytes(P("recipe.gguf")) == want) << "recipe export differs from --preset Q4_K_M";

  const auto sweep = Quantlab("sweep " + recipe + " --results " + P("res") + " --no-table");
  ASSERT_EQ(sweep.exit_code, 0) << sweep.out;
  const auto id = qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " query \"SELECT id FROM cells\" --csv --results " +
                                     P("res") + " 2>&1 | tail -1");
  ASSERT_EQ(id.exit_code, 0) << id.out;
  const std::string prefix = id.out.substr(0, 12);
  const auto c = Quantlab("export --cell " + prefix + " --results " + P("res") + " --out " + P("cell.gguf"));
  ASSERT_EQ(c.exit_code, 0) << c.out;
  EXPECT_TRUE(Bytes(P("cell.gguf")) == want) << "cell export differs from --preset Q4_K_M";
  const auto missing = Quantlab("export --cell 00000000 --results " + P("res") + " --out " + P("x.gguf"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.out.find("no finished"), std::string::npos) << missing.out;
}

TEST_F(ExportCell, OverridesGiveTensorsTheirOwnType) {
  const std::string recipe =
      Recipe("mixed.yaml", "q4_0", "overrides:\n  - {targets: [\"re:.*down_proj\"], scheme: bf16}\n"
                                   "  - {targets: [model.layers.0.self_attn.v_proj], scheme: q8_0}\n");
  const auto r = Quantlab("export --recipe " + recipe + " --out " + P("mixed.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto f = io::ReadGgufHeader(P("mixed.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  int bf16 = 0, q8 = 0, q4 = 0;
  for (const io::GgufTensorInfo& t : f->tensors) {
    const std::string type = io::GgmlTypeName(t.type);
    if (t.name.find("ffn_down") != std::string::npos) EXPECT_EQ(type, "bf16") << t.name;
    if (t.name == "blk.0.attn_v.weight") EXPECT_EQ(type, "q8_0");
    bf16 += type == "bf16", q8 += type == "q8_0", q4 += type == "q4_0";
  }
  EXPECT_EQ(bf16, 6);
  EXPECT_EQ(q8, 1);
  EXPECT_EQ(q4, 6 * 6 - 1 + 1);  // q, k, v, o, gate, up per layer, minus one v, plus the tied head
}

TEST_F(ExportCell, RefusesWhatAGgufFileCannotHold) {
  std::ofstream(P("g2.yaml")) << "name: g2\nmodel: " << kTiny << "\ndata: " << kTiny
                              << "/heldout.txt\ngrid:\n  schemes: [q4_0]\n  algorithms: [llm_int8]\n";
  const auto g2 = Quantlab("export --recipe " + P("g2.yaml") + " --out " + P("g2.gguf"));
  EXPECT_NE(g2.exit_code, 0);
  EXPECT_NE(g2.out.find("algorithm 'llm_int8"), std::string::npos) << g2.out;
  EXPECT_NE(g2.out.find("online transform"), std::string::npos) << g2.out;
  const auto int4 = Quantlab("export --recipe " + Recipe("i.yaml", "int4:g32") + " --out " + P("i.gguf"));
  EXPECT_NE(int4.exit_code, 0);
  EXPECT_NE(int4.out.find("model.layers.0.self_attn.q_proj (int4:g32)"), std::string::npos) << int4.out;
  const auto two = Quantlab("export --recipe " + Recipe("two.yaml", "q4_0, q8_0") + " --out " + P("t.gguf"));
  EXPECT_NE(two.exit_code, 0);
  EXPECT_NE(two.out.find("2 cells"), std::string::npos) << two.out;
  for (const auto* r : {&g2, &int4, &two}) EXPECT_EQ(std::count(r->out.begin(), r->out.end(), '\n'), 1) << r->out;
  EXPECT_FALSE(fs::exists(P("i.gguf")));
}

}  // namespace
}  // namespace ql
