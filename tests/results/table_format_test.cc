// Tables for papers and terminals: golden Markdown and LaTeX output of `quantlab compare` on a
// hand-made store, the terminal table's fitting rule, escaping, and reading the store by column name.
#include "results/table_format.h"

#include <filesystem>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "results/compare.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

class CompareStore : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ResultStore::Open(dir_.str());
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->PutExperiment({"e1", "grid", "name: grid\n", "2026-11-30T10:00:00Z", "v1", "h"}).ok());
    Commit("c1", "int4:g32", "none", 5.025, 4.9, 0.82, 0.48, 1.28, 0.1651, 0.8254);
    Commit("c2", "fp8_e4m3:channel", "lm_head", 8.433, 4.07, -0.0079, -0.0326, 0.0169, 0.00062, 0.9921);
    CellResult bad = Base("c3", "int2:g32", "none");
    bad.cell.status = "diverged";
    bad.cell.reason = "PPL above 1e4 (the sweep's divergence limit)";
    ASSERT_TRUE(store_->CommitCell(bad).ok());
  }
  void TearDown() override {
    store_.reset();
  }
  CellResult Base(const std::string& id, const std::string& w, const std::string& ignore) {
    CellResult r;
    r.cell.id = id, r.cell.experiment_id = "e1", r.cell.protocol = "llamacpp:ctx128";
    r.cell.weight_scheme = w, r.cell.algorithm = "rtn", r.cell.ignore_set = ignore, r.cell.config = "{}";
    r.cell.status = "ok", r.cell.code_version = "v1";
    return r;
  }
  void Commit(const std::string& id, const std::string& w, const std::string& ignore, double bpw, double ppl,
              double dppl, double lo, double hi, double kld, double top1) {
    CellResult r = Base(id, w, ignore);
    MetricsRow m;
    for (const auto& [name, v] : {std::pair<const char*, double>{"n_tokens", 126}, {"ppl", ppl}, {"ppl_base", ppl - dppl},
                                  {"dppl", dppl}, {"dppl_lo", lo}, {"dppl_hi", hi}, {"kld_mean", kld},
                                  {"kld_p99", 10 * kld}, {"top1", top1}, {"bits_per_weight", bpw}})
      m.Set(name, v);
    r.metrics = m;
    ASSERT_TRUE(store_->CommitCell(r).ok());
  }
  TextTable Table(std::vector<std::string> cols, const std::string& sort = "dppl") {
    auto t = CompareTable(*store_, {"e1", sort, std::move(cols)});
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t.ok() ? *t : TextTable{};
  }
  qltest::TempDir dir_{"ql_table_test"};
  std::unique_ptr<ResultStore> store_;
};

TEST_F(CompareStore, MarkdownGolden) {
  EXPECT_EQ(FormatMarkdown(Table({"weights", "ignore", "bpw", "dppl", "dppl_ci", "kld", "top1"})),
            "| Weights          | Ignored | Bits/weight |    ΔPPL |        ΔPPL 95% CI |     KLD |  Top-1 |\n"
            "| :--------------- | :------ | ----------: | ------: | -----------------: | ------: | -----: |\n"
            "| fp8_e4m3:channel | lm_head |       8.433 | -0.0079 | [-0.0326, +0.0169] | 0.00062 | 99.21% |\n"
            "| int4:g32         | none    |       5.025 | +0.8200 | [+0.4800, +1.2800] | 0.16510 | 82.54% |\n"
            "| int2:g32         | none    |             |         |                    |         |        |\n");
}

TEST_F(CompareStore, LatexGolden) {
  EXPECT_EQ(FormatLatex(Table({"weights", "bpw", "dppl", "dppl_ci", "top1", "status"}, "bits")),
            "\\begin{tabular}{lrrrrl}\n"
            "\\toprule\n"
            "Weights & Bits/weight & $\\Delta$PPL & $\\Delta$PPL 95\\% CI & Top-1 & Status \\\\\n"
            "\\midrule\n"
            "int4:g32 & $5.025$ & $+0.8200$ & $[+0.4800, +1.2800]$ & $82.54\\%$ & ok \\\\\n"
            "fp8\\_e4m3:channel & $8.433$ & $-0.0079$ & $[-0.0326, +0.0169]$ & $99.21\\%$ & ok \\\\\n"
            "int2:g32 & -- & -- & -- & -- & diverged \\\\\n"
            "\\bottomrule\n"
            "\\end{tabular}\n");
}

