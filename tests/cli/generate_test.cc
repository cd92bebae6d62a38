// `quantlab generate` end to end: the built CLI on stories260K prints llama2.c's published greedy text.
#include <cstdio>
#include "tests/test_paths.h"
#include <string>

#include <gtest/gtest.h>

#include "tests/run_command.h"

namespace {

// Runs a shell command, returns stdout; *rc receives the exit status.
std::string RunCommand(const std::string& cmd, int* rc) {
  qltest::CommandResult r = qltest::RunCommand(cmd);
  *rc = r.exit_code;
  return r.out;
}

const std::string kModel = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin";

TEST(GenerateCliTest, StoriesGreedyTextMatchesPublished) {
  int rc = 0;
  const std::string out = RunCommand(std::string(QL_QUANTLAB_BIN) + " generate --model " + kModel + " --tokens 200", &rc);
  EXPECT_EQ(rc, 0);
  // models/stories260K/README.md (200 positions counting BOS = run.c steps 200 = 200 new tokens).
  EXPECT_EQ(out,
            "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
            "she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, "
            "let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your "
            "ball, but I can't find it.\"\nLily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I "
            "didn't know what to do.\"\nLily didn't want to help her mom, so she\n");
}

TEST(GenerateCliTest, PromptIsContinuedAndBadInputsFail) {
  int rc = 0;
  const std::string out =
      RunCommand(std::string(QL_QUANTLAB_BIN) + " generate --model " + kModel + " --prompt 'Once upon a time' --tokens 5", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out.rfind("Once upon a time", 0), 0u) << out;
  EXPECT_GT(out.size(), std::string("Once upon a time\n").size());
  RunCommand(std::string(QL_QUANTLAB_BIN) + " generate --model /nonexistent/model.bin 2>/dev/null", &rc);
  EXPECT_NE(rc, 0);
  RunCommand(std::string(QL_QUANTLAB_BIN) + " generate --model " + kModel + " --tokens 600 2>/dev/null", &rc);
  EXPECT_NE(rc, 0);  // 600 positions > max_seq_len 512
}

}  // namespace
