// Results directory writer lock (one writing process, shared within a process, released on exit),
// unique temp names, and `verify`: each kind of broken array is found and --requeue removes the cell.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "harness/io/file_io.h"
#include "results/lock.h"
#include "results/store.h"
#include "results/verify.h"
#include "tests/results/cell_fixture.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

// In a child process: 0 when ResultStore::Open(dir) succeeds, 1 when it fails with the holder's pid.
int OpenInChild(const std::string& dir, pid_t holder) {
  const pid_t pid = fork();
  if (pid == 0) {
    auto s = ResultStore::Open(dir);
    if (s.ok()) _exit(0);
    const std::string& m = s.status().message();
    _exit(m.find("another quantlab process") != std::string::npos &&
                  m.find("pid " + std::to_string(holder)) != std::string::npos
              ? 1
              : 2);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ResultsLock, OneWriterProcessSharedWithinTheProcess) {
  qltest::TempDir d{"ql_lock_test"};
  {
    auto a = ResultStore::Open(d.sub("r"));
    ASSERT_TRUE(a.ok()) << a.status().message();
    auto b = ResultStore::Open(d.sub("r"));  // same process: shares the lock
    ASSERT_TRUE(b.ok()) << b.status().message();
    EXPECT_EQ(OpenInChild(d.sub("r"), getpid()), 1);
    EXPECT_NE(ReadLockHolder(d.sub("r")).find("pid " + std::to_string(getpid())), std::string::npos);
    auto ro = ResultStore::OpenReadOnly(d.sub("r"));  // readers take no lock
    EXPECT_TRUE(ro.ok()) << ro.status().message();
    a->reset();
    EXPECT_EQ(OpenInChild(d.sub("r"), getpid()), 1);  // b still holds it
  }
  EXPECT_EQ(OpenInChild(d.sub("r"), getpid()), 0);  // released with the last store
}

TEST(ResultsLock, UniqueTempNames) {
  const std::string a = io::UniqueTempPath("/x/arrays/c.h5"), b = io::UniqueTempPath("/x/arrays/c.h5");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("/x/arrays/c.h5.tmp.", 0), 0u) << a;
  EXPECT_NE(a.find("." + std::to_string(getpid()) + "."), std::string::npos) << a;
}

CellResult OkCell(const std::string& id) {
  CellResult r = qltest::MinimalCell(id);
  MetricsRow m;
  m.Set("n_tokens", 3);
  m.Set("ppl", 5);
  m.Set("kld_mean", 0.02);
  r.metrics = m;
  r.layer_errors = {{0, 0.001, 30.0}, {1, 0.002, 27.0}};
  r.arrays["nll"] = {1.0f, 2.0f, 1.5f};
  r.arrays["kld"] = {0.01f, 0.03f, 0.02f};
  r.arrays["layer_rel_mse"] = {0.001f, 0.002f};
  return r;
}

TEST(Verify, FindsEachBrokenCellAndRequeueRemovesIt) {
  qltest::TempDir d{"ql_lock_test"};
  auto s = ResultStore::Open(d.sub("r"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  ResultStore& st = **s;
  for (const char* id : {"good", "gone", "zero_kld", "short_nll", "no_dataset", "zero_layers"})
    ASSERT_TRUE(st.CommitCell(OkCell(id)).ok()) << id;
  {
    auto rep = VerifyStore(st);
    ASSERT_TRUE(rep.ok()) << rep.status().message();
    EXPECT_EQ(rep->cells, 6);
    EXPECT_EQ(rep->arrays, 18);
    EXPECT_TRUE(rep->ok()) << rep->problems[0].owner << ": " << rep->problems[0].what;
  }
  // The corruptions two concurrent writers produced, each written under the cell's own file name.
  fs::remove(st.ArraysPath("gone"));
  ArrayMap a = OkCell("x").arrays;
  a["kld"] = {0, 0, 0};
  ASSERT_TRUE(WriteH5Arrays(st.ArraysPath("zero_kld"), a).ok());
  a = OkCell("x").arrays;
  a["nll"] = {1.0f, 2.0f};
  ASSERT_TRUE(WriteH5Arrays(st.ArraysPath("short_nll"), a).ok());
  a = OkCell("x").arrays;
  a.erase("kld");
  ASSERT_TRUE(WriteH5Arrays(st.ArraysPath("no_dataset"), a).ok());
  a = OkCell("x").arrays;
  a["layer_rel_mse"] = {0, 0};
  ASSERT_TRUE(WriteH5Arrays(st.ArraysPath("zero_layers"), a).ok());

  auto rep = VerifyStore(st);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  std::map<std::string, std::string> what;
  for (const VerifyProblem& p : rep->problems) {
    EXPECT_EQ(p.kind, "cell");
    what[p.owner] = p.what;
  }
  ASSERT_EQ(what.size(), 5u);
  EXPECT_NE(what["gone"].find("arrays/gone.h5 is missing"), std::string::npos) << what["gone"];
  EXPECT_NE(what["zero_kld"].find("'kld' is all zeros but metrics.kld_mean = 0.02"), std::string::npos)
      << what["zero_kld"];
  EXPECT_NE(what["short_nll"].find("has 2 values"), std::string::npos) << what["short_nll"];
  EXPECT_NE(what["no_dataset"].find("no dataset '/kld'"), std::string::npos) << what["no_dataset"];
  EXPECT_NE(what["zero_layers"].find("'layer_rel_mse' is all zeros"), std::string::npos) << what["zero_layers"];

  auto n = RequeueBroken(st, *rep);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 5);
  auto left = st.Query("SELECT id FROM cells");
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->rows.size(), 1u);
  EXPECT_EQ(SqlValueToString(left->rows[0][0]), "good");
  auto orphans = st.Query("SELECT count(*) FROM arrays WHERE owner_id <> 'good'");
  ASSERT_TRUE(orphans.ok());
  EXPECT_EQ(SqlValueToString(orphans->rows[0][0]), "0");
  EXPECT_FALSE(fs::exists(st.ArraysPath("zero_kld")));
  auto again = VerifyStore(st);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->ok());
}

}  // namespace
}  // namespace ql
