// Plot drawing: 1-2-5 tick rule and decade ticks against hand-worked ranges, tick labels, text width
// against DejaVu Sans advances, ellipsis fitting, label placement without overlaps, and the report's
// per-token helpers (rolling mean against a scalar double loop, worst spans, format families).
#include "results/svg.h"

#include <cmath>
#include <random>
#include <regex>

#include <gtest/gtest.h>

#include "results/report.h"

namespace ql::svg {
namespace {

TEST(Svg, NiceTicksUseOneTwoFiveSteps) {
  // The range the old report labelled 4.32, 3.39, 2.46 ...: now 0, 1, ..., 5.
  Ticks t = NiceTicks(0.13, 4.32, 5);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"0", "1", "2", "3", "4", "5"}));
  EXPECT_DOUBLE_EQ(t.lo, 0);
  EXPECT_DOUBLE_EQ(t.hi, 5);
  // raw step 0.0142 -> 0.02; range widened to [-0.02, 0.08].
  t = NiceTicks(-0.0079, 0.0631, 5);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"-0.02", "0", "0.02", "0.04", "0.06", "0.08"}));
  // raw step 4.2 -> 5.
  t = NiceTicks(-0.15, 20.9, 5);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"-5", "0", "5", "10", "15", "20", "25"}));
  // Not widened: the range stays, the round values inside it are the ticks.
  t = NiceTicks(4.0 - 0.16, 8.106 + 0.16, 6, false);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"4", "5", "6", "7", "8"}));
  EXPECT_DOUBLE_EQ(t.lo, 3.84);
  // Every step is 1, 2 or 5 times a power of ten, over many random ranges.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-6, 6), r(-3, 2);
  for (int i = 0; i < 500; ++i) {  // spans from 1/1000 to 100 times the offset
    const double a = std::pow(10.0, u(rng)) * (i % 3 ? 1 : -1), b = a + std::fabs(a) * std::pow(10.0, r(rng));
    t = NiceTicks(a, b, 5);
    ASSERT_GE(t.values.size(), 3u);
    EXPECT_LE(t.lo, a);
    EXPECT_GE(t.hi, b);
    const double step = t.values[1] - t.values[0], m = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::fabs(m - 1) < 1e-6 || std::fabs(m - 2) < 1e-6 || std::fabs(m - 5) < 1e-6) << a << " " << b;
    EXPECT_LE(t.values.size(), 12u);
  }
}

TEST(Svg, LogTicksAreDecadesOrOneTwoFive) {
  Ticks t = LogTicks(6.2e-4, 1.5);  // 3.4 decades: decades only
  EXPECT_EQ(t.labels, (std::vector<std::string>{"0.001", "0.01", "0.1", "1"}));
  EXPECT_LT(t.lo, 6.2e-4);
  EXPECT_GT(t.hi, 1.5);
  EXPECT_GT(t.lo, 4e-4);  // padded, not widened to the next decade
  t = LogTicks(0.03, 0.9);  // 1.5 decades: 1-2-5
  EXPECT_EQ(t.labels, (std::vector<std::string>{"0.05", "0.1", "0.2", "0.5", "1"}));
  t = LogTicks(2e-7, 3e-5);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"2e-7", "5e-7", "1e-6", "2e-6", "5e-6", "1e-5", "2e-5"}));
  t = LogTicks(0.31, 0.42);  // less than a factor 2: linear round values
  EXPECT_EQ(t.labels, (std::vector<std::string>{"0.30", "0.35", "0.40"}));
}

TEST(Svg, TickLabels) {
  EXPECT_EQ(TickLabel(0.0, 0.5), "0");
  EXPECT_EQ(TickLabel(-1e-17, 0.02), "0");  // rounding residue of k * step
  EXPECT_EQ(TickLabel(2.5, 0.5), "2.5");
  EXPECT_EQ(TickLabel(1200, 200), "1200");
  EXPECT_EQ(TickLabel(3e6, 1e6), "3e6");
  EXPECT_EQ(TickLabel(2.5e-5, 5e-6), "2.5e-5");
}

