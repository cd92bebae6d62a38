// Tests of `quantlab train` as a user runs it: a tiny run from a YAML config writes a loadable model and
// the learning curve; `quantlab eval` reads the result; bad options fail with one line and a non-zero exit.
#include <unistd.h>
#include "tests/test_paths.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/run_command.h"

namespace {
namespace fs = std::filesystem;

using CliRun = qltest::CommandResult;
CliRun Quantlab(const std::string& args) {
  return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + " 2>&1");
}

TEST(TrainCli, TinyRunFromYamlThenEval) {
  const fs::path dir = fs::temp_directory_path() / ("ql_train_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // Training text: the shared wikitext test file's first 60 KB; held-out: the next 8 KB.
  std::ifstream src(std::string(QL_SHARED_DIR) + "/data/wikitext-2-raw-test.txt", std::ios::binary);
  ASSERT_TRUE(src.good());
  std::string text(68 * 1024, '\0');
  src.read(text.data(), std::streamsize(text.size()));
  std::ofstream(dir / "train.txt", std::ios::binary) << text.substr(0, 60 * 1024);
  std::ofstream(dir / "held.txt", std::ios::binary) << text.substr(60 * 1024);
  std::ofstream(dir / "train.yaml") << "vocab: 320\ndim: 32\nlayers: 2\nheads: 4\nkv-heads: 2\nffn: 64\nctx: 32\n"
                                       "seq: 32\nbatch: 4\nsteps: 4\nwarmup: 2\neval-every: 2\neval-windows: 4\n"
                                       "checkpoint-every: 2\n";
  const std::string out = (dir / "out").string();
  const CliRun r = Quantlab("train --config " + (dir / "train.yaml").string() + " --train-text " +
                            (dir / "train.txt").string() + " --heldout-text " + (dir / "held.txt").string() +
                            " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("trained steps 0..4 of 4"), std::string::npos) << r.out;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "learning_curve.csv",
                        "checkpoint/optimizer.safetensors", "checkpoint/train_state.json"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  const CliRun e = Quantlab("eval --model " + out + " --data " + (dir / "held.txt").string() + " --ctx 32 --chunks 4");
  EXPECT_EQ(e.exit_code, 0) << e.out;
  EXPECT_NE(e.out.find("PPL"), std::string::npos) << e.out;
  // Resuming a finished run does nothing more and still succeeds.
  const CliRun again = Quantlab("train --config " + (dir / "train.yaml").string() + " --train-text " +
                                (dir / "train.txt").string() + " --heldout-text " + (dir / "held.txt").string() +
                                " --out " + out + " --resume");
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_NE(again.out.find("trained steps 4..4 of 4"), std::string::npos) << again.out;
  fs::remove_all(dir);
}

TEST(TrainCli, BadOptionsAreOneLineErrors) {
  const fs::path yaml = fs::temp_directory_path() / ("ql_train_bad_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(yaml) << "dimension: 64\n";
  for (const std::string& args :
       {"train --config " + yaml.string() + " --out /tmp/x", std::string("train --out /tmp/x"),
        std::string("train --train-text /nonexistent.txt --heldout-text /nonexistent.txt --out /tmp/ql_train_x"),
        std::string("train --train-text a --heldout-text b --out /tmp/x --dtype fp8")}) {
    const CliRun r = Quantlab(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  }
  fs::remove(yaml);
}

}  // namespace
