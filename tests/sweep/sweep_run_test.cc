// The sweep end to end through the quantlab binary on stories260K: a real SIGKILL mid-sweep loses no
// finished cell and a re-run resumes; shards merged equal one run; failing cells are recorded.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "results/store.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

class SweepRun : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ql_sweep_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
    // Evaluation text: the start of the TinyStories file (a copy, so its hash is stable).
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(24000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir_ / "eval.txt", std::ios::binary) << text;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteExperiment(const std::string& schemes, const std::string& extra = "") {
    const fs::path p = dir_ / "exp.yaml";
    std::ofstream(p) << "name: t\nmodel: " << QL_SHARED_DIR << "/models/stories260K/stories260K.bin\n"
                     << "data: eval.txt\nprotocol: {name: llamacpp, ctx: 128, chunks: 4}\n" << extra
                     << "grid:\n  schemes: [" << schemes << "]\n  ignore: [none, lm_head]\n";
    return p.string();
  }

  // Runs quantlab with args; returns its exit status.
  int Run(const std::vector<std::string>& args) {
    std::string cmd = QL_QUANTLAB_BIN;
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " >>" + (dir_ / "log.txt").string() + " 2>&1";
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  static SqlResult Rows(const std::string& results, const std::string& sql) {
    auto s = ResultStore::OpenReadOnly(results);
    EXPECT_TRUE(s.ok()) << s.status().message();
    if (!s.ok()) return {};
    auto r = (*s)->Query(sql);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : SqlResult{};
  }
  static int64_t Count(const std::string& results) {
    if (!fs::exists(ResultsDbPath(results))) return 0;
    auto s = ResultStore::OpenReadOnly(results);
    if (!s.ok()) return 0;
    auto r = (*s)->Query("SELECT count(*) FROM cells");
    return r.ok() ? std::get<int64_t>(r->rows[0][0]) : 0;
  }
  std::string Log() {
    std::ifstream f(dir_ / "log.txt");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  const std::string kCellsSql =
      "SELECT c.id, c.status, m.ppl, m.kld_mean, m.bits_per_weight FROM cells c "
      "LEFT JOIN metrics m ON m.cell_id = c.id ORDER BY c.id";
  fs::path dir_;
};

TEST_F(SweepRun, SigkillLosesNothingAndRerunResumes) {
  const std::string exp = WriteExperiment("int8:channel, int4:g32, int3:g32, nf4, mxfp4, nvfp4, W8A8, q4_0");
  const std::string ref = (dir_ / "ref").string(), killed = (dir_ / "killed").string();
  ASSERT_EQ(Run({"sweep", exp, "--results", ref, "--no-table"}), 0) << Log();
  EXPECT_EQ(Count(ref), 16);

  // Start the same sweep and SIGKILL it once at least 3 cells are committed.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execl(QL_QUANTLAB_BIN, QL_QUANTLAB_BIN, "sweep", exp.c_str(), "--results", killed.c_str(), "--no-table",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  int64_t before = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    before = Count(killed);
    if (before >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the sweep finished before it could be killed";
  ASSERT_GE(before, 3);
  const int64_t at_kill = Count(killed);
  ASSERT_LT(at_kill, 16) << "all cells finished before the kill; the test proves nothing";
  EXPECT_EQ(SqlValueToString(Rows(killed, "PRAGMA integrity_check").rows[0][0]), "ok");
  const SqlResult finished_before = Rows(killed, "SELECT id, finished_at FROM cells ORDER BY id");

  // Re-run: resumes, skips what is recorded, completes the grid with no duplicates.
  ASSERT_EQ(Run({"sweep", exp, "--results", killed, "--no-table"}), 0) << Log();
  EXPECT_NE(Log().find("already recorded, skipped"), std::string::npos);
  EXPECT_EQ(Count(killed), 16);
  EXPECT_EQ(SqlValueToString(Rows(killed, "PRAGMA integrity_check").rows[0][0]), "ok");
  const SqlResult after = Rows(killed, "SELECT id, finished_at FROM cells ORDER BY id");
  for (const auto& row : finished_before.rows) {
    bool found = false;
    for (const auto& r2 : after.rows)
      if (r2[0] == row[0]) found = (r2[1] == row[1]);  // untouched by the re-run
    EXPECT_TRUE(found) << SqlValueToString(row[0]);
  }
  // Same numbers as the uninterrupted run (same config, same seed, same code).
  EXPECT_EQ(FormatCsv(Rows(killed, kCellsSql)), FormatCsv(Rows(ref, kCellsSql)));
  // Every ok cell's arrays file is complete and readable.
  for (const auto& row : Rows(killed, "SELECT h5_file FROM cells WHERE status = 'ok'").rows) {
    auto v = ReadH5Array(killed + "/" + SqlValueToString(row[0]), "nll");
    EXPECT_TRUE(v.ok()) << v.status().message();
  }
}

TEST_F(SweepRun, ShardsMergedEqualOneRun) {
  const std::string exp = WriteExperiment("int8:channel, int4:g32, nf4");
  const std::string one = (dir_ / "one").string();
  ASSERT_EQ(Run({"sweep", exp, "--results", one, "--no-table"}), 0) << Log();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(Run({"sweep", exp, "--results", (dir_ / ("s" + std::to_string(i))).string(), "--shard",
                   std::to_string(i) + "/3", "--no-table"}),
              0)
        << Log();
  EXPECT_EQ(Count((dir_ / "s0").string()) + Count((dir_ / "s1").string()) + Count((dir_ / "s2").string()), 6);
  const std::string merged = (dir_ / "merged").string();
  ASSERT_EQ(Run({"merge", merged, (dir_ / "s0").string(), (dir_ / "s1").string(), (dir_ / "s2").string()}), 0)
      << Log();
  ASSERT_EQ(Run({"merge", merged, (dir_ / "s1").string()}), 0) << Log();  // twice: no duplicates
  EXPECT_EQ(FormatCsv(Rows(merged, kCellsSql)), FormatCsv(Rows(one, kCellsSql)));
  EXPECT_EQ(SqlValueToString(Rows(merged, "PRAGMA integrity_check").rows[0][0]), "ok");
}

TEST_F(SweepRun, FailingCellIsRecordedAndTheSweepGoesOn) {
  // A cell whose evaluation fails (here: a KV-cache scheme this build cannot apply) is recorded as
  // failed with its reason; the other cells run; the exit code says a cell failed.
  const std::string exp = WriteExperiment("int4:g32, {weights: int4:g32, kv_cache: int8:token}");
  const std::string res = (dir_ / "fail").string();
  EXPECT_EQ(Run({"sweep", exp, "--results", res, "--no-table"}), 3) << Log();
  const SqlResult r = Rows(res, "SELECT kv_scheme, status, reason FROM cells ORDER BY kv_scheme, ignore_set");
  ASSERT_EQ(r.rows.size(), 4u);
  EXPECT_EQ(SqlValueToString(r.rows[0][1]), "ok");
  EXPECT_EQ(SqlValueToString(r.rows[1][1]), "ok");
  EXPECT_EQ(SqlValueToString(r.rows[2][1]), "failed");
  EXPECT_NE(SqlValueToString(r.rows[2][2]).find("KV-cache"), std::string::npos);
  // Failed cells count as recorded: a re-run skips them rather than failing again.
  EXPECT_EQ(Run({"sweep", exp, "--results", res, "--no-table"}), 0) << Log();
}

TEST_F(SweepRun, TargetMatchingNothingFailsBeforeAnyCellRuns) {
  const std::string exp = WriteExperiment("int4:g32", "targets: [Linear, model.layers.7.mlp.up_proj]\n");
  const std::string res = (dir_ / "bad").string();
  EXPECT_EQ(Run({"sweep", exp, "--results", res}), 1);
  EXPECT_NE(Log().find("'model.layers.7.mlp.up_proj' matches no module"), std::string::npos) << Log();
  EXPECT_EQ(Count(res), 0);
}

}  // namespace
}  // namespace ql