TEST(Svg, TextWidthFollowsDejaVuAdvances) {
  // DejaVu Sans: digits 0.637 em, 'i' 0.278 em, 'W' 0.989 em; widths are rounded up by 4%.
  EXPECT_NEAR(TextWidth("0", 10), 6.37 * 1.04, 1e-9);
  EXPECT_NEAR(TextWidth("iW", 100), (27.8 + 98.9) * 1.04, 1e-9);
  EXPECT_NEAR(TextWidth("Δ", 10), 10 * 1.04, 1e-9);  // one UTF-8 character, one em
  EXPECT_GT(TextWidth("int4:g32 | gptq | ignore=lm_head", 11), TextWidth("int4:g32", 11));
  const std::string long_label = "int4:g32 A=fp8_e4m3:token KV=int8:token ATTN(q=none p=int4:token) | gptq | ignore=x";
  const std::string fit = FitText(long_label, 11, 120);
  EXPECT_LE(TextWidth(fit, 11), 120);
  EXPECT_EQ(fit.substr(fit.size() - 3), "…");
  EXPECT_EQ(long_label.rfind(fit.substr(0, fit.size() - 3), 0), 0u);
  EXPECT_EQ(FitText("nf4", 11, 120), "nf4");
  const std::string mid = FitTextMiddle(long_label, 11, 200);
  EXPECT_LE(TextWidth(mid, 11), 200);
  EXPECT_NE(mid.find(" … "), std::string::npos);
  EXPECT_EQ(long_label.rfind(mid.substr(0, mid.find(" … ")), 0), 0u);                   // a head of it
  const std::string tail = mid.substr(mid.find(" … ") + std::string(" … ").size());
  EXPECT_EQ(long_label.substr(long_label.size() - tail.size()), tail);                  // and its end
  EXPECT_EQ(tail.substr(tail.size() - 8), "ignore=x");
  EXPECT_EQ(FitTextMiddle("nf4", 11, 120), "nf4");
}

TEST(Svg, PlacedLabelsStayInsideAndApart) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> ux(100, 600), uy(50, 350);
  std::vector<std::pair<double, double>> anchors, sizes;
  std::vector<Box> obstacles;
  for (int i = 0; i < 12; ++i) {
    anchors.push_back({ux(rng), uy(rng)});
    sizes.push_back({60.0 + 5 * i, 14.0});
    obstacles.push_back({anchors.back().first - 5, anchors.back().second - 5, anchors.back().first + 5,
                         anchors.back().second + 5});
  }
  const Box area{0, 0, 700, 400};
  const auto placed = PlaceLabels(anchors, sizes, obstacles, area, 5);
  ASSERT_EQ(placed.size(), anchors.size());
  for (size_t i = 0; i < placed.size(); ++i) {
    const Box& a = placed[i].box;
    EXPECT_GE(a.x0, area.x0);
    EXPECT_LE(a.x1, area.x1);
    EXPECT_GE(a.y0, area.y0);
    EXPECT_LE(a.y1, area.y1);
    EXPECT_NEAR(a.x1 - a.x0, sizes[i].first, 1e-9);
    for (size_t j = 0; j < i; ++j) {
      const Box& b = placed[j].box;
      const bool apart = a.x1 <= b.x0 || b.x1 <= a.x0 || a.y1 <= b.y0 || b.y1 <= a.y0;
      EXPECT_TRUE(apart) << "labels " << i << " and " << j << " overlap";
    }
    for (const Box& o : obstacles) EXPECT_TRUE(a.x1 <= o.x0 || o.x1 <= a.x0 || a.y1 <= o.y0 || o.y1 <= a.y0);
  }
  // A crowded cluster (8 points within 12 px) still gets 8 labels apart from each other.
  anchors.clear(), sizes.clear();
  for (int i = 0; i < 8; ++i) anchors.push_back({300 + 1.5 * i, 200 - 1.5 * i}), sizes.push_back({70, 14});
  const auto crowd = PlaceLabels(anchors, sizes, {}, area, 5);
  for (size_t i = 0; i < crowd.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      const Box &a = crowd[i].box, &b = crowd[j].box;
      EXPECT_TRUE(a.x1 <= b.x0 || b.x1 <= a.x0 || a.y1 <= b.y0 || b.y1 <= a.y0) << i << " " << j;
    }
}

