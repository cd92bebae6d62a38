// The imatrix algorithm's file= in an experiment file is resolved against the experiment file's directory, as
// model: and data: are; absolute paths and experiments in the working directory
// keep the path as written (and so their cell ids).
#include <string>

#include <gtest/gtest.h>

#include "harness/sweep/experiment.h"

namespace ql {
namespace {

TEST(ImatrixFileParam, ResolvedAgainstTheExperimentFilesDirectory) {
  const std::string yaml = "name: x\nmodel: m\ndata: d.txt\ngrid:\n  schemes: [q4_0]\n"
                           "  algorithms: [{name: imatrix, file: im/a.gguf}, {name: imatrix, file: /abs/b.gguf}]\n";
  StatusOr<Experiment> e = ParseExperiment(yaml, "sub/x.yaml", "sub");
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->algorithms.size(), 2u);
  EXPECT_EQ(e->algorithms[0].params["file"], "sub/im/a.gguf");
  EXPECT_EQ(e->algorithms[1].params["file"], "/abs/b.gguf");
  StatusOr<Experiment> here = ParseExperiment(yaml, "x.yaml", ".");  // the working directory: as written
  ASSERT_TRUE(here.ok());
  EXPECT_EQ(here->algorithms[0].params["file"], "im/a.gguf");
}

}  // namespace
}  // namespace ql
