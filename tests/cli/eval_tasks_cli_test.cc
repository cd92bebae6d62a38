// `quantlab eval --task` as a user runs it on stories260K: the --json rows (the store's names) agree
// with `quantlab tasks` on the baseline (fp32 weights both) and with themselves (Δ = cell − base,
// Δ·n = net flips); bad task flags are one-line errors.
#include <cmath>
#include "tests/test_paths.h"
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"

namespace {

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";
const std::string kCopa = std::string(QL_SHARED_DIR) + "/data/tasks/copa.jsonl";
const std::string kText = std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt";

qltest::CommandResult Quantlab(const std::string& args, bool with_stderr) {
  return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

TEST(EvalTasksCli, JsonRowsAgreeWithTheTasksCommand) {
  const std::string eval = "eval --model " + kModel + " --data " + kText +
                           " --ctx 64 --chunks 2 --baseline fp32 --scheme int4:g32 --task copa=" + kCopa +
                           " --task-convention both --limit 10 --task-seed 3 --json";
  const qltest::CommandResult e = Quantlab(eval, false);
  ASSERT_EQ(e.exit_code, 0) << e.out;
  const auto j = nlohmann::json::parse(e.out);
  const qltest::CommandResult t = Quantlab("tasks --model " + kModel + " --task copa=" + kCopa +
                                               " --convention lmeval --convention llamacpp --limit 10 --seed 3 --json",
                                           false);
  ASSERT_EQ(t.exit_code, 0) << t.out;
  const auto tj = nlohmann::json::parse(t.out);
  for (const auto& res : tj["results"]) {
    const std::string conv = res["convention"];
    for (const auto& [metric, v] : res["metrics"].items()) {
      EXPECT_EQ(j["tasks_base"]["copa"][conv][metric].get<double>(), v["value"].get<double>()) << conv << metric;
      const auto& rows = j["tasks"]["copa"][conv];
      EXPECT_EQ(rows[metric + "_base"].get<double>(), v["value"].get<double>());
      EXPECT_DOUBLE_EQ(rows[metric + "_delta"].get<double>(), rows[metric].get<double>() - v["value"].get<double>());
      EXPECT_NEAR(rows[metric + "_delta"].get<double>() * 10,
                  rows[metric + "_wrong_to_right"].get<double>() - rows[metric + "_right_to_wrong"].get<double>(), 1e-9);
      EXPECT_GE(rows[metric + "_answer_kld"].get<double>(), 0.0);
      EXPECT_LE(rows[metric + "_mcnemar_p"].get<double>(), 1.0);
    }
  }
  EXPECT_EQ(j["tasks"]["copa"]["lmeval"]["n"], 10);
}

TEST(EvalTasksCli, TextShowsThePairedTest) {
  const qltest::CommandResult e = Quantlab("eval --model " + kModel + " --data " + kText +
                                               " --ctx 64 --chunks 2 --scheme int4:g32 --task copa=" + kCopa + " --limit 6",
                                           false);
  ASSERT_EQ(e.exit_code, 0) << e.out;
  EXPECT_NE(e.out.find("task base copa lmeval (6 items, first6)"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("task      copa lmeval acc_norm (6 items): base "), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("McNemar p"), std::string::npos);
}

TEST(EvalTasksCli, BadFlagsAreOneLineErrors) {
  const std::string m = "eval --model " + kModel + " --data " + kText + " --ctx 64 --chunks 2 --scheme int4:g32";
  struct Case {
    std::string args, must_contain;
  };
  for (const Case& c : {Case{m + " --limit 5", "need --task"}, Case{m + " --task copa", "NAME=FILE"},
                        Case{m + " --task copa=" + kCopa + " --task-convention lighteval", "lighteval"},
                        Case{m + " --task copa=/nonexistent.jsonl", "/nonexistent.jsonl"}}) {
    const qltest::CommandResult r = Quantlab(c.args, true);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(c.must_contain), std::string::npos) << r.out;
  }
}

}  // namespace
