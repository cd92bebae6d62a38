// Results store: schema round trip, per-cell commit and replace, HDF5 arrays, formatting, merge.
#include "results/store.h"

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include "results/compare.h"
#include "tests/results/cell_fixture.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

CellResult MakeCell(const std::string& id, double ppl, bool ok = true) {
  CellResult r = qltest::MinimalCell(id, "llamacpp:ctx256");
  r.cell.config = "{\"id\":\"" + id + "\"}";
  r.cell.status = ok ? "ok" : "failed";
  r.cell.reason = ok ? "" : "NaN in logits at token 17";
  r.cell.started_at = "2026-11-23T12:00:00Z";
  r.cell.finished_at = "2026-11-23T12:00:01Z";
  if (ok) {
    MetricsRow m;
    m.Set("n_tokens", 4);
    m.Set("ppl", ppl);
    m.Set("ppl_err", 0.1);
    m.Set("ppl_base", 3.0);
    m.Set("dppl", ppl - 3.0);
    m.Set("kld_mean", 0.01);
    m.Set("bits_per_weight", 4.5);
    m.Set("model_bytes", 12345);
    r.metrics = m;
    r.tensor_errors.push_back({"model.layers.0.mlp.down_proj.weight", "int4:g32", 1e-4, 30.0, 0.02, 4.5, 100});
    r.layer_errors.push_back({0, 0.001, 30.0});
    r.layer_errors.push_back({1, 0.002, 27.0});
    r.arrays["nll"] = {1.0f, 2.0f, 0.5f, 0.25f};
  }
  return r;
}

TEST(ResultStore, CommitQueryAndArrays) {
  qltest::TempDir t{"ql_store_test"};
  auto s = ResultStore::Open(t.sub("r"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  { Status st = (*s)->CommitCell(MakeCell("c1", 3.5)); ASSERT_TRUE(st.ok()) << st.message(); }
  ASSERT_TRUE((*s)->CommitCell(MakeCell("c2", 0, /*ok=*/false)).ok());
  EXPECT_TRUE(*(*s)->HasCell("c1"));
  EXPECT_TRUE(*(*s)->HasCell("c2"));
  EXPECT_FALSE(*(*s)->HasCell("c3"));
  auto r = (*s)->Query("SELECT id, status, reason, ppl, dppl FROM cells LEFT JOIN metrics ON id = cell_id ORDER BY id");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->rows.size(), 2u);
  EXPECT_EQ(SqlValueToString(r->rows[0][1]), "ok");
  EXPECT_DOUBLE_EQ(std::get<double>(r->rows[0][3]), 3.5);
  EXPECT_DOUBLE_EQ(std::get<double>(r->rows[0][4]), 0.5);
  EXPECT_EQ(SqlValueToString(r->rows[1][2]), "NaN in logits at token 17");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r->rows[1][3]));
  // The row names its HDF5 dataset and the file holds the values.
  auto a = (*s)->Query("SELECT h5_file, h5_path, length FROM arrays WHERE owner_id = 'c1' AND name = 'nll'");
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->rows.size(), 1u);
  EXPECT_EQ(std::get<int64_t>(a->rows[0][2]), 4);
  auto v = ReadH5Array(t.sub("r") + "/" + SqlValueToString(a->rows[0][0]), SqlValueToString(a->rows[0][1]));
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(*v, (std::vector<float>{1.0f, 2.0f, 0.5f, 0.25f}));
  auto ic = (*s)->Query("PRAGMA integrity_check");
  ASSERT_TRUE(ic.ok());
  EXPECT_EQ(SqlValueToString(ic->rows[0][0]), "ok");
}

