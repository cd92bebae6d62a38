// The sweep end to end through the quantlab binary on stories260K: a real SIGKILL mid-sweep loses no
// finished cell and a re-run resumes; shards merged equal one run; failing cells are recorded.
#include <signal.h>
#include "tests/test_paths.h"
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "results/store.h"
#include "tests/sweep/store_rows.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

class SweepRun : public ::testing::Test {
 protected:
  void SetUp() override {
    // Evaluation text: the start of the TinyStories file (a copy, so its hash is stable).
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(24000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir_ / "eval.txt", std::ios::binary) << text;
  }

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
  qltest::TempDir dir_{"ql_sweep_test"};
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
  // The merged arrays are readable; a weight-error histogram counts every weight of its tensor
  // (down_proj of stories260K is [64, 172]) and its range ends are ± the tensor's max abs error.
  const SqlResult h = Rows(merged, "SELECT c.h5_file, t.max_abs FROM cells c JOIN tensor_errors t ON t.cell_id = c.id "
                                   "WHERE t.tensor = 'model.layers.0.mlp.down_proj.weight' LIMIT 1");
  ASSERT_EQ(h.rows.size(), 1u);
  auto hist = ReadH5Array(merged + "/" + SqlValueToString(h.rows[0][0]),
                          "weight_error_hist/model.layers.0.mlp.down_proj.weight");
  ASSERT_TRUE(hist.ok()) << hist.status().message();
  ASSERT_EQ(hist->size(), 66u);
  double total = 0;
  for (int i = 0; i < 64; ++i) total += (*hist)[i];
  EXPECT_EQ(total, 64.0 * 172.0);
  EXPECT_FLOAT_EQ((*hist)[65], float(std::get<double>(h.rows[0][1])));
  EXPECT_FLOAT_EQ((*hist)[64], -(*hist)[65]);
}

TEST_F(SweepRun, FailingCellIsRecordedAndTheSweepGoesOn) {
  // A cell whose quantization fails at run time (GPTQ's act_order cannot reorder the columns of a
  // block format, so it refuses mxfp4) is recorded as failed with its reason; the other cells run;
  // the exit code says a cell failed.
  const fs::path p = dir_ / "fail.yaml";
  std::ofstream(p) << "name: f\nmodel: " << QL_SHARED_DIR << "/models/stories260K/stories260K.bin\n"
                   << "data: eval.txt\nprotocol: {name: llamacpp, ctx: 128, chunks: 2}\n"
                   << "calibration: {data: eval.txt, samples: 4, seqlen: 64, seed: 0}\n"
                   << "grid:\n  schemes: [int4:g32, mxfp4]\n  algorithms: [{name: gptq, act_order: true}]\n";
  const std::string res = (dir_ / "fail").string();
  EXPECT_EQ(Run({"sweep", p.string(), "--results", res, "--no-table"}), 3) << Log();
  const SqlResult r = Rows(res, "SELECT weight_scheme, status, reason FROM cells ORDER BY weight_scheme");
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(SqlValueToString(r.rows[0][0]), "int4:g32");
  EXPECT_EQ(SqlValueToString(r.rows[0][1]), "ok");
  EXPECT_EQ(SqlValueToString(r.rows[1][0]), "mxfp4");
  EXPECT_EQ(SqlValueToString(r.rows[1][1]), "failed");
  EXPECT_NE(SqlValueToString(r.rows[1][2]).find("act_order"), std::string::npos) << SqlValueToString(r.rows[1][2]);
  // Both cells record the process's CPU seconds; the ok one's spans (GPTQ, then the evaluation) lie
  // inside its total.
  const SqlResult cpu = Rows(res, "SELECT cpu_seconds_quantize, cpu_seconds_eval, cpu_seconds_total FROM cells "
                                  "ORDER BY weight_scheme");
  ASSERT_EQ(cpu.rows.size(), 2u);
  for (const auto& row : cpu.rows) ASSERT_TRUE(std::holds_alternative<double>(row[2])) << FormatCsv(cpu);
  const double q = std::get<double>(cpu.rows[0][0]), e = std::get<double>(cpu.rows[0][1]);
  EXPECT_GT(q, 0.0);
  EXPECT_GT(e, 0.0);
  EXPECT_LE(q + e, std::get<double>(cpu.rows[0][2]) + 1e-9);
  // Failed cells count as recorded: a re-run skips them rather than failing again.
  EXPECT_EQ(Run({"sweep", p.string(), "--results", res, "--no-table"}), 0) << Log();
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
