// The task_metrics table of the results store: rows committed with their cell (NaN stored as NULL),
// replaced on recommit, copied by merge, a version-3 store (before the table) upgraded in place, and
// the task columns of the comparison table (default set and picked by --columns).
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "results/compare.h"
#include "results/store.h"
#include "tests/results/cell_fixture.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

class TaskStore : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ql_task_store_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Sub(const std::string& s) const { return (dir_ / s).string(); }

  static CellResult Cell(const std::string& id, double delta) {
    CellResult r = qltest::MinimalCell(id);
    r.task_metrics = {{"piqa", "lmeval", "acc_norm_delta", delta},
                      {"piqa", "lmeval", "acc_norm_boot_lo", NAN},
                      {"piqa", "llamacpp", "acc_per_token_delta", 2 * delta}};
    return r;
  }

  static std::string Csv(const std::string& dir, const std::string& sql) {
    auto s = ResultStore::OpenReadOnly(dir);
    EXPECT_TRUE(s.ok()) << s.status().message();
    if (!s.ok()) return "";
    auto r = (*s)->Query(sql);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? FormatCsv(*r) : "";
  }
  fs::path dir_;
  const std::string kRows =
      "SELECT cell_id, task, convention, metric, value FROM task_metrics ORDER BY cell_id, convention, metric";
};

TEST_F(TaskStore, CommitReplaceAndNull) {
  {
    auto s = ResultStore::Open(Sub("r"));
    ASSERT_TRUE(s.ok()) << s.status().message();
    ASSERT_TRUE((*s)->CommitCell(Cell("c1", -0.25)).ok());
    ASSERT_TRUE((*s)->CommitCell(Cell("c1", -0.5)).ok());  // replaces, no duplicate rows
  }
  EXPECT_EQ(Csv(Sub("r"), kRows),
            "cell_id,task,convention,metric,value\n"
            "c1,piqa,llamacpp,acc_per_token_delta,-1\n"
            "c1,piqa,lmeval,acc_norm_boot_lo,\n"
            "c1,piqa,lmeval,acc_norm_delta,-0.5\n");
}

TEST_F(TaskStore, VersionThreeStoreIsUpgradedInPlace) {
  {
    auto s = ResultStore::Open(Sub("old"));
    ASSERT_TRUE(s.ok());
    CellResult plain = Cell("c0", 0);
    plain.task_metrics.clear();
    ASSERT_TRUE((*s)->CommitCell(plain).ok());
    ASSERT_TRUE((*s)->db().Exec("DROP TABLE task_metrics").ok());
    ASSERT_TRUE((*s)->db().Exec("UPDATE meta SET value = '3' WHERE key = 'schema_version'").ok());
  }
  {
    auto s = ResultStore::Open(Sub("old"));
    ASSERT_TRUE(s.ok()) << s.status().message();
    ASSERT_TRUE((*s)->CommitCell(Cell("c1", -0.25)).ok());
  }
  EXPECT_EQ(Csv(Sub("old"), "SELECT value FROM meta WHERE key = 'schema_version'"),
            "value\n" + std::to_string(kResultsSchemaVersion) + "\n");
  EXPECT_EQ(Csv(Sub("old"), "SELECT id FROM cells ORDER BY id"), "id\nc0\nc1\n");
  EXPECT_EQ(Csv(Sub("old"), "SELECT count(*) FROM task_metrics WHERE cell_id = 'c1'"), "count(*)\n3\n");
}

TEST_F(TaskStore, MergeCopiesTaskRows) {
  {
    auto a = ResultStore::Open(Sub("a"));
    auto b = ResultStore::Open(Sub("b"));
    auto all = ResultStore::Open(Sub("all"));
    ASSERT_TRUE(a.ok() && b.ok() && all.ok());
    ASSERT_TRUE((*a)->CommitCell(Cell("c1", -0.25)).ok());
    ASSERT_TRUE((*b)->CommitCell(Cell("c2", 0.125)).ok());
    ASSERT_TRUE((*all)->CommitCell(Cell("c1", -0.25)).ok());
    ASSERT_TRUE((*all)->CommitCell(Cell("c2", 0.125)).ok());
  }
  ASSERT_TRUE(ResultStore::Merge(Sub("m"), {Sub("a"), Sub("b")}).ok());
  ASSERT_TRUE(ResultStore::Merge(Sub("m"), {Sub("b")}).ok());  // again: nothing added
  EXPECT_EQ(Csv(Sub("m"), kRows), Csv(Sub("all"), kRows));
  EXPECT_NE(Csv(Sub("m"), kRows).find("c2,piqa,lmeval,acc_norm_delta,0.125"), std::string::npos);
}

// compare --columns picks task columns by TASK[.CONVENTION].METRIC, beside the fixed ones, in the
// order given; an unknown name lists the task columns this store has.
TEST_F(TaskStore, CompareColumnsPickTaskColumns) {
  {
    auto s = ResultStore::Open(Sub("c"));
    ASSERT_TRUE(s.ok()) << s.status().message();
    CellResult c = Cell("c1", -0.25);
    c.task_metrics.push_back({"piqa", "lmeval", "acc_norm_mcnemar_p", 0.0625});
    ASSERT_TRUE((*s)->CommitCell(c).ok());
  }
  auto s = ResultStore::OpenReadOnly(Sub("c"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto t = CompareTable(**s, {"", "dppl", {"piqa.acc_per_token", "weights", "piqa.lmeval.acc_norm", "kld"}});
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::vector<std::string> keys;
  for (const TableColumn& c : t->columns) keys.push_back(c.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"piqa.acc_per_token Δ", "weights", "piqa.acc_norm Δ", "kld"}));
  ASSERT_EQ(t->rows.size(), 1u);
  // acc_per_token has no McNemar row in this store: p prints as nan.
  EXPECT_EQ(t->rows[0], (std::vector<std::string>{"-50.0 (p=nan)", "int4:g32", "-25.0 (p=0.062)", ""}));
  auto same = CompareTable(**s, {"", "dppl", {"piqa.acc_norm"}});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->rows[0], (std::vector<std::string>{"-25.0 (p=0.062)"}));
  // The default set still appends every task column.
  auto all = CompareTable(**s, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->columns.back().key, "piqa.acc_norm Δ");
  auto bad = CompareTable(**s, {"", "dppl", {"piqa.acc"}});
  ASSERT_FALSE(bad.ok());
  const std::string msg = bad.status().message();
  EXPECT_EQ(msg.rfind("compare: unknown column 'piqa.acc' (one of: experiment, weights", 0), 0u) << msg;
  EXPECT_NE(msg.find(", piqa.acc_per_token, piqa.acc_norm)"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ql
