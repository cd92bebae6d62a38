// Tests of `quantlab tasks` as a user runs it: one-line errors with a non-zero exit (naming the file
// and line of a malformed item), and --json output with every metric of both conventions.
#include <cstdio>
#include "tests/test_paths.h"
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"
#include "tests/temp_dir.h"

namespace {

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";
const std::string kCopa = std::string(QL_SHARED_DIR) + "/data/tasks/copa.jsonl";
const std::string kLambada = std::string(QL_SHARED_DIR) + "/data/tasks/lambada_openai.jsonl";

qltest::CommandResult Quantlab(const std::string& args, bool with_stderr) {
  return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  static const qltest::TempDir dir("ql_tasks_cli_test");
  const std::string path = dir.sub(name);
  std::ofstream(path) << text;
  return path;
}

TEST(TasksCli, ErrorsAreOneLineAndNonZero) {
  const std::string bad = WriteTemp("bad_tasks.jsonl",
                                    "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n"
                                    "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 5}\n");
  const std::string m = "tasks --model " + kModel;
  struct Case {
    std::string args, must_contain;
  };
  for (const Case& c : {Case{m + " --task copa", "NAME=FILE"}, Case{m + " --task copa=/nonexistent.jsonl", "/nonexistent.jsonl"},
                        Case{m + " --task bad=" + bad, bad + ":2: gold 5 is out of range"},
                        Case{m + " --task copa=" + kCopa + " --convention lighteval", "lighteval"},
                        Case{"tasks --model /nonexistent/m.bin --task copa=" + kCopa, "/nonexistent/m.bin"}}) {
    const qltest::CommandResult r = Quantlab(c.args, true);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_EQ(Lines(r.out), 1) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("quantlab tasks: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(c.must_contain), std::string::npos) << r.out;
  }
}

TEST(TasksCli, JsonHasEveryMetric) {
  const qltest::CommandResult r =
      Quantlab("tasks --model " + kModel + " --task copa=" + kCopa + " --task lambada=" + kLambada +
                   " --convention lmeval --convention llamacpp --limit 6 --seed 3 --json",
               false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(Lines(r.out), 1);
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 4u);
  const auto& copa = j["results"][0];
  EXPECT_EQ(copa["task"], "copa");
  EXPECT_EQ(copa["convention"], "lmeval");
  EXPECT_EQ(copa["shape"], "multiple_choice");
  EXPECT_EQ(copa["limit"], "sample6:seed3");
  EXPECT_EQ(copa["items"], 6);
  for (const char* k : {"acc", "acc_norm"}) {
    const double v = copa["metrics"][k]["value"];
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
    // six 0/1 outcomes: the accuracy is a multiple of 1/6
    EXPECT_NEAR(v * 6, std::round(v * 6), 1e-9) << k;
  }
  EXPECT_GT(copa["items_per_s"].get<double>(), 0.0);
  EXPECT_GT(copa["tokens_forwarded"].get<int64_t>(), 0);
  EXPECT_TRUE(j["results"][1]["metrics"].contains("acc_per_token"));
  const auto& lambada = j["results"][3];
  EXPECT_EQ(lambada["shape"], "cloze");
  EXPECT_EQ(lambada["convention"], "llamacpp");
  EXPECT_GT(lambada["metrics"]["ppl"]["value"].get<double>(), 1.0);
  EXPECT_GT(lambada["metrics"]["ppl_token"]["value"].get<double>(), 1.0);
}

// compare's --columns help names the task columns beside the fixed ones, so a user finds them
// without reading docs/tasks.md.
TEST(TasksCli, CompareHelpNamesTaskColumns) {
  const auto r = Quantlab("compare --help", false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("TASK[.CONVENTION].METRIC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("piqa.acc_norm"), std::string::npos) << r.out;
}

}  // namespace