TEST(ResultStore, RecommitReplacesWithoutDuplicates) {
  qltest::TempDir t{"ql_store_test"};
  auto s = ResultStore::Open(t.sub("r"));
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->CommitCell(MakeCell("c1", 3.5)).ok());
  ASSERT_TRUE((*s)->CommitCell(MakeCell("c1", 3.7)).ok());
  auto r = (*s)->Query("SELECT (SELECT count(*) FROM cells), (SELECT count(*) FROM metrics), "
                       "(SELECT count(*) FROM layer_errors), (SELECT ppl FROM metrics)");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<int64_t>(r->rows[0][0]), 1);
  EXPECT_EQ(std::get<int64_t>(r->rows[0][1]), 1);
  EXPECT_EQ(std::get<int64_t>(r->rows[0][2]), 2);
  EXPECT_DOUBLE_EQ(std::get<double>(r->rows[0][3]), 3.7);
}

TEST(ResultStore, ReopenKeepsRowsAndChecksSchema) {
  qltest::TempDir t{"ql_store_test"};
  {
    auto s = ResultStore::Open(t.sub("r"));
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->CommitCell(MakeCell("c1", 3.5)).ok());
  }
  auto s = ResultStore::OpenReadOnly(t.sub("r"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(*(*s)->HasCell("c1"));
  auto missing = ResultStore::OpenReadOnly(t.sub("nothing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no results database"), std::string::npos);
}

// Schema 5 adds the cells' CPU seconds: a version-4 store (without the columns) is upgraded in place, its
// cells read NULL, new cells store their values; compare shows "CPU s" only when some listed cell has it.
TEST(ResultStore, VersionFourStoreGetsCpuSecondsColumns) {
  qltest::TempDir t{"ql_store_test"};
  {
    auto s = ResultStore::Open(t.sub("r"));
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->CommitCell(MakeCell("c0", 3.5)).ok());
    for (const char* c : {"cpu_seconds_quantize", "cpu_seconds_eval", "cpu_seconds_total"})
      ASSERT_TRUE((*s)->db().Exec(std::string("ALTER TABLE cells DROP COLUMN ") + c).ok());
    ASSERT_TRUE((*s)->db().Exec("UPDATE meta SET value = '4' WHERE key = 'schema_version'").ok());
  }
  {
    auto s = ResultStore::OpenReadOnly(t.sub("r"));
    ASSERT_TRUE(s.ok());
    auto cols = CompareTable(**s, {"", "dppl", {}});
    ASSERT_TRUE(cols.ok()) << cols.status().message();
    for (const TableColumn& c : cols->columns) EXPECT_NE(c.key, "cpu_seconds");  // no such column yet
  }
  {
    auto s = ResultStore::Open(t.sub("r"));
    ASSERT_TRUE(s.ok()) << s.status().message();
    CellResult c1 = MakeCell("c1", 3.25);
    c1.cell.cpu_seconds_quantize = 1.25, c1.cell.cpu_seconds_eval = 0.5, c1.cell.cpu_seconds_total = 1.875;
    ASSERT_TRUE((*s)->CommitCell(c1).ok());
  }
  auto s = ResultStore::OpenReadOnly(t.sub("r"));
  ASSERT_TRUE(s.ok());
  auto r = (*s)->Query("SELECT id, cpu_seconds_quantize, cpu_seconds_eval, cpu_seconds_total, "
                       "(SELECT value FROM meta WHERE key = 'schema_version') FROM cells ORDER BY id");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(FormatCsv(*r), "id,cpu_seconds_quantize,cpu_seconds_eval,cpu_seconds_total,"
                           "(SELECT value FROM meta WHERE key = 'schema_version')\n"
                           "c0,,,,5\nc1,1.25,0.5,1.875,5\n");
  EXPECT_EQ(kResultsSchemaVersion, 5);
  auto table = CompareTable(**s, {"", "dppl", {"weights", "dppl", "cpu_seconds"}});
  ASSERT_TRUE(table.ok()) << table.status().message();
  ASSERT_EQ(table->rows.size(), 2u);  // sorted by ΔPPL: c1 (+0.25) first
  EXPECT_EQ(table->rows[0], (std::vector<std::string>{"int4:g32", "+0.2500", "1.9"}));
  EXPECT_EQ(table->rows[1], (std::vector<std::string>{"int4:g32", "+0.5000", ""}));
  auto dflt = CompareTable(**s, {"", "dppl", {}});
  ASSERT_TRUE(dflt.ok());
  bool shown = false;
  for (const TableColumn& c : dflt->columns) shown = shown || c.key == "cpu_seconds";
  EXPECT_TRUE(shown);
}

