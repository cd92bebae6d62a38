// `quantlab export --cell` for cells whose algorithm chose the codes (gptq, imatrix; iq4_nl on layer 0) and `--imatrix` with
// --recipe, on quantlab-tiny converted to an F32 GGUF (so the sweep's model and the exported file share one
// RoPE layout): the exported file, loaded by quantlab and evaluated at fp32, gives bitwise the perplexity the
// sweep stored for the cell; an rtn recipe with --imatrix is byte-identical to `--preset --imatrix`; what
// cannot be checked or held is refused in one line.
#include <algorithm>
#include "tests/test_paths.h"
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/run_command.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kTiny = std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny";
constexpr const char* kProtocol = "--protocol llamacpp --ctx 128 --chunks 3";

class ExportAlgorithmCell : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ql_export_algo_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
    const auto r = Quantlab("export --model " + kTiny + " --scheme f32 --out " + P("tiny.gguf"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& n) const { return (dir_ / n).string(); }
  qltest::CommandResult Quantlab(const std::string& args) const {
    return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + " 2>&1");
  }
  // A one-file experiment on the F32 tiny GGUF; `grid` is the grid's body.
  std::string Recipe(const std::string& name, const std::string& grid, const std::string& extra = "") const {
    std::ofstream(P(name)) << "name: " << name << "\nmodel: " << P("tiny.gguf") << "\ndata: " << kTiny
                           << "/heldout.txt\nprotocol: {name: llamacpp, ctx: 128, chunks: 3}\nbaseline: bf16\n"
                           << "calibration: {data: " << kTiny << "/calibration.txt, samples: 4, seqlen: 64, seed: 3}\n"
                           << extra << "grid:\n" << grid;
    return P(name);
  }
  // The stored value of `what` for the cell of `algorithm`: CSV (text) or the JSON output (full precision).
  std::string Stored(const std::string& algorithm, const std::string& what, const char* format = "--csv") const {
    const auto q = qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " query \"SELECT " + what +
                                      " FROM cells c JOIN metrics m ON m.cell_id = c.id WHERE c.algorithm = '" +
                                      algorithm + "'\" " + format + " --results " + P("res") + " 2>&1");
    EXPECT_EQ(q.exit_code, 0) << q.out;
    std::string v = q.out;
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
    return format == std::string("--csv") ? v.substr(v.find_last_of('\n') + 1) : v;  // CSV: the value row
  }
  static std::string Bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  // The number after "key": in JSON text (eval --json, query --json print doubles in full).
  static double JsonNumber(const std::string& json, const std::string& key) {
    size_t at = json.find("\"" + key + "\":");
    if (at == std::string::npos) return -1;
    at += key.size() + 3;
    while (at < json.size() && json[at] == ' ') ++at;
    return std::strtod(json.c_str() + at, nullptr);
  }
  fs::path dir_;
};

