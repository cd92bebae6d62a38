// The imatrix algorithm's file= in an experiment file is resolved against the experiment file's directory, as
// model: and data: are; absolute paths and experiments in the working directory
// keep the path as written (and so their cell ids). The file's content enters the cell id as well.
#include <fstream>
#include "tests/test_paths.h"
#include <string>

#include <gtest/gtest.h>

#include "harness/sweep/cell_pipeline.h"
#include "harness/sweep/experiment.h"
#include "tests/temp_dir.h"

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

// The same path with other bytes is another cell (an imatrix replaced in place must not reuse old results);
// the same bytes again give the first id back. DescribeCell hashes the file; it is not parsed here.
TEST(ImatrixFileParam, FileContentEntersTheCellId) {
  qltest::TempDir dir("ql_imatrix_id_test");
  const std::string text = (dir.path() / "eval.txt").string(), im = (dir.path() / "im.gguf").string();
  std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
  std::string head(8000, '\0');
  in.read(head.data(), head.size());
  std::ofstream(text, std::ios::binary) << head;
  const std::string yaml = "name: x\nmodel: " + std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin" +
                           "\ndata: " + text + "\nprotocol: {name: llamacpp, ctx: 64, chunks: 1}\n" +
                           "grid:\n  schemes: [q4_0]\n  algorithms: [{name: imatrix, file: " + im + "}]\n";
  StatusOr<Experiment> e = ParseExperiment(yaml, "x.yaml", ".");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::vector<Cell> cells = ExpandGrid(*e);
  ASSERT_EQ(cells.size(), 1u);
  auto s = OpenSession(*e, cells, SessionOptions{});
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto id_with = [&](const std::string& bytes) {
    std::ofstream(im, std::ios::binary | std::ios::trunc) << bytes;
    return DescribeCell(**s, cells[0]).id;
  };
  const std::string a = id_with("first imatrix"), b = id_with("second imatrix");
  EXPECT_NE(a, b);
  EXPECT_EQ(id_with("first imatrix"), a);
  EXPECT_NE(DescribeCell(**s, cells[0]).config.find("file_hashes"), std::string::npos);
}

}  // namespace
}  // namespace ql
