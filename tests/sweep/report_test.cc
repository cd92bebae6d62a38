// The HTML report: Pareto front math, and a real page from a real two-experiment store rendered by
// headless Chromium (Debian's chromium package). Measured in the rendered page: a legend on every
// scatter plot, a label on every Pareto-front point, no two labels overlapping, no text outside its
// SVG box; the URL-hash filter hides the other rows; --figures writes standalone SVGs.
#include "results/report.h"
#include "tests/test_paths.h"

#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

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

size_t CountMatches(const std::string& s, const std::string& re) {
  std::regex r(re);
  return size_t(std::distance(std::sregex_iterator(s.begin(), s.end(), r), std::sregex_iterator()));
}

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// Runs in the rendered page and writes what it measured into <pre id="check"> for --dump-dom, over every
// <svg> of the page (whoever drew it): svgs, texts / outside (text boxes not inside their <svg>'s box, or
// an <svg> starting left of the page), overlaps (pairs of point labels that intersect), nolegend (an <svg>
// with data marks — points or series lines — and no legend), front / unlabelled (Pareto-front points
// without a label), legends.
constexpr const char* kCheckScript = R"JS(<script>
(function () {
  var svgs = 0, texts = 0, outside = [], overlaps = [], nolegend = [], front = 0, unlabelled = 0;
  document.querySelectorAll('svg').forEach(function (svg) {
    svgs++;
    var b = svg.getBoundingClientRect(), labels = [];
    if (b.left < -0.5) outside.push(svg.id + ': starts left of the page');
    if (svg.querySelector('g.pt, path.series-line') && !svg.querySelector('g.legend')) nolegend.push(svg.id + ': no legend');
    svg.querySelectorAll('text').forEach(function (t) {
      texts++;
      var r = t.getBoundingClientRect();
      if (r.left < b.left - 0.5 || r.right > b.right + 0.5 || r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5)
        outside.push(svg.id + ':' + t.textContent);
      if (t.classList.contains('plabel')) labels.push([r, t.textContent]);
    });
    for (var i = 0; i < labels.length; i++)
      for (var j = 0; j < i; j++) {
        var p = labels[i][0], q = labels[j][0];
        var w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
        if (w > 0.5 && h > 0.5) overlaps.push(svg.id + ':' + labels[i][1] + '/' + labels[j][1]);
      }
  });
  document.querySelectorAll('[data-front="1"]').forEach(function (g) {
    front++;
    if (!document.querySelector('text.plabel[data-for="' + g.id + '"]')) unlabelled++;
  });
  var legends = document.querySelectorAll('svg g.legend').length;
  // Sort the first cell table by bits/weight (a header click), and read the column back.
  var tab = document.querySelector('table.sortable'), col = -1;
  tab.querySelectorAll('th').forEach(function (th, i) { if (th.textContent === 'Bits/weight') col = i; });
  tab.querySelectorAll('th')[col].click();
  var sorted = Array.prototype.map.call(tab.tBodies[0].rows, function (r) { return r.cells[col].textContent; });
  var pre = document.createElement('pre');
  pre.id = 'check';
  pre.textContent = 'svgs=' + svgs + ' texts=' + texts + ' outside=' + outside.length + ' overlaps=' + overlaps.length +
      ' nolegend=' + nolegend.length + ' front=' + front + ' unlabelled=' + unlabelled + ' legends=' + legends +
      ' sorted=[' + sorted.join(',') + '] | ' + outside.concat(overlaps, nolegend).join('; ');
  document.body.appendChild(pre);
})();
</script></body>)JS";

int Field(const std::string& s, const std::string& key) {
  std::smatch m;
  return std::regex_search(s, m, std::regex(key + "=(\\d+)")) ? std::stoi(m[1]) : -1;
}

class ReportPage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::random_device rd;
    dir_ = new fs::path(fs::temp_directory_path() / ("ql_report_test_" + std::to_string(rd())));
    fs::create_directories(*dir_);
    std::ifstream in(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt", std::ios::binary);
    std::string text(16000, '\0');
    in.read(text.data(), text.size());
    std::ofstream(*dir_ / "eval.txt", std::ios::binary) << text;
    const std::string head = std::string("model: ") + QL_SHARED_DIR + "/models/stories260K/stories260K.bin\n" +
                             "data: eval.txt\nprotocol: {name: llamacpp, ctx: 128, chunks: 2}\n";
    std::ofstream(*dir_ / "a.yaml") << "name: formats\n" << head
                                    << "grid:\n  schemes: [int8:channel, int4:g32, nf4, mxfp4]\n  ignore: [none]\n";
    // Long labels (weights, activations, KV cache and attention schemes): they must still fit.
    std::ofstream(*dir_ / "b.yaml") << "name: keep lm_head\n" << head
                                    << "grid:\n  schemes: [{weights: int8:channel, activations: int8:token, kv_cache: int8:token}, nf4]\n"
                                    << "  attention: [{q: int8:token, p: int8:token}]\n  ignore: [lm_head, first_block]\n";
    const std::string q = QL_QUANTLAB_BIN, res = (*dir_ / "res").string();
    for (const char* f : {"a.yaml", "b.yaml"})
      ASSERT_EQ(std::system((q + " sweep " + (*dir_ / f).string() + " --results " + res + " --no-table >/dev/null 2>&1").c_str()), 0);
    ASSERT_EQ(std::system((q + " report --results " + res + " --out " + (*dir_ / "report.html").string() + " --figures " +
                           (*dir_ / "figs").string() + " --no-png >/dev/null").c_str()), 0);
  }
  static void TearDownTestSuite() {
    if (!getenv("QL_KEEP_TEST_OUTPUT")) fs::remove_all(*dir_);
    else std::printf("kept %s\n", dir_->c_str());
    delete dir_;
  }
  static std::string Chromium(const std::string& args) {
    return qltest::RunCommand("chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                              "--window-size=1280,2000 " + args + " 2>/dev/null").out;
  }
  static fs::path* dir_;
};
fs::path* ReportPage::dir_ = nullptr;