TEST(Svg, RenderedPlotHasAxesLegendLabelsAndErrorBars) {
  Plot p;
  p.id = "t";
  p.xlabel = "bits per weight";
  p.ylabel = "ΔPPL";
  p.zero_line = true;
  p.legend = {{"colour: algorithm", "", {}, false, true}, {"rtn", "#0072b2", Marker::kCircle}};
  Series s;
  s.has_err = true;
  for (int i = 0; i < 4; ++i) {
    Point q;
    q.x = 4 + i, q.y = 1.0 / (i + 1), q.lo = q.y - 0.1, q.hi = q.y + 0.1, q.label = "p" + std::to_string(i);
    s.pts.push_back(q);
  }
  p.series.push_back(s);
  double w = 0, h = 0;
  const std::string out = Render(p, &w, &h);
  EXPECT_EQ(w, 760);
  EXPECT_EQ(h, 420);
  EXPECT_EQ(out.rfind("<svg id=\"t\"", 0), 0u);
  EXPECT_NE(out.find("viewBox=\"0 0 760 420\""), std::string::npos);
  auto count = [&](const std::string& re) {
    std::regex r(re);
    return std::distance(std::sregex_iterator(out.begin(), out.end(), r), std::sregex_iterator());
  };
  EXPECT_EQ(count("class=\"plabel\""), 4);
  EXPECT_EQ(count("<g class=\"pt\""), 4);
  EXPECT_EQ(count("<g class=\"legend\""), 1);
  EXPECT_EQ(count(" h 6"), 8);  // two caps per error bar
  EXPECT_NE(out.find(">ΔPPL</text>"), std::string::npos);
}

}  // namespace
}  // namespace ql::svg

namespace ql {
namespace {

TEST(ReportHelpers, RollingMeanMatchesScalarLoop) {
  std::mt19937 rng(11);
  std::normal_distribution<double> n(0.1, 1.0);
  std::vector<double> v(257);
  for (auto& x : v) x = n(rng);
  for (size_t w : {1u, 2u, 16u, 257u}) {
    const auto r = RollingMean(v, w);
    ASSERT_EQ(r.size(), v.size() - w + 1);
    for (size_t i = 0; i < r.size(); i += 7) {
      long double s = 0;
      for (size_t j = 0; j < w; ++j) s += v[i + j];
      EXPECT_NEAR(r[i], double(s / w), 1e-12);
    }
  }
  EXPECT_EQ(RollingMean({1, 2, 3}, 8), (std::vector<double>{2}));
  EXPECT_TRUE(RollingMean({}, 4).empty());
}

TEST(ReportHelpers, WorstSpansDoNotOverlap) {
  //                            0    1    2    3    4    5    6    7    8    9
  const std::vector<double> r = {0.1, 0.9, 0.8, 0.2, 0.0, 0.3, 0.7, 0.1, 0.6, 0.5};
  EXPECT_EQ(WorstSpans(r, 3, 3), (std::vector<size_t>{1, 6, 9}));  // 2 is within 3 of 1; 8 within 3 of 6
  EXPECT_EQ(WorstSpans(r, 1, 2), (std::vector<size_t>{1, 2}));
  EXPECT_TRUE(WorstSpans({}, 3, 3).empty());
}

TEST(ReportHelpers, FormatFamilies) {
  EXPECT_EQ(FormatFamily("int4:g32"), "INT");
  EXPECT_EQ(FormatFamily("uint8:channel"), "INT");
  EXPECT_EQ(FormatFamily("fp8_e4m3:channel"), "FP8");
  EXPECT_EQ(FormatFamily("mxfp4"), "MX");
  EXPECT_EQ(FormatFamily("nvfp4"), "NVFP4");
  EXPECT_EQ(FormatFamily("nf4"), "NF4");
  EXPECT_EQ(FormatFamily("q4_0"), "GGUF");
  EXPECT_EQ(FormatFamily("bf16"), "FP16");
  EXPECT_EQ(FormatFamily(""), "none");
}

}  // namespace
}  // namespace ql