TEST_F(ExportAlgorithmCell, GptqAndImatrixCellsExportTheWeightsTheyEvaluated) {
  // iq4_nl: its fit does not find its own grid again from dequantized values (gguf_repack_test.cc), so this
  // needs the rounding inputs GPTQ keeps for export; layer 0 only, to keep GPTQ's cost small.
  const std::string grid = "  schemes: [iq4_nl]\n  algorithms: [gptq, imatrix]\n";
  const std::string layer0 = "targets: [\"re:model\\\\.layers\\\\.0\\\\.\"]\n";
  const std::string recipe = Recipe("algos.yaml", grid, layer0);
  const auto sweep = Quantlab("sweep " + recipe + " --results " + P("res") + " --no-table");
  ASSERT_EQ(sweep.exit_code, 0) << sweep.out;
  for (const std::string algo : {"gptq", "imatrix"}) {
    SCOPED_TRACE(algo);
    const std::string id = Stored(algo, "c.id");
    ASSERT_EQ(id.size(), 20u) << id;
    const std::string out = P(algo + ".gguf");
    const auto no_calib = Quantlab("export --cell " + id + " --results " + P("res") + " --out " + out);
    EXPECT_NE(no_calib.exit_code, 0);
    EXPECT_NE(no_calib.out.find("--calib"), std::string::npos) << no_calib.out;
    const auto wrong = Quantlab("export --cell " + id + " --results " + P("res") + " --calib " + kTiny +
                                "/heldout.txt --out " + out);
    EXPECT_NE(wrong.exit_code, 0);
    EXPECT_NE(wrong.out.find("not calibrated on this text"), std::string::npos) << wrong.out;
    EXPECT_FALSE(fs::exists(out));
    const auto ex = Quantlab("export --cell " + id.substr(0, 10) + " --results " + P("res") + " --calib " + kTiny +
                             "/calibration.txt --out " + out);
    ASSERT_EQ(ex.exit_code, 0) << ex.out;
    const auto ev = qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " eval --model " + out + " --data " + kTiny +
                                       "/heldout.txt " + kProtocol + " --baseline fp32 --json 2>/dev/null");
    ASSERT_EQ(ev.exit_code, 0) << ev.out;
    const double stored = JsonNumber(Stored(algo, "m.ppl", "--json"), "ppl");
    EXPECT_GT(stored, 1.0);
    EXPECT_EQ(JsonNumber(ev.out, "ppl_base"), stored) << "the exported file does not evaluate to the cell's PPL";
    if (algo == "gptq") continue;  // (gptq's second run is the slow part; the recipe path is the same code)
    // A recipe of the same cell writes the same file.
    const std::string one = Recipe(algo + ".yaml", "  schemes: [iq4_nl]\n  algorithms: [" + algo + "]\n", layer0);
    const auto rec = Quantlab("export --recipe " + one + " --out " + P(algo + "-recipe.gguf"));
    ASSERT_EQ(rec.exit_code, 0) << rec.out;
    EXPECT_TRUE(Bytes(P(algo + "-recipe.gguf")) == Bytes(out));
  }
}

TEST_F(ExportAlgorithmCell, ImatrixWithARecipeEqualsThePresetExport) {
  const auto im = Quantlab("imatrix --model " + P("tiny.gguf") + " --text " + kTiny + "/calibration.txt --ctx 128 " +
                           "--chunks 4 --out " + P("im.gguf"));
  ASSERT_EQ(im.exit_code, 0) << im.out;
  const auto preset = Quantlab("export --model " + P("tiny.gguf") + " --preset Q4_K_M --imatrix " + P("im.gguf") +
                               " --out " + P("preset.gguf"));
  ASSERT_EQ(preset.exit_code, 0) << preset.out;
  // baseline fp32: the F32 weights themselves, as --preset reads them.
  std::ofstream(P("q4km.yaml")) << "name: q4km\nmodel: " << P("tiny.gguf") << "\ndata: " << kTiny
                                << "/heldout.txt\nbaseline: fp32\ngrid:\n  schemes: [Q4_K_M]\n";
  const auto rec = Quantlab("export --recipe " + P("q4km.yaml") + " --imatrix " + P("im.gguf") + " --out " +
                            P("recipe.gguf"));
  ASSERT_EQ(rec.exit_code, 0) << rec.out;
  const std::string want = Bytes(P("preset.gguf"));
  ASSERT_GT(want.size(), 1000000u);
  EXPECT_TRUE(Bytes(P("recipe.gguf")) == want) << "--recipe --imatrix differs from --preset --imatrix";
  const auto plain = Quantlab("export --recipe " + P("q4km.yaml") + " --out " + P("plain.gguf"));
  ASSERT_EQ(plain.exit_code, 0) << plain.out;
  EXPECT_FALSE(Bytes(P("plain.gguf")) == want) << "the imatrix changed nothing";

  const std::string gptq = Recipe("g.yaml", "  schemes: [q4_0]\n  algorithms: [gptq]\n");
  const auto refused = Quantlab("export --recipe " + gptq + " --imatrix " + P("im.gguf") + " --out " + P("g.gguf"));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.out.find("algorithm is 'gptq'"), std::string::npos) << refused.out;
  EXPECT_EQ(std::count(refused.out.begin(), refused.out.end(), '\n'), 1) << refused.out;
}

}  // namespace
}  // namespace ql