TEST_F(ReportPage, SelfContainedWithOneSectionPerExperiment) {
  const std::string page = ReadAll(*dir_ / "report.html");
  EXPECT_EQ(page.find("<script src"), std::string::npos);  // the only script is inline
  EXPECT_EQ(page.find("http://cdn"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("<link"), std::string::npos);
  EXPECT_EQ(CountMatches(page, "<section class=\"experiment\""), 2u);
  EXPECT_NE(page.find("<a href=\"#exp-1\">formats</a>"), std::string::npos);   // the index
  EXPECT_NE(page.find("<a href=\"#exp-2\">keep lm_head</a>"), std::string::npos);
  EXPECT_NE(page.find("<summary>experiment file</summary>"), std::string::npos);
  EXPECT_NE(page.find("<th>code version</th>"), std::string::npos);
  // Figures: six per experiment, each a standalone SVG document.
  size_t n = 0;
  for (const auto& f : fs::directory_iterator(*dir_ / "figs")) {
    const std::string s = ReadAll(f.path());
    EXPECT_EQ(s.rfind("<?xml", 0), 0u) << f.path();
    EXPECT_NE(s.find("<svg id=\""), std::string::npos);
    EXPECT_NE(s.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
    ++n;
  }
  EXPECT_EQ(n, 12u);
  EXPECT_TRUE(fs::exists(*dir_ / "figs" / "formats-dppl.svg"));
  EXPECT_TRUE(fs::exists(*dir_ / "figs" / "keep_lm_head-nll.svg"));
}

TEST_F(ReportPage, RenderedPlotsAreLabelledAndInsideTheirBoxes) {
  const fs::path checked = *dir_ / "checked.html";
  std::string page = ReadAll(*dir_ / "report.html");
  page.replace(page.rfind("</body>"), 7, kCheckScript);
  std::ofstream(checked, std::ios::binary) << page;
  const std::string dom = Chromium("--dump-dom 'file://" + checked.string() + "'");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex("<pre id=\"check\">([^<]*)</pre>"))) << dom.substr(0, 300);
  const std::string r = m[1];
  size_t figures = 0;  // every figure --figures writes is on the page, and checked
  for (const auto& f : fs::directory_iterator(*dir_ / "figs")) figures += f.path().extension() == ".svg";
  EXPECT_EQ(Field(r, "svgs"), int(figures)) << r;
  EXPECT_GT(Field(r, "texts"), 150) << r;
  EXPECT_EQ(Field(r, "outside"), 0) << r;
  EXPECT_EQ(Field(r, "overlaps"), 0) << r;
  EXPECT_EQ(Field(r, "nolegend"), 0) << r;
  EXPECT_GE(Field(r, "front"), 2 * 2 * 2) << r;  // two scatter plots per experiment, >= 2 front points each
  EXPECT_EQ(Field(r, "unlabelled"), 0) << r;
  EXPECT_EQ(Field(r, "legends"), 2 * 5) << r;   // dppl, kld, layers, weight error, nll per experiment
  // A click on the Bits/weight header sorted the table (it was in ΔPPL order: int8 first).
  ASSERT_TRUE(std::regex_search(r, m, std::regex("sorted=\\[([^\\]]*)\\]"))) << r;
  std::vector<double> bpw;
  std::stringstream ss(m[1].str());
  for (std::string v; std::getline(ss, v, ',');) bpw.push_back(std::stod(v));
  ASSERT_EQ(bpw.size(), 4u) << r;
  EXPECT_TRUE(std::is_sorted(bpw.begin(), bpw.end())) << r;
  EXPECT_GT(bpw.back(), 8.0) << r;
  // The plots are there: 4 + 4 points per scatter plot (each with an error bar), a heatmap row per cell.
  EXPECT_EQ(CountMatches(dom, "<g class=\"pt\""), 2u * 4 + 2u * 4);
  EXPECT_EQ(CountMatches(dom, "<rect class=\"cell\""), (4u + 4u) * 5u);  // cells x 5 blocks
  EXPECT_NE(dom.find("id=\"format-errors-formats\""), std::string::npos);
  EXPECT_NE(dom.find("<td>nf4</td>"), std::string::npos);
  EXPECT_NE(dom.find("8 of 8 cells shown"), std::string::npos);
}

