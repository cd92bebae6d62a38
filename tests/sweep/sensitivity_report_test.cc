// The report's sensitivity section on a real scan (stories260K, ctx 64, 5 layers + lm_head, 2 schemes):
// one bar per (layer, scheme), one heatmap cell per (unit, scheme), one sortable table row per unit and
// scheme carrying the store's ΔKLD, standalone figures, and no section for a plain sweep; a search's
// frontier plot with its verified cell and the uniform cell.
#include "results/sensitivity_report.h"
#include "tests/test_paths.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "harness/sweep/sensitivity.h"
#include "results/report.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

size_t Count(const std::string& s, const std::string& re) {
  std::regex r(re);
  return size_t(std::distance(std::sregex_iterator(s.begin(), s.end(), r), std::sregex_iterator()));
}

TEST(SensitivityReport, BarsHeatmapAndTableFromTheStore) {
  const fs::path dir = fs::temp_directory_path() / ("ql_sens_report_" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
  std::string text(20000, '\0');
  in.read(text.data(), text.size());
  std::ofstream(dir / "eval.txt", std::ios::binary) << text;
  const std::string yaml = "name: sens\nmodel: " + std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.bin\n"
                           "data: " + (dir / "eval.txt").string() + "\nprotocol: {name: llamacpp, ctx: 64, chunks: 2}\n"
                           "results: " + (dir / "res").string() +
                           "\nsensitivity: {units: layer, schemes: [int4:g32, int3:g32]}\ngrid:\n  schemes: [int4:g32]\n";
  auto e = ParseExperiment(yaml, "sens.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::ostringstream log;
  SweepOptions so;
  so.progress_bar = false;
  ASSERT_TRUE(RunSweep(*e, so, log).ok());
  ScanOptions o;
  o.spec = *e->sensitivity;
  o.sweep.progress_bar = false;
  auto scan = RunSensitivity(*e, o, log);
  ASSERT_TRUE(scan.ok()) << scan.status().message();
  SearchOptions search;
  search.budget_bpw = 4.5;
  auto found = RunSearch(**scan, search, log);  // a verified configuration for the frontier plot
  ASSERT_TRUE(found.ok()) << found.status().message();
  auto store = ResultStore::OpenReadOnly((dir / "res").string());
  ASSERT_TRUE(store.ok());
  auto rep = RenderReport(**store, {});
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  const std::string& h = rep->html;
  // One section (the scan's experiment), none for the plain sweep.
  EXPECT_EQ(Count(h, "<h3>Sensitivity units</h3>"), 1u);
  EXPECT_EQ(Count(h, "<title>block [0-9]+ int[34]:g32: Σ ΔKLD"), 5u * 2);  // 5 layers (lm_head has none) x 2 schemes
  EXPECT_EQ(Count(h, "<title>(layer [0-9]+|lm_head) int[34]:g32: ΔKLD [0-9.]+ ±"), 6u * 2);
  EXPECT_EQ(Count(h, "<table class=\"sens sortable\""), 1u);
  const size_t table = h.find("<table class=\"sens sortable\"");
  const std::string body = h.substr(table, h.find("</table>", table) - table);
  EXPECT_EQ(Count(body, "<tr><td>"), 12u);
  // The table's ΔKLD is the store's.
  for (const SensitivityRow& r : (*scan)->table.rows) {
    const std::string cell = "<td>" + r.unit->name + "</td><td>" + r.scheme + "</td>";
    const size_t at = body.find(cell);
    ASSERT_NE(at, std::string::npos) << cell;
    EXPECT_NE(body.substr(at, 300).find(fmt::format(">{:.6f}<", r.facts->kld)), std::string::npos) << cell;
    EXPECT_NE(body.substr(at, 400).find(">2</td></tr>"), std::string::npos) << cell << ": 2 windows";
  }
  int figs = 0;
  for (const ReportFigure& f : rep->figures)
    if (f.name.find("-sens-") != std::string::npos) {
      ++figs;
      EXPECT_GT(f.width, 100);
      EXPECT_GT(f.height, 100);
      EXPECT_EQ(f.svg.rfind("<svg", 0), 0u);
    }
  EXPECT_EQ(figs, 2);
  // The search frontier: one section (the "-search" experiment), its point at the store's KLD and
  // whole-model bits per weight, and the uniform int4:g32 cell beside it.
  EXPECT_EQ(Count(h, "<h3>Search frontier</h3>"), 1u);
  auto q = (*store)->Query("SELECT m.model_bytes * 8.0 / mo.n_params, m.kld_mean FROM metrics m JOIN cells c ON "
                           "c.id = m.cell_id JOIN models mo ON mo.id = c.model_id WHERE c.id = '" +
                           found->report["rounds"].back()["cell_id"].get<std::string>() + "'");
  ASSERT_TRUE(q.ok() && q->rows.size() == 1u);
  EXPECT_EQ(Count(h, fmt::format("<title>search: {:.4f} b/w \\(whole model\\), KLD {:.5g} ±", std::get<double>(q->rows[0][0]),
                                 std::get<double>(q->rows[0][1]))), 1u);
  EXPECT_EQ(Count(h, "<title>int4:g32: [0-9.]+ b/w \\(whole model\\), KLD"), 1u);
  int frontier = 0;
  for (const ReportFigure& f : rep->figures) frontier += f.name.ends_with("-frontier");
  EXPECT_EQ(frontier, 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ql
