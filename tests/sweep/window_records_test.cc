// Per-window records of adaptive units on disk (harness/sweep/window_records.h): the file round-trips
// bitwise and refuses what does not fit; on stories260K a full-window scan that resumes from an adaptive
// scan's records gives bitwise the table of a fresh full scan, and does take the records it finds.
#include "harness/sweep/window_records.h"
#include "tests/test_paths.h"

#include <bit>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "harness/sweep/cell_eval.h"
#include "harness/sweep/sensitivity.h"
#include "tests/sweep/scan_testing.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

std::vector<Window> Windows(const std::vector<int>& scored) {
  std::vector<Window> w(scored.size());
  for (size_t i = 0; i < w.size(); ++i) w[i].score_begin = 1, w[i].score_end = 1 + scored[i];
  return w;
}

bool Same(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::bit_cast<uint64_t>(a[i]) != std::bit_cast<uint64_t>(b[i])) return false;
  return true;
}

TEST(WindowRecords, RoundTripBitwiseAndRefuseWhatDoesNotFit) {
  qltest::TempDir dir("ql_window_records_test");
  const std::string path = (dir.path() / "c.qlwr").string();
  const std::vector<Window> windows = Windows({3, 2, 3, 1});
  TokenRecords rec;  // windows 1 and 3: 2 + 1 tokens, in index order
  rec.Add(2.25, 2.5 + 1e-13, 0.125, true);
  rec.Add(0.1, 0.3, 1.0 / 3, false);
  rec.Add(7.0, 6.5, 1e-300, true);
  ASSERT_TRUE(WriteWindowRecords(path, windows, {1, 3}, rec).ok());
  KnownWindows k = ReadWindowRecords(path, windows);
  ASSERT_EQ(k.size(), 4u);
  EXPECT_FALSE(k[0] || k[2]);
  ASSERT_TRUE(k[1] && k[3]);
  TokenRecords back;
  for (int w : {1, 3})
    for (int64_t i = 0; i < k[size_t(w)]->size(); ++i)
      back.Add(k[size_t(w)]->nll_base[size_t(i)], k[size_t(w)]->nll_quant[size_t(i)], k[size_t(w)]->kld[size_t(i)],
               k[size_t(w)]->same_top[size_t(i)]);
  EXPECT_TRUE(Same(back.nll_base, rec.nll_base) && Same(back.nll_quant, rec.nll_quant) && Same(back.kld, rec.kld) &&
              Same(back.p_diff, rec.p_diff));
  EXPECT_EQ(back.same_top, rec.same_top);
  EXPECT_TRUE(Same(k[1]->p_diff, {rec.p_diff[0], rec.p_diff[1]}));
  // Another window count, another scored-token count, a truncated or missing file: nothing known.
  auto none = [](const KnownWindows& kw) {
    for (const auto& w : kw)
      if (w) return false;
    return true;
  };
  EXPECT_TRUE(none(ReadWindowRecords(path, Windows({3, 2, 3}))));
  EXPECT_TRUE(none(ReadWindowRecords(path, Windows({3, 4, 3, 1}))));
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 1);
  EXPECT_TRUE(none(ReadWindowRecords(path, windows)));
  EXPECT_EQ(ReadWindowRecords(path + ".missing", windows).size(), 4u);
  EXPECT_TRUE(none(ReadWindowRecords(path + ".missing", windows)));
}

// `merge`'s copy: every records file of every source arrives; one dest already has is replaced only by
// one holding more windows; other files and a source without records are passed over.
TEST(WindowRecords, MergeCopiesEveryFileKeepingTheLargerOfTwo) {
  qltest::TempDir dir("ql_window_records_merge_test");
  const std::vector<Window> windows = Windows({1, 1, 1, 1});
  auto write = [&](const std::string& results, const std::string& name, const std::vector<int>& ran) {
    fs::create_directories(WindowRecordsDir(results));
    TokenRecords rec;
    for (int w : ran) rec.Add(1, 2, 0.5 + w, true);
    ASSERT_TRUE(WriteWindowRecords(WindowRecordsDir(results) + "/" + name + ".qlwr", windows, ran, rec).ok());
  };
  const std::string a = (dir.path() / "a").string(), b = (dir.path() / "b").string(), c = (dir.path() / "c").string();
  const std::string dest = (dir.path() / "dest").string();
  write(a, "x", {0, 2}), write(a, "y", {1});
  write(b, "y", {0, 1, 3}), write(b, "z", {3});
  write(dest, "x", {0, 1, 2});  // more windows than a's x: kept
  std::ofstream(WindowRecordsDir(a) + "/notes.txt") << "not a records file";
  fs::create_directories(c);  // a sweep's store: no records directory
  ASSERT_TRUE(MergeWindowRecords(dest, {a, c, b}).ok());
  const std::string d = WindowRecordsDir(dest) + "/";
  EXPECT_EQ(StoredWindowCount(d + "x.qlwr"), 3);
  EXPECT_EQ(StoredWindowCount(d + "y.qlwr"), 3);  // b's, over a's one window
  EXPECT_EQ(StoredWindowCount(d + "z.qlwr"), 1);
  EXPECT_FALSE(fs::exists(d + "notes.txt"));
  EXPECT_FALSE(fs::exists(d + "y.qlwr.tmp"));
  const KnownWindows z = ReadWindowRecords(d + "z.qlwr", windows);
  ASSERT_TRUE(z[3].has_value());
  EXPECT_EQ(z[3]->kld[0], 3.5);
  EXPECT_EQ(StoredWindowCount(d + "missing.qlwr"), 0);
}

