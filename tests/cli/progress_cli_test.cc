// Progress of the long commands as a log sees it (stderr not a terminal, QL_PROGRESS=all: a plain line at
// every update): `eval` reports the baseline, the algorithm (GPTQ: layers + lm_head) and the evaluation
// windows on stderr while --json stdout stays one JSON document; a sweep's cells report theirs with the
// cell as prefix.
#include <fstream>
#include "tests/test_paths.h"
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/run_command.h"
#include "tests/temp_dir.h"

namespace {

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";
const std::string kData = std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt";

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// "<label>: 40% (2/5 windows), 0s elapsed, ETA 0s" or "<label>: 100% (5/5 windows) in 0s".
const std::regex kPlainLine(R"(([^:]+): (\d+)% \((\d+)/(\d+)( [a-z]+)?\)(, \d+\w* elapsed, ETA [0-9hms?]+| in \d+\w*))");

TEST(ProgressCli, EvalJsonStdoutStaysCleanAndStderrHasPlainLines) {
  qltest::TempDir dir("ql_progress_cli");
  const std::string err = dir.sub("stderr.txt");
  const qltest::CommandResult r = qltest::RunCommand(
      "QL_PROGRESS=all " + std::string(QL_QUANTLAB_BIN) + " eval --model " + kModel + " --data " + kData +
      " --ctx 64 --chunks 3 --scheme int4:g32 --algorithm gptq --calib " + kData +
      " --calib-samples 4 --calib-seqlen 64 --json 2>'" + err + "'");
  ASSERT_EQ(r.exit_code, 0) << r.out << ReadAll(err);
  // stdout: exactly one line, one JSON object.
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["algorithm"], "gptq");
  // stderr: nothing but progress lines, in the pipeline's order, each step ending at 100%.
  const std::vector<std::string> lines = Lines(ReadAll(err));
  std::vector<std::string> finished;
  for (const std::string& l : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, kPlainLine)) << "not a progress line: " << l;
    if (m[2] == "100") finished.push_back(l);
  }
  ASSERT_EQ(finished.size(), 3u) << ReadAll(err);
  EXPECT_EQ(finished[0].rfind("baseline bf16: 100% (3/3 windows) in ", 0), 0u) << finished[0];
  EXPECT_EQ(finished[1].rfind("gptq: 100% (6/6) in ", 0), 0u) << finished[1];  // 5 layers, then lm_head
  EXPECT_EQ(finished[2].rfind("eval: 100% (3/3 windows) in ", 0), 0u) << finished[2];
  EXPECT_EQ(lines.size(), 3u + 5 + 2 * 2) << ReadAll(err);  // and the unfinished ones: 1..5 of 6, 1..2 of 3
}

TEST(ProgressCli, SweepCellsCarryTheCellAsPrefix) {
  qltest::TempDir dir("ql_progress_cli");
  std::ofstream(dir / "exp.yaml") << "name: p\nmodel: " << kModel << "\ndata: " << kData
                                  << "\nprotocol: {name: llamacpp, ctx: 64, chunks: 2}\nresults: " << dir.sub("res")
                                  << "\ngrid:\n  schemes: [int8:channel, int4:g32]\n  ignore: [none]\n";
  const std::string log = dir.sub("log.txt");
  const qltest::CommandResult r = qltest::RunCommand("QL_PROGRESS=all " + std::string(QL_QUANTLAB_BIN) + " sweep " +
                                                     dir.sub("exp.yaml") + " --no-table >'" + log + "' 2>&1");
  const std::string text = ReadAll(log);
  ASSERT_EQ(r.exit_code, 0) << text;
  EXPECT_NE(text.find("[1/2] int8:channel | rtn | ignore=none — eval: 100% (2/2 windows) in "), std::string::npos)
      << text;
  EXPECT_NE(text.find("[2/2] int4:g32 | rtn | ignore=none — eval: 50% (1/2 windows), "), std::string::npos) << text;
  EXPECT_NE(text.find("baseline bf16: 100% (2/2 windows) in "), std::string::npos) << text;
}

}  // namespace