TEST_F(CompareStore, DefaultColumnsAndUnknownColumn) {
  const TextTable t = Table({});
  std::vector<std::string> keys;
  for (const auto& c : t.columns) keys.push_back(c.key);
  // No experiment column (one experiment), no acts/kv/attn (none set), reason (one cell has one).
  EXPECT_EQ(keys, (std::vector<std::string>{"weights", "algo", "ignore", "bpw", "ppl", "dppl", "dppl_ci", "kld",
                                            "kld_p99", "top1", "status", "reason"}));
  auto bad = CompareTable(*store_, {"e1", "dppl", {"weights", "perplexity"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown column 'perplexity'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("dppl_ci"), std::string::npos);  // lists the allowed keys
}

TEST_F(CompareStore, TerminalFitsEightyColumnsAndWideShowsAll) {
  const TextTable t = Table({});
  const std::string narrow = FormatTerminal(t, 80), wide = FormatTerminal(t, 0);
  std::istringstream in(narrow);
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) EXPECT_LE(DisplayWidth(line), 80u) << line;
  EXPECT_GE(lines, 2 + 3 + 1);  // header, rule, 3 cells, the "not shown" note (wrapped at 80)
  EXPECT_NE(narrow.find("algo=rtn"), std::string::npos);  // a dropped column that is the same everywhere
  EXPECT_NE(narrow.find("--wide shows all"), std::string::npos);
  EXPECT_NE(narrow.find("fp8_e4m3:channel"), std::string::npos);  // identity columns are never cut below 20
  EXPECT_NE(narrow.find("+0.8200"), std::string::npos);           // ΔPPL (priority 1) stays
  EXPECT_EQ(wide.find("not shown"), std::string::npos);
  EXPECT_NE(wide.find("PPL above 1e4 (the sweep's divergence limit)"), std::string::npos);
  EXPECT_GT(wide.find('\n'), 100u);  // every column at full width: far wider than 80
}

TEST(TableFormat, TerminalDropsHighestPriorityFirstAndAbbreviates) {
  TextTable t;
  t.columns = {{"name", "", "", false, 0, 6}, {"a", "", "", true, 1, 0}, {"b", "", "", true, 2, 0}};
  t.rows = {{"abcdefghij", "1.0", "2.0"}};
  EXPECT_EQ(FormatTerminal(t, 0), "name          a    b\n----------  ---  ---\nabcdefghij  1.0  2.0\n");
  // 6 + 2 + 3 + 2 + 3 = 16: abbreviation alone fits.
  EXPECT_EQ(FormatTerminal(t, 16), "name      a    b\n------  ---  ---\nabcde…  1.0  2.0\n");
  EXPECT_EQ(FormatTerminal(t, 12), "name      a\n------  ---\nabcde…  1.0\n(not shown to fit 12 columns: b; --wide shows all)\n");
}

TEST(TableFormat, EscapingAndWidth) {
  EXPECT_EQ(EscapeLatex("a_b%c&d#e$f{g}h~i^j\\k"),
            "a\\_b\\%c\\&d\\#e\\$f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k");
  EXPECT_EQ(DisplayWidth("ΔPPL…"), 5u);
  SqlResult r{{"x", "y"}, {{int64_t(1), std::string("a|b")}}};
  const TextTable t = TableFromQuery(r);
  EXPECT_TRUE(t.columns[0].numeric);
  EXPECT_FALSE(t.columns[1].numeric);
  EXPECT_EQ(FormatMarkdown(t), "|   x | y    |\n| --: | :--- |\n|   1 | a\\|b |\n");
}

}  // namespace
}  // namespace ql