TEST_F(ReportPage, HashFilterHidesOtherRowsAndPoints) {
  const std::string dom = Chromium("--dump-dom 'file://" + (*dir_ / "report.html").string() + "#family=NF4'");
  const size_t rows = CountMatches(dom, "<tr data-family=");
  const size_t hidden = CountMatches(dom, "<tr data-family=\"[^\"]*\"[^>]*style=\"display: none;\"");
  EXPECT_EQ(rows, 8u);
  EXPECT_EQ(rows - hidden, 3u) << "nf4 cells: one in 'formats', two in 'keep lm_head'";
  EXPECT_EQ(CountMatches(dom, "<tr data-family=\"NF4\"[^>]*style=\"display: none;\""), 0u);
  EXPECT_NE(dom.find("3 of 8 cells shown"), std::string::npos);
  EXPECT_GT(CountMatches(dom, "<g class=\"pt\"[^>]*style=\"display: none;\""), 0u);  // points follow the filter
  // Two filters combine.
  const std::string both = Chromium("--dump-dom 'file://" + (*dir_ / "report.html").string() + "#family=NF4&ignore=lm_head'");
  EXPECT_NE(both.find("1 of 8 cells shown"), std::string::npos);
}

TEST_F(ReportPage, CompareForPapersAndBadInput) {
  const std::string q = std::string(QL_QUANTLAB_BIN) + " ", res = " --results " + (*dir_ / "res").string();
  auto md = qltest::RunCommand(q + "compare" + res + " --markdown --columns experiment,weights,ignore,bpw,dppl,dppl_ci");
  ASSERT_EQ(md.exit_code, 0) << md.out;
  EXPECT_EQ(md.out.substr(0, md.out.find('\n')),
            "| Experiment   | Weights      | Ignored     | Bits/weight |    ΔPPL |        ΔPPL 95% CI |");
  EXPECT_EQ(CountMatches(md.out, "\n"), 2u + 8u);
  auto tex = qltest::RunCommand(q + "compare" + res + " --latex --sort bits");
  ASSERT_EQ(tex.exit_code, 0);
  EXPECT_NE(tex.out.find("\\toprule\n"), std::string::npos);
  EXPECT_NE(tex.out.find("lm\\_head"), std::string::npos);
  auto narrow = qltest::RunCommand(q + "compare" + res);
  std::istringstream in(narrow.out);
  for (std::string line; std::getline(in, line);) EXPECT_LE(line.size(), 80u + 4) << line;  // 80 characters (Δ, … are 2-3 bytes)
  auto bad = qltest::RunCommand(q + "compare" + res + " --columns weights,nope 2>&1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("unknown column 'nope'"), std::string::npos) << bad.out;
  auto none = qltest::RunCommand(q + "report" + res + " 2>&1");
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.out.find("give --out FILE.html and/or --figures DIR"), std::string::npos) << none.out;
  auto unknown = qltest::RunCommand(q + "report" + res + " --experiment nope --out /dev/null 2>&1");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.out.find("no experiment 'nope'"), std::string::npos) << unknown.out;
}

// --figures with Chromium: one figure rendered to a PNG of the figure's own size (read from its IHDR).
TEST_F(ReportPage, FigurePngHasTheSvgSize) {
  auto store = ResultStore::OpenReadOnly((*dir_ / "res").string());
  ASSERT_TRUE(store.ok());
  auto rep = RenderReport(**store, {});
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  ASSERT_EQ(rep->figures.size(), 12u);
  Report one;
  one.figures.push_back(rep->figures.front());
  const std::string chromium = FindChromium();
  ASSERT_FALSE(chromium.empty()) << "chromium (Debian package) is needed for --figures PNGs";
  auto files = WriteFigures(one, (*dir_ / "png").string(), chromium);
  ASSERT_TRUE(files.ok()) << files.status().message();
  ASSERT_EQ(files->size(), 2u);
  const std::string png = ReadAll(files->back());
  ASSERT_GT(png.size(), 24u);
  ASSERT_EQ(png.substr(1, 3), "PNG");
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(png[at])) << 24) | (uint32_t(uint8_t(png[at + 1])) << 16) |
           (uint32_t(uint8_t(png[at + 2])) << 8) | uint32_t(uint8_t(png[at + 3]));
  };
  EXPECT_EQ(be32(16), uint32_t(std::ceil(one.figures[0].width)));
  EXPECT_EQ(be32(20), uint32_t(std::ceil(one.figures[0].height)));
}

TEST_F(ReportPage, Paints) {
  const fs::path png = *dir_ / "report.png";
  Chromium("--screenshot=" + png.string() + " 'file://" + (*dir_ / "report.html").string() + "' >/dev/null");
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 20000u);
}

}  // namespace
}  // namespace ql