// stories260K at ctx 64 × 8 windows, layer units at int3:g32, adaptive so most stop at 2 windows.
class ResumeScan : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(30000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir_.path() / "eval.txt", std::ios::binary) << text;
    auto e = ParseExperiment(
        "name: resume\nmodel: " + std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin\ndata: " +
            (dir_.path() / "eval.txt").string() + "\nprotocol: {name: llamacpp, ctx: 64, chunks: 8}\n"
            "sensitivity: {units: layer, schemes: [int3:g32], adaptive: {rel_se: 0.5, min_windows: 2}}\n"
            "grid:\n  schemes: [int4:g32]\n",
        "resume.yaml");
    ASSERT_TRUE(e.ok()) << e.status().message();
    e_ = *e;
  }
  std::unique_ptr<Scan> RunScan(const std::string& name, bool full) {
    return testing::RunTestScan(e_, (dir_.path() / name).string(), full, log_);
  }
  Experiment e_;
  std::ostringstream log_;
  qltest::TempDir dir_{"ql_window_records_test"};
};

TEST_F(ResumeScan, FullCellsFromAnAdaptiveScansRecordsAreBitwiseFreshOnes) {
  auto adaptive = RunScan("a", false);
  auto fresh = RunScan("fresh", true);
  ASSERT_TRUE(adaptive && fresh);
  // Every adaptive unit left its windows under its full cell's id.
  int partial = 0;
  for (size_t i = 0; i < fresh->table.rows.size(); ++i) {
    const std::string path = WindowRecordsPath(*adaptive->session, SensitivityCells(adaptive->experiment,
        adaptive->table.units, adaptive->table.schemes)[i]);
    EXPECT_EQ(fs::path(path).stem().string(), fresh->table.rows[i].facts->id);
    int known = 0;
    for (const auto& w : ReadWindowRecords(path, adaptive->session->windows)) known += bool(w);
    EXPECT_EQ(known, adaptive->table.rows[i].facts->eval_windows);
    partial += known < int(adaptive->session->windows.size());
  }
  EXPECT_GT(partial, 0);
  // A copy of the store with unit 0's records altered (every KLD doubled): its full cell must show it.
  fs::copy(dir_.path() / "a", dir_.path() / "t", fs::copy_options::recursive);
  const std::string first = (dir_.path() / "t" / "window-records" / (fresh->table.rows[0].facts->id + ".qlwr")).string();
  KnownWindows k = ReadWindowRecords(first, fresh->session->windows);
  std::vector<int> ran;
  TokenRecords doubled;
  for (size_t w = 0; w < k.size(); ++w)
    if (k[w]) {
      ran.push_back(int(w));
      for (int64_t i = 0; i < k[w]->size(); ++i)
        doubled.Add(k[w]->nll_base[size_t(i)], k[w]->nll_quant[size_t(i)], 2 * k[w]->kld[size_t(i)], k[w]->same_top[size_t(i)]);
    }
  ASSERT_TRUE(WriteWindowRecords(first, fresh->session->windows, ran, doubled).ok());

  auto resumed = RunScan("a", true), tampered = RunScan("t", true);
  ASSERT_TRUE(resumed && tampered);
  EXPECT_EQ(SensitivityJson(resumed->table).dump(), SensitivityJson(fresh->table).dump());
  EXPECT_GT(tampered->table.rows[0].facts->kld, fresh->table.rows[0].facts->kld);
  for (size_t i = 1; i < fresh->table.rows.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint64_t>(tampered->table.rows[i].facts->kld), std::bit_cast<uint64_t>(fresh->table.rows[i].facts->kld));
}

}  // namespace
}  // namespace ql
