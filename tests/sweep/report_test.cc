// The HTML report: Pareto front math, and a real page from a real sweep rendered by headless Chromium
// (Debian's chromium package) with its plots present in the rendered DOM.
#include "results/report.h"

#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include <gtest/gtest.h>

#include "tests/run_command.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

TEST(Report, ParetoFrontMinimisesBoth) {
  //            0    1    2    3    4    5
  std::vector<double> x = {4.5, 4.0, 8.5, 5.0, 4.0, 16};
  std::vector<double> y = {0.3, 0.9, 0.01, 0.5, 0.7, 0.0};
  // sorted by x: (4.0,0.7)#4, (4.0,0.9)#1, (4.5,0.3)#0, (5.0,0.5)#3, (8.5,0.01)#2, (16,0)#5
  EXPECT_EQ(ParetoFront(x, y), (std::vector<size_t>{4, 0, 2, 5}));
  EXPECT_TRUE(ParetoFront({}, {}).empty());
}

std::string RunCapture(const std::string& cmd) { return qltest::RunCommand(cmd).out; }

size_t CountMatches(const std::string& s, const std::string& re) {
  std::regex r(re);
  return size_t(std::distance(std::sregex_iterator(s.begin(), s.end(), r), std::sregex_iterator()));
}

TEST(Report, RendersInHeadlessChromiumWithPlots) {
  std::random_device rd;
  const fs::path dir = fs::temp_directory_path() / ("ql_report_test_" + std::to_string(rd()));
  fs::create_directories(dir);
  {
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(16000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(dir / "eval.txt", std::ios::binary) << text;
    std::ofstream(dir / "exp.yaml") << "name: r\nmodel: " << QL_SHARED_DIR << "/models/stories260K/stories260K.bin\n"
                                    << "data: eval.txt\nprotocol: {name: llamacpp, ctx: 128, chunks: 2}\n"
                                    << "grid:\n  schemes: [int8:channel, int4:g32, nf4, mxfp4]\n  ignore: [none]\n";
  }
  const std::string q = std::string(QL_QUANTLAB_BIN);
  ASSERT_EQ(std::system((q + " sweep " + (dir / "exp.yaml").string() + " --results " + (dir / "res").string() +
                         " --no-table >/dev/null 2>&1").c_str()), 0);
  const fs::path html = dir / "report.html";
  ASSERT_EQ(std::system((q + " report --results " + (dir / "res").string() + " --out " + html.string() + " >/dev/null").c_str()), 0);
  // Self-contained: no external scripts, styles or images.
  std::ifstream f(html);
  const std::string page((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("http://cdn"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);

  // Render it: Chromium parses the page and we read back the DOM it built.
  const std::string dom = RunCapture("chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                                     "--dump-dom 'file://" + html.string() + "' 2>/dev/null");
  ASSERT_NE(dom.find("<svg id=\"pareto-dppl\""), std::string::npos) << "chromium produced: " << dom.substr(0, 300);
  ASSERT_NE(dom.find("<svg id=\"pareto-kld\""), std::string::npos);
  ASSERT_NE(dom.find("<svg id=\"layer-heatmap\""), std::string::npos);
  EXPECT_EQ(CountMatches(dom, "<circle class=\"pt\""), 8u);           // 4 cells in each of the 2 plots
  EXPECT_GE(CountMatches(dom, "<path class=\"pareto\""), 2u);         // a front in each
  EXPECT_EQ(CountMatches(dom, "<rect class=\"cell\""), 4u * 5u);      // 4 cells x 5 layers
  EXPECT_NE(dom.find("id=\"format-errors\""), std::string::npos);
  EXPECT_NE(dom.find("<td>nf4</td>"), std::string::npos);
  // And it paints: a screenshot is written and is a non-trivial PNG.
  const fs::path png = dir / "report.png";
  std::system(("cd " + dir.string() + " && chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
               "--window-size=1200,1600 --screenshot=" + png.string() + " 'file://" + html.string() + "' >/dev/null 2>&1").c_str());
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 20000u);
  if (!getenv("QL_KEEP_TEST_OUTPUT")) fs::remove_all(dir);
  else std::printf("kept %s\n", dir.c_str());
}

}  // namespace
}  // namespace ql
