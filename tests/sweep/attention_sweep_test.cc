// The `attention:` scheme key end to end: YAML parsing, validation errors with file:line, grid axis,
// cell identity; the results column attn_scheme (version-1 stores upgraded in place and merged); a
// real sweep on stories260K through the quantlab binary recording and showing it.
#include <sys/wait.h>
#include "tests/test_paths.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "harness/sweep/experiment.h"
#include "harness/sweep/runner.h"
#include "results/report.h"
#include "results/compare.h"
#include "results/store.h"
#include "results/table_format.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

std::string Yaml(const std::string& grid) { return "name: t\nmodel: m\ndata: d\ngrid:\n" + grid; }

std::string ErrorOf(const std::string& yaml) {
  auto e = ParseExperiment(yaml, "x.yaml");
  return e.ok() ? std::string("(no error)") : e.status().message();
}

TEST(AttentionExperiment, MapAndStringFormsAreCanonicalized) {
  auto e = ParseExperiment(Yaml("  schemes:\n"
                                "    - {weights: int8:channel, attention: {q: INT8-token, p: fp8_e4m3:noscale}}\n"
                                "    - {weights: int8:channel, attention: int8:token}\n"
                                "    - {weights: int8:channel, attention: {p: int4:token:asym}}\n"
                                "    - int8:channel\n"),
                           "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->schemes.size(), 4u);
  EXPECT_EQ(e->schemes[0].attn_q, "int8:token");
  EXPECT_EQ(e->schemes[0].attn_p, "fp8_e4m3:noscale");
  EXPECT_EQ(e->schemes[0].AttentionText(), "q=int8:token p=fp8_e4m3:noscale");
  EXPECT_EQ(e->schemes[0].label, "W=int8:channel, Q=int8:token P=fp8_e4m3:noscale");
  EXPECT_EQ(e->schemes[1].attn_q, "int8:token");
  EXPECT_EQ(e->schemes[1].attn_p, "int8:token");
  EXPECT_EQ(e->schemes[1].label, "W=int8:channel, QP=int8:token");
  EXPECT_EQ(e->schemes[2].AttentionText(), "q=none p=int4:token:asym");
  EXPECT_EQ(e->schemes[3].AttentionText(), "");

  // Identity: the attention pair enters the canonical JSON, and only when set (cells without it keep
  // the identity they had before the key existed: exactly the four older fields).
  const auto cells = ExpandGrid(*e);
  const nlohmann::json j0 = cells[0].CanonicalJson(*e), j3 = cells[3].CanonicalJson(*e);
  EXPECT_EQ(j0["scheme"]["attention"], (nlohmann::json{{"q", "int8:token"}, {"p", "fp8_e4m3:noscale"}}));
  EXPECT_EQ(j3["scheme"], (nlohmann::json{{"weights", "int8:channel"}, {"activations", ""}, {"kv_cache", ""},
                                          {"mix", ""}}));
  std::set<std::string> ids;
  for (const auto& c : cells) ids.insert(CellId(c.CanonicalJson(*e), {"m", "d", ""}));
  EXPECT_EQ(ids.size(), 4u);
}

TEST(AttentionExperiment, AxisMultipliesAndOverrides) {
  auto e = ParseExperiment(Yaml("  schemes: [W8A8, {weights: int8:channel, attention: int4:token}]\n"
                                "  kv_cache: [none, int8:token]\n"
                                "  attention: [none, int8:token, {q: int8:token, p: fp8_e4m3:noscale}]\n"),
                           "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const auto cells = ExpandGrid(*e);
  ASSERT_EQ(cells.size(), 12u);  // 2 schemes x 2 kv x 3 attention
  EXPECT_EQ(cells[0].scheme.AttentionText(), "");
  EXPECT_EQ(cells[0].scheme.label, "W8A8 KV=none QP=none");
  EXPECT_EQ(cells[1].scheme.AttentionText(), "q=int8:token p=int8:token");
  EXPECT_EQ(cells[2].scheme.AttentionText(), "q=int8:token p=fp8_e4m3:noscale");
  EXPECT_EQ(cells[2].scheme.label, "W8A8 KV=none Q=int8:token P=fp8_e4m3:noscale");
  EXPECT_EQ(cells[6].scheme.AttentionText(), "");  // the axis' none overrides the scheme's int4
  EXPECT_EQ(cells[10].scheme.kv_cache, "int8:token");
  EXPECT_EQ(cells[10].scheme.attn_p, "int8:token");

  auto presets = ParseExperiment("name: t\nmodel: m\ndata: d\npresets: {mine: {weights: int8:channel, attention: "
                                 "{p: int8:token}}}\ngrid: {schemes: [mine]}\n",
                                 "x.yaml");
  ASSERT_TRUE(presets.ok()) << presets.status().message();
  EXPECT_EQ(presets->schemes[0].attn_q, "");
  EXPECT_EQ(presets->schemes[0].attn_p, "int8:token");
}

TEST(AttentionExperiment, ErrorsNameLineAndFix) {
  std::string m = ErrorOf(Yaml("  schemes:\n    - {weights: int8:channel, attention: {q: int8:token, k: int8:token}}\n"));
  EXPECT_NE(m.find("x.yaml:6"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown key 'k' in attention (allowed: q, p)"), std::string::npos) << m;

  m = ErrorOf(Yaml("  schemes: [int8:channel]\n  attention:\n    - none\n    - int8:tensor\n"));
  EXPECT_NE(m.find("x.yaml:8"), std::string::npos) << m;
  EXPECT_NE(m.find("shares a scale across tokens"), std::string::npos) << m;
  EXPECT_NE(m.find("use token, g<N>, noscale"), std::string::npos) << m;

  m = ErrorOf(Yaml("  schemes:\n    - {weights: int8:channel, attention: {p: int9:token}}\n"));
  EXPECT_NE(m.find("x.yaml:6"), std::string::npos) << m;
  EXPECT_NE(m.find("attention.p 'int9:token'"), std::string::npos) << m;

  m = ErrorOf(Yaml("  schemes:\n    - {weights: int8:channel, attention: [int8:token]}\n"));
  EXPECT_NE(m.find("a map {q, p}"), std::string::npos) << m;

  m = ErrorOf(Yaml("  schemes: [int8:channel]\n  attention: [int8:token, INT8-TOKEN]\n"));
  EXPECT_NE(m.find("same cell twice"), std::string::npos) << m;

  m = ErrorOf("name: t\nmodel: m\ndata: d\npresets: {mine: {attention: int8:channel_in}}\ngrid: {schemes: [mine]}\n");
  EXPECT_NE(m.find("x.yaml:4"), std::string::npos) << m;
  EXPECT_NE(m.find("channel_in"), std::string::npos) << m;
}

class AttentionStore : public ::testing::Test {
 protected:
  static CellResult Cell(const std::string& id, const std::string& attn) {
    CellResult r;
    r.cell.id = id;
    r.cell.protocol = "llamacpp:ctx8";
    r.cell.weight_scheme = "int8:channel";
    r.cell.algorithm = "rtn";
    r.cell.config = "{}";
    r.cell.status = "ok";
    r.cell.attn_scheme = attn;
    MetricsRow m;
    m.Set("n_tokens", 3);
    m.Set("ppl", 1.5);
    r.metrics = m;
    return r;
  }
  // A version-1 store: written by this code, then the column dropped and the version set back
  // (version 1's cells table is version 3's without its last two columns).
  std::string MakeV1(const std::string& name, const std::string& cell_id) {
    const std::string d = (dir_ / name).string();
    {
      auto s = ResultStore::Open(d);
      EXPECT_TRUE(s.ok()) << s.status().message();
      EXPECT_TRUE((*s)->CommitCell(Cell(cell_id, "")).ok());
      EXPECT_TRUE((*s)->db().Exec("ALTER TABLE cells DROP COLUMN numerics_version; "
                                  "ALTER TABLE cells DROP COLUMN attn_scheme; "
                                  "UPDATE meta SET value = '1' WHERE key = 'schema_version'").ok());
    }
    return d;
  }
  static std::string Q(ResultStore& s, const std::string& sql) {
    auto r = s.Query(sql);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() && !r->rows.empty() ? SqlValueToString(r->rows[0][0]) : "(none)";
  }
  qltest::TempDir dir_{"ql_attn_test"};
};

TEST_F(AttentionStore, VersionOneStoreIsUpgradedAndStillReadable) {
  const std::string v1 = MakeV1("v1", "old1");
  {  // read-only: no upgrade, no attention column; the compare table leaves it out
    auto ro = ResultStore::OpenReadOnly(v1);
    ASSERT_TRUE(ro.ok());
    EXPECT_FALSE(AnyCellSets(**ro, "", "attn_scheme"));
    EXPECT_TRUE(CompareTable(**ro, {}).ok());  // the table reads columns by name: a missing one is NULL
    EXPECT_TRUE(RenderReportHtml(**ro, {}).ok());  // the report reads a version-1 store too
  }
  auto s = ResultStore::Open(v1);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(Q(**s, "SELECT value FROM meta WHERE key = 'schema_version'"), std::to_string(kResultsSchemaVersion));
  EXPECT_EQ(Q(**s, "SELECT '[' || attn_scheme || ']' FROM cells WHERE id = 'old1'"), "[]");
  EXPECT_FALSE(AnyCellSets(**s, "", "attn_scheme"));
  ASSERT_TRUE((*s)->CommitCell(Cell("new1", "q=int8:token p=int8:token")).ok());
  EXPECT_EQ(Q(**s, "SELECT attn_scheme FROM cells WHERE id = 'new1'"), "q=int8:token p=int8:token");
  EXPECT_TRUE(AnyCellSets(**s, "", "attn_scheme"));
  EXPECT_FALSE(AnyCellSets(**s, "", "kv_scheme"));
  auto table = CompareTable(**s, {"", "dppl", {"weights", "kv", "attn"}});
  ASSERT_TRUE(table.ok()) << table.status().message();
  const SqlResult rows = TableToQuery(*table);
  ASSERT_EQ(rows.columns.size(), 3u);
  EXPECT_EQ(rows.columns[2], "attn");
  // Opening again is a no-op.
  s->reset();
  auto again = ResultStore::Open(v1);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Q(**again, "SELECT count(*) FROM cells"), "2");
}

TEST_F(AttentionStore, VersionOneShardMergesIntoVersionTwo) {
  const std::string v1 = MakeV1("v1", "old1");
  const std::string dest = (dir_ / "dest").string();
  {
    auto s = ResultStore::Open(dest);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->CommitCell(Cell("new1", "q=none p=fp8_e4m3:noscale")).ok());
  }
  ASSERT_TRUE(ResultStore::Merge(dest, {v1}).ok());
  auto s = ResultStore::OpenReadOnly(dest);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Q(**s, "SELECT count(*) FROM cells"), "2");
  EXPECT_EQ(Q(**s, "SELECT '[' || attn_scheme || ']' FROM cells WHERE id = 'old1'"), "[]");
  EXPECT_EQ(Q(**s, "SELECT attn_scheme FROM cells WHERE id = 'new1'"), "q=none p=fp8_e4m3:noscale");
}

// The binary on stories260K: an attention cell is recorded with its column and shown by compare;
// quantizing P with int4 per row costs more than int8 (KLD).
TEST_F(AttentionStore, SweepRecordsAndComparesAttentionCells) {
  std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
  std::string text(24000, '\0');
  in.read(text.data(), text.size());
  std::ofstream(dir_ / "eval.txt", std::ios::binary) << text;
  std::ofstream(dir_ / "exp.yaml") << "name: t\nmodel: " << QL_SHARED_DIR << "/models/stories260K/stories260K.bin\n"
                                   << "data: eval.txt\nprotocol: {name: llamacpp, ctx: 128, chunks: 4}\n"
                                   << "baseline: fp32\nresults: res\ngrid:\n  schemes: [int8:channel]\n"
                                   << "  attention: [none, {p: int8:token}, {p: int4:token}]\n";
  const std::string log = (dir_ / "log.txt").string();
  const std::string cmd = std::string(QL_QUANTLAB_BIN) + " sweep '" + (dir_ / "exp.yaml").string() + "' >'" + log +
                          "' 2>&1 && " + QL_QUANTLAB_BIN + " compare --results '" + (dir_ / "res").string() +
                          "' >>'" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream lf(log);
  const std::string out((std::istreambuf_iterator<char>(lf)), {});
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
  EXPECT_NE(out.find("attn"), std::string::npos) << out;
  EXPECT_NE(out.find("q=none p=int4:token"), std::string::npos) << out;
  auto s = ResultStore::OpenReadOnly((dir_ / "res").string());
  ASSERT_TRUE(s.ok());
  auto kld = [&](const std::string& attn) {
    return std::stod(Q(**s, "SELECT m.kld_mean FROM cells c JOIN metrics m ON m.cell_id = c.id WHERE c.status = 'ok' "
                            "AND c.attn_scheme = '" + attn + "'"));
  };
  const double k_none = kld(""), k8 = kld("q=none p=int8:token"), k4 = kld("q=none p=int4:token");
  EXPECT_LT(k_none, k8);
  EXPECT_LT(k8, k4);
  // The report labels and tabulates the attention scheme.
  auto html = RenderReportHtml(**s, {});
  ASSERT_TRUE(html.ok()) << html.status().message();
  EXPECT_NE(html->find("ATTN(q=none p=int4:token)"), std::string::npos);
  EXPECT_NE(html->find("<td>q=none p=int8:token</td>"), std::string::npos);
}

}  // namespace
}  // namespace ql