TEST(ResultStore, RejectsUnsafeIdsAndBadSql) {
  qltest::TempDir t{"ql_store_test"};
  auto s = ResultStore::Open(t.sub("r"));
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE((*s)->CommitCell(MakeCell("../evil", 1.0)).ok());
  auto r = (*s)->Query("SELEC nonsense");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("syntax error"), std::string::npos);
  EXPECT_FALSE((*s)->Query("SELECT 1; SELECT 2").ok());
}

TEST(ResultStore, MergeEqualsOneRunAndIsIdempotent) {
  qltest::TempDir t{"ql_store_test"};
  {
    auto a = ResultStore::Open(t.sub("a"));
    auto b = ResultStore::Open(t.sub("b"));
    auto all = ResultStore::Open(t.sub("all"));
    ASSERT_TRUE(a.ok() && b.ok() && all.ok());
    ASSERT_TRUE((*a)->CommitCell(MakeCell("c1", 3.5)).ok());
    ASSERT_TRUE((*b)->CommitCell(MakeCell("c2", 4.5)).ok());
    ASSERT_TRUE((*b)->CommitCell(MakeCell("c3", 0, false)).ok());
    for (auto* c : {"c1", "c2"}) ASSERT_TRUE((*all)->CommitCell(MakeCell(c, c[1] == '1' ? 3.5 : 4.5)).ok());
    ASSERT_TRUE((*all)->CommitCell(MakeCell("c3", 0, false)).ok());
  }
  ASSERT_TRUE(ResultStore::Merge(t.sub("m"), {t.sub("a"), t.sub("b")}).ok());
  ASSERT_TRUE(ResultStore::Merge(t.sub("m"), {t.sub("b")}).ok());  // again: no duplicates
  const std::string q =
      "SELECT id, status, ppl, (SELECT count(*) FROM layer_errors l WHERE l.cell_id = id) "
      "FROM cells LEFT JOIN metrics ON id = cell_id ORDER BY id";
  auto m = ResultStore::OpenReadOnly(t.sub("m"));
  auto all = ResultStore::OpenReadOnly(t.sub("all"));
  ASSERT_TRUE(m.ok() && all.ok());
  auto rm = (*m)->Query(q);
  auto ra = (*all)->Query(q);
  ASSERT_TRUE(rm.ok() && ra.ok());
  EXPECT_EQ(FormatCsv(*rm), FormatCsv(*ra));
  EXPECT_TRUE(fs::exists(t.sub("m") + "/arrays/c1.h5"));
  EXPECT_TRUE(fs::exists(t.sub("m") + "/arrays/c2.h5"));
  // A conflicting result under the same id is refused.
  {
    auto c = ResultStore::Open(t.sub("c"));
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->CommitCell(MakeCell("c1", 9.9)).ok());
  }
  Status s = ResultStore::Merge(t.sub("m"), {t.sub("c")});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("c1"), std::string::npos);
}

TEST(ResultStore, Formatting) {
  SqlResult r;
  r.columns = {"a", "b"};
  r.rows.push_back({int64_t(1), std::string("x,\"y\"")});
  r.rows.push_back({2.5, std::monostate{}});
  EXPECT_EQ(FormatCsv(r), "a,b\n1,\"x,\"\"y\"\"\"\n2.5,\n");
  EXPECT_EQ(FormatTable(r), "a    b\n---  -----\n1    x,\"y\"\n2.5\n");
  EXPECT_EQ(FormatJson(r), "[\n {\n  \"a\": 1,\n  \"b\": \"x,\\\"y\\\"\"\n },\n {\n  \"a\": 2.5,\n  \"b\": null\n }\n]\n");
}

}  // namespace
}  // namespace ql
