// Merging importance matrices as llama-imatrix --in-file does (io::MergeImatrix, `quantlab imatrix --in-file`):
// against merges computed by hand from the rule (GGUF layout: sums and counts add; legacy .dat: mean · ncall
// times the run's chunk size; one matrix count broadcast; chunk count = largest count / chunk size), the
// errors for files of different shapes, collection continuing on a merged file, and file= in an experiment
// resolved against the experiment file's directory.
#include <filesystem>
#include "tests/test_paths.h"
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "harness/io/imatrix.h"
#include "tests/run_command.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kTiny = std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny";

io::Imatrix Raw(std::vector<float> sums, std::vector<int64_t> counts, std::string dataset, int32_t chunk_size) {
  io::Imatrix m;
  m.entries["blk.0.attn_q.weight"] = {std::move(sums), std::move(counts)};
  m.datasets = {std::move(dataset)};
  m.chunk_size = chunk_size;
  m.chunk_count = 2;
  return m;
}

TEST(ImatrixMerge, GgufLayoutsAddSumsAndCounts) {
  io::Imatrix a = Raw({1, 2, 3, 4}, {10}, "a.txt", 5);
  io::Imatrix b = Raw({0.5f, 0.25f, 0, 8}, {6}, "b.txt", 7);
  b.entries["blk.0.ffn_down.weight"] = {{1, 1}, {4}};
  io::Imatrix m;
  ASSERT_TRUE(io::MergeImatrix(a, "a", 4, &m).ok());
  ASSERT_TRUE(io::MergeImatrix(b, "b", 4, &m).ok());
  EXPECT_EQ(m.entries.at("blk.0.attn_q.weight").sums, (std::vector<float>{1.5f, 2.25f, 3, 12}));
  EXPECT_EQ(m.entries.at("blk.0.attn_q.weight").counts, (std::vector<int64_t>{16}));
  EXPECT_EQ(m.entries.at("blk.0.ffn_down.weight").sums, (std::vector<float>{1, 1}));
  EXPECT_EQ(m.entries.at("blk.0.ffn_down.weight").counts, (std::vector<int64_t>{4}));
  EXPECT_EQ(m.datasets, (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(m.chunk_size, 4);   // the merging run's, not the files'
  EXPECT_EQ(m.chunk_count, 4);  // 16 tokens / 4
  EXPECT_FALSE(m.legacy);
}

TEST(ImatrixMerge, LegacyValuesAreScaledByTheRunsChunkSize) {
  io::Imatrix dat = Raw({0.5f, 1, 1.5f, 2}, {2}, "c.txt", 0);  // mean · ncall, {ncall}
  dat.legacy = true;
  io::Imatrix m;
  ASSERT_TRUE(io::MergeImatrix(Raw({1, 2, 3, 4}, {10}, "a.txt", 5), "a", 4, &m).ok());
  ASSERT_TRUE(io::MergeImatrix(dat, "c", 4, &m).ok());
  EXPECT_EQ(m.entries.at("blk.0.attn_q.weight").sums, (std::vector<float>{3, 6, 9, 12}));  // 1 + 0.5·4, ...
  EXPECT_EQ(m.entries.at("blk.0.attn_q.weight").counts, (std::vector<int64_t>{18}));       // 10 + 2·4
  EXPECT_EQ(m.chunk_count, 4);                                                            // 18 / 4
  io::Imatrix only;
  ASSERT_TRUE(io::MergeImatrix(dat, "c", 512, &only).ok());
  EXPECT_EQ(only.entries.at("blk.0.attn_q.weight").sums, (std::vector<float>{256, 512, 768, 1024}));
  EXPECT_EQ(only.chunk_count, 2);
}

TEST(ImatrixMerge, OneMatrixCountIsBroadcastOtherShapesAreErrors) {
  io::Imatrix m;
  ASSERT_TRUE(io::MergeImatrix(Raw({1, 2, 3, 4}, {10}, "a", 4), "a", 4, &m).ok());
  ASSERT_TRUE(io::MergeImatrix(Raw({1, 1, 1, 1}, {3, 5}, "e", 4), "e", 4, &m).ok());  // two experts of 2 inputs
  EXPECT_EQ(m.entries.at("blk.0.attn_q.weight").counts, (std::vector<int64_t>{13, 15}));
  const Status wide = io::MergeImatrix(Raw({1, 2, 3}, {1}, "w", 4), "w.gguf", 4, &m);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.message().find("w.gguf: entry blk.0.attn_q.weight has 3 sums"), std::string::npos) << wide.message();
  const Status three = io::MergeImatrix(Raw({1, 2, 3, 4}, {1, 1, 1}, "t", 4), "t.gguf", 4, &m);
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.message().find("3 matrices"), std::string::npos) << three.message();
  EXPECT_FALSE(io::MergeImatrix(Raw({1}, {1}, "z", 4), "z", 0, &m).ok());
}

class ImatrixMergeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ql_imatrix_merge_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& n) const { return (dir_ / n).string(); }
  qltest::CommandResult Quantlab(const std::string& args) const {
    return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + " 2>&1");
  }
  fs::path dir_;
};

TEST_F(ImatrixMergeCli, InFilesMergeAndCollectionContinues) {
  ASSERT_TRUE(io::WriteImatrixGguf(P("a.gguf"), Raw({1, 2, 3, 4}, {10}, "a.txt", 5)).ok());
  io::Imatrix dat = Raw({0.5f, 1, 1.5f, 2}, {2}, "c.txt", 0);
  dat.legacy = true;
  ASSERT_TRUE(io::WriteImatrixDat(P("c.dat"), dat).ok());
  const auto r = Quantlab("imatrix --in-file " + P("a.gguf") + " --in-file " + P("c.dat") + " --ctx 4 --out " + P("m.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  StatusOr<io::Imatrix> m = io::ReadImatrix(P("m.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->entries.at("blk.0.attn_q.weight").sums, (std::vector<float>{3, 6, 9, 12}));
  EXPECT_EQ(m->entries.at("blk.0.attn_q.weight").counts, (std::vector<int64_t>{18}));
  EXPECT_EQ(m->chunk_count, 4);
  EXPECT_EQ(m->chunk_size, 4);
  EXPECT_EQ(m->datasets, (std::vector<std::string>{"a.txt", "c.txt"}));
  const auto none = Quantlab("imatrix --out " + P("x.gguf"));
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.out.find("--in-file"), std::string::npos) << none.out;

  // Collection on top of a file of the same text: counts and chunks add up, sums double (to float order).
  const std::string text = kTiny + "/calibration.txt";
  const auto one = Quantlab("imatrix --model " + kTiny + " --text " + text + " --ctx 64 --chunks 2 --out " + P("t.gguf"));
  ASSERT_EQ(one.exit_code, 0) << one.out;
  const auto two = Quantlab("imatrix --model " + kTiny + " --text " + text + " --ctx 64 --chunks 2 --in-file " + P("t.gguf") +
                            " --out " + P("tt.gguf"));
  ASSERT_EQ(two.exit_code, 0) << two.out;
  StatusOr<io::Imatrix> t = io::ReadImatrix(P("t.gguf")), tt = io::ReadImatrix(P("tt.gguf"));
  ASSERT_TRUE(t.ok() && tt.ok());
  EXPECT_EQ(tt->chunk_count, 2 * t->chunk_count);
  EXPECT_EQ(tt->datasets, (std::vector<std::string>{text, text}));
  ASSERT_EQ(tt->entries.size(), t->entries.size());
  for (const auto& [name, e] : t->entries) {
    const io::ImatrixEntry& d = tt->entries.at(name);
    EXPECT_EQ(d.counts[0], 2 * e.counts[0]) << name;
    for (size_t j = 0; j < e.sums.size(); ++j) EXPECT_NEAR(d.sums[j], 2 * e.sums[j], 1e-5 * 2 * e.sums[j] + 1e-30) << name;
  }
}

}  // namespace
}  // namespace ql
