// SVG plot drawing for the report (see svg.h). Layout is computed from estimated text widths: the
// left margin holds the widest y tick label, the right margin the legend, so no text leaves the box.
#include "results/svg.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace ql::svg {
namespace {

// DejaVu Sans advance widths of ASCII 32..126 in 1/1000 em, as measured by Chromium's canvas
// measureText at 1000 px (rounded up).
constexpr short kAdvance[95] = {
    318, 401, 460, 838, 637, 951, 780, 275, 391, 391, 500, 838, 318, 361, 318, 337, 637, 637, 637,
    637, 637, 637, 637, 637, 637, 637, 337, 337, 838, 838, 838, 531, 1000, 685, 687, 699, 771, 632,
    576, 775, 752, 295, 295, 656, 558, 863, 749, 788, 604, 788, 695, 635, 611, 732, 685, 989, 686,
    611, 686, 391, 337, 391, 838, 500, 500, 613, 635, 550, 635, 616, 353, 635, 634, 278, 278, 580,
    278, 975, 634, 612, 635, 635, 412, 521, 393, 634, 592, 818, 592, 592, 525, 637, 337, 637, 838};
constexpr double kNonAsciiEm = 1.0;  // widest of the symbols we print (… — are 1 em; Δ ± are less)
constexpr double kSafety = 1.04;
constexpr double kBold = 1.12;  // DejaVu Sans Bold is at most ~11% wider than Book for Latin text

constexpr double kTickPx = 11, kAxisPx = 13, kTitlePx = 14, kLegendPx = 12, kLabelPx = 11;

struct Axis {
  Ticks ticks;
  bool log = false;
  double p0 = 0, p1 = 1;  // pixel positions of ticks.lo and ticks.hi
  double operator()(double v) const {
    const double a = log ? std::log10(ticks.lo) : ticks.lo, b = log ? std::log10(ticks.hi) : ticks.hi;
    const double t = ((log ? std::log10(std::max(v, ticks.lo)) : v) - a) / (b - a);
    return p0 + t * (p1 - p0);
  }
};

// A linear axis over the data and 4% on each side, with round ticks inside (matplotlib's margins).
Ticks PaddedTicks(double lo, double hi, int target) {
  const double pad = hi > lo ? 0.04 * (hi - lo) : std::max(0.5, 0.1 * std::fabs(lo));
  return NiceTicks(lo - pad, hi + pad, target, false);
}

bool Usable(const Point& q, bool log_x, bool log_y) {
  return std::isfinite(q.x) && std::isfinite(q.y) && (!log_x || q.x > 0) && (!log_y || q.y > 0);
}

// Data range of every usable point (error bars included), as [lo, hi].
std::pair<double, double> Range(const Plot& p, bool y) {
  double lo = INFINITY, hi = -INFINITY;
  const bool lg = y ? p.log_y : p.log_x;
  auto take = [&](double v) {
    if (std::isfinite(v) && (!lg || v > 0)) { lo = std::min(lo, v); hi = std::max(hi, v); }
  };
  for (const auto& s : p.series)
    for (const auto& q : s.pts) {
      if (!s.step && !Usable(q, p.log_x, p.log_y)) continue;
      take(y ? q.y : q.x);
      if (y && s.has_err) { take(q.lo); take(q.hi); }
    }
  for (const auto& b : p.bands)
    if (!y) { take(b.x0); take(b.x1); }
  if (y && p.zero_line && !p.log_y) take(0.0);
  return {lo, hi};
}

std::string MarkerPath(Marker m, double x, double y, double r) {
  switch (m) {
    case Marker::kCircle:
      return fmt::format("M {:.1f} {:.1f} a {r} {r} 0 1 0 {d} 0 a {r} {r} 0 1 0 -{d} 0", x - r, y,
                         fmt::arg("r", r), fmt::arg("d", 2 * r));
    case Marker::kSquare:
      return fmt::format("M {:.1f} {:.1f} h {d} v {d} h -{d} z", x - 0.85 * r, y - 0.85 * r, fmt::arg("d", 1.7 * r));
    case Marker::kTriangle:
      return fmt::format("M {:.1f} {:.1f} L {:.1f} {:.1f} L {:.1f} {:.1f} z", x, y - 1.1 * r, x + r, y + 0.8 * r,
                         x - r, y + 0.8 * r);
    case Marker::kTriangleDown:
      return fmt::format("M {:.1f} {:.1f} L {:.1f} {:.1f} L {:.1f} {:.1f} z", x, y + 1.1 * r, x + r, y - 0.8 * r,
                         x - r, y - 0.8 * r);
    case Marker::kDiamond:
      return fmt::format("M {:.1f} {:.1f} L {:.1f} {:.1f} L {:.1f} {:.1f} L {:.1f} {:.1f} z", x, y - 1.2 * r,
                         x + r, y, x, y + 1.2 * r, x - r, y);
    case Marker::kCross:
      return fmt::format("M {:.1f} {:.1f} l {d} {d} m 0 -{d} l -{d} {d}", x - r, y - r, fmt::arg("d", 2 * r));
  }
  return "";
}

std::string MarkerSvg(Marker m, double x, double y, double r, const std::string& color) {
  const bool stroke_only = m == Marker::kCross;
  return fmt::format("<path d=\"{}\" fill=\"{}\" fill-opacity=\"0.85\" stroke=\"{}\" stroke-width=\"{}\"/>",
                     MarkerPath(m, x, y, r), stroke_only ? "none" : color, stroke_only ? color : "white",
                     stroke_only ? 2 : 0.8);
}

std::string Text(double x, double y, double px, const std::string& anchor, const std::string& s,
                 const std::string& extra = "") {
  return fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" text-anchor=\"{}\"{}>{}</text>\n", x, y, px,
                     anchor, extra, Esc(s));
}

double Overlap(const Box& a, const Box& b) {
  const double w = std::min(a.x1, b.x1) - std::max(a.x0, b.x0), h = std::min(a.y1, b.y1) - std::max(a.y0, b.y0);
  return w > 0 && h > 0 ? w * h : 0;
}

struct Layout {
  double W, H, L, R, T, B;
  double legend_w = 0;
};

Layout ComputeLayout(const Plot& p, const Ticks& xt, const Ticks& yt) {
  Layout l{p.width, p.height, 0, 0, 0, 0};
  double ytw = 0;
  for (const auto& s : yt.labels) ytw = std::max(ytw, TextWidth(s, kTickPx));
  l.L = 8 + kAxisPx + 8 + ytw + 6;
  l.T = p.title.empty() ? 12 : 12 + kTitlePx + 8;
  l.B = 6 + kTickPx + 10 + kAxisPx + 8;
  for (const auto& e : p.legend)
    l.legend_w = std::max(l.legend_w, e.heading ? kBold * TextWidth(e.text, kLegendPx) : TextWidth(e.text, kLegendPx) + 22);
  l.W = std::min(std::max(l.W, 1100.0), l.W + std::max(0.0, l.legend_w - 200));  // a long legend widens the plot
  l.legend_w = std::min(l.legend_w, 0.4 * l.W);
  const double last_x = xt.labels.empty() ? 0 : TextWidth(xt.labels.back(), kTickPx) / 2 + 4;
  l.R = p.legend.empty() ? std::max(16.0, last_x) : std::max(l.legend_w + 24, last_x);
  l.H = std::max(l.H, l.T + 18.0 * p.legend.size() + l.B);
  return l;
}

std::string AxesSvg(const Plot& p, const Layout& l, const Axis& ax, const Axis& ay) {
  std::string s = fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
                              "stroke=\"#888\"/>\n", l.L, l.T, l.W - l.L - l.R, l.H - l.T - l.B);
  for (size_t i = 0; i < ay.ticks.values.size(); ++i) {
    const double y = ay(ay.ticks.values[i]);
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e6e6e6\"/>\n", l.L, y,
                     l.W - l.R, y);
    s += Text(l.L - 5, y + 4, kTickPx, "end", ay.ticks.labels[i]);
  }
  for (size_t i = 0; i < ax.ticks.values.size(); ++i) {
    const double x = ax(ax.ticks.values[i]);
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e6e6e6\"/>\n", x, l.T, x,
                     l.H - l.B);
    s += Text(x, l.H - l.B + 6 + kTickPx, kTickPx, "middle", ax.ticks.labels[i]);
  }
  if (p.zero_line && !p.log_y && ay.ticks.lo < 0 && ay.ticks.hi > 0)
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#555\"/>\n", l.L, ay(0.0),
                     l.W - l.R, ay(0.0));
  const double pw = l.W - l.L - l.R, ph = l.H - l.T - l.B;
  s += Text(l.L + pw / 2, l.H - 8, kAxisPx, "middle", FitText(p.xlabel, kAxisPx, pw));
  const double cy = l.T + ph / 2;
  s += Text(8 + kAxisPx, cy, kAxisPx, "middle", FitText(p.ylabel, kAxisPx, ph),
            fmt::format(" transform=\"rotate(-90 {:.1f} {:.1f})\"", 8 + kAxisPx, cy));
  if (!p.title.empty())
    s += Text(l.W / 2, 12 + kTitlePx, kTitlePx, "middle", FitText(p.title, kTitlePx, (l.W - 16) / kBold),
              " font-weight=\"bold\"");
  return s;
}

std::string LegendSvg(const Plot& p, const Layout& l) {
  std::string s = "<g class=\"legend\">\n";
  const double x = l.W - l.R + 14;
  double y = l.T + 4;
  for (const auto& e : p.legend) {
    y += 18;
    if (e.heading) {
      s += Text(x, y - 4, kLegendPx, "start", FitText(e.text, kLegendPx, l.legend_w / kBold), " font-weight=\"bold\"");
      continue;
    }
    if (e.line)
      s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"/>",
                       x, y - 8, x + 14, y - 8, e.color);
    else
      s += MarkerSvg(e.marker, x + 7, y - 8, 4.5, e.color);
    s += Text(x + 22, y - 4, kLegendPx, "start", FitTextMiddle(e.text, kLegendPx, l.legend_w - 22));
  }
  return s + "</g>\n";
}

std::vector<std::pair<double, double>> LinePixels(const Series& s, const Axis& ax, const Axis& ay, bool log_x, bool log_y);

std::string SeriesSvg(const Series& s, const Axis& ax, const Axis& ay, bool log_x, bool log_y) {
  std::string out;
  if ((s.line || s.step) && !s.pts.empty()) {
    std::string d;
    for (const auto& [X, Y] : LinePixels(s, ax, ay, log_x, log_y))
      d += fmt::format("{} {:.1f} {:.1f}", d.empty() ? "M" : " L", X, Y);
    out += fmt::format("<path class=\"series-line\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}>"
                       "<title>{}</title></path>\n",
                       d, s.color, s.width, s.dash.empty() ? "" : " stroke-dasharray=\"" + s.dash + "\"", Esc(s.name));
  }
  return out;
}

std::string PointsSvg(const Plot& p, const Series& s, size_t si, const Axis& ax, const Axis& ay) {
  std::string out;
  for (size_t k = 0; k < s.pts.size(); ++k) {
    const auto& q = s.pts[k];
    if (!Usable(q, p.log_x, p.log_y)) continue;
    const double X = ax(q.x), Y = ay(q.y);
    out += fmt::format("<g class=\"{}\" id=\"{}-s{}p{}\"{}{}>", s.cls, p.id, si, k, q.attrs.empty() ? "" : " ",
                       q.attrs);
    if (s.has_err && std::isfinite(q.lo) && std::isfinite(q.hi)) {
      const double y0 = ay(std::max(q.lo, p.log_y ? ay.ticks.lo : -INFINITY)), y1 = ay(q.hi);
      out += fmt::format("<path d=\"M {:.1f} {:.1f} V {:.1f} M {:.1f} {:.1f} h 6 M {:.1f} {:.1f} h 6\" stroke=\"{}\" "
                         "stroke-width=\"1.2\"/>",
                         X, y0, y1, X - 3, y0, X - 3, y1, s.color);
    }
    out += MarkerSvg(s.marker, X, Y, 4.5, s.color);
    if (!q.tip.empty()) out += "<title>" + Esc(q.tip) + "</title>";
    out += "</g>\n";
  }
  return out;
}

// Pixel vertices of a series' line (a step line: the corner of each step as well).
std::vector<std::pair<double, double>> LinePixels(const Series& s, const Axis& ax, const Axis& ay, bool log_x, bool log_y) {
  std::vector<std::pair<double, double>> v;
  for (const auto& q : s.pts) {
    if (!s.step && !Usable(q, log_x, log_y)) continue;
    const double X = ax(q.x), Y = ay(log_y && !(q.y > 0) ? ay.ticks.lo : q.y);
    if (s.step && !v.empty()) v.push_back({X, v.back().second});
    v.push_back({X, Y});
  }
  return v;
}

// Small boxes every 4 px along the drawn lines, so labels keep off them where they can.
void AddLineObstacles(const Plot& p, const Axis& ax, const Axis& ay, std::vector<Box>* out) {
  for (const auto& s : p.series) {
    if (!s.line && !s.step) continue;
    const auto v = LinePixels(s, ax, ay, p.log_x, p.log_y);
    for (size_t i = 1; i < v.size(); ++i) {
      const double dx = v[i].first - v[i - 1].first, dy = v[i].second - v[i - 1].second;
      const int n = int(std::hypot(dx, dy) / 4) + 1;
      for (int k = 0; k <= n; ++k) {
        const double x = v[i - 1].first + dx * k / n, y = v[i - 1].second + dy * k / n;
        out->push_back({x - 1.5, y - 1.5, x + 1.5, y + 1.5});
      }
    }
  }
}

// Direct labels of every point with a non-empty label, placed without overlaps.
std::string LabelsSvg(const Plot& p, const Layout& l, const Axis& ax, const Axis& ay) {
  std::vector<std::pair<double, double>> anchors, sizes;
  std::vector<std::string> texts, ids;
  std::vector<Box> obstacles;
  const double pw = l.W - l.L - l.R;
  for (size_t si = 0; si < p.series.size(); ++si) {
    const auto& s = p.series[si];
    if (!s.points) continue;
    for (size_t k = 0; k < s.pts.size(); ++k) {
      const auto& q = s.pts[k];
      if (!Usable(q, p.log_x, p.log_y)) continue;
      const double X = ax(q.x), Y = ay(q.y);
      obstacles.push_back({X - 5, Y - 5, X + 5, Y + 5});
      if (q.label.empty()) continue;
      texts.push_back(FitTextMiddle(q.label, kLabelPx, pw / 2));
      ids.push_back(fmt::format("{}-s{}p{}", p.id, si, k));
      anchors.push_back({X, Y});
      sizes.push_back({TextWidth(texts.back(), kLabelPx) + 2, kLabelPx + 3});
    }
  }
  AddLineObstacles(p, ax, ay, &obstacles);
  const auto placed = PlaceLabels(anchors, sizes, obstacles, {l.L + 1, l.T + 1, l.W - l.R - 1, l.H - l.B - 1}, 5);
  std::string out = "<g class=\"labels\">\n";
  for (size_t i = 0; i < placed.size(); ++i) {
    const Box& b = placed[i].box;
    if (placed[i].leader) {
      const double cx = std::clamp(anchors[i].first, b.x0, b.x1), cy = std::clamp(anchors[i].second, b.y0, b.y1);
      out += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#999\"/>", anchors[i].first,
                         anchors[i].second, cx, cy);
    }
    out += Text(b.x0 + 1, b.y1 - 3.5, kLabelPx, "start", texts[i], " class=\"plabel\" data-for=\"" + ids[i] + "\"");
  }
  return out + "</g>\n";
}

}  // namespace

std::string Esc(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

double TextWidth(std::string_view s, double px) {
  double em = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 32 && c < 127) em += kAdvance[c - 32] / 1000.0;
    else if ((c & 0xC0) != 0x80) em += kNonAsciiEm;  // first byte of a UTF-8 sequence (or a control)
  }
  return em * px * kSafety;
}

std::string FitText(const std::string& s, double px, double max_w) {
  if (TextWidth(s, px) <= max_w) return s;
  const double room = max_w - TextWidth("…", px);
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    size_t j = i + 1;
    while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;  // whole UTF-8 character
    if (TextWidth(std::string_view(s).substr(0, j), px) > room) break;
    n = i = j;
  }
  return s.substr(0, n) + "…";
}

std::string FitTextMiddle(const std::string& s, double px, double max_w) {
  if (TextWidth(s, px) <= max_w) return s;
  std::vector<size_t> starts;  // byte offset of each UTF-8 character
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  const double half = (max_w - TextWidth(" … ", px)) / 2;
  size_t head = 0, tail = starts.size();  // keep characters [0, head) and [tail, n)
  while (head < starts.size() && TextWidth(s.substr(0, head + 1 < starts.size() ? starts[head + 1] : s.size()), px) <= half)
    ++head;
  while (tail > head && TextWidth(s.substr(starts[tail - 1]), px) <= half) --tail;
  if (head == 0) return FitText(s, px, max_w);
  return s.substr(0, head < starts.size() ? starts[head] : s.size()) + " … " +
         (tail < starts.size() ? s.substr(starts[tail]) : std::string());
}

std::string TickLabel(double v, double step) {
  if (std::fabs(v) < 1e-12 * std::max(1.0, std::fabs(step))) return "0";
  const double a = std::fabs(v);
  const int dec = std::max(0, -int(std::floor(std::log10(step) + 1e-9)));
  if (a < 1e6 && dec <= 4) return fmt::format("{:.{}f}", v, dec);
  const int sig = std::max(1, int(std::floor(std::log10(a) + 1e-9)) - int(std::floor(std::log10(step) + 1e-9)) + 1);
  std::string s = fmt::format("{:.{}e}", v, sig - 1);  // 2.5e-05 -> 2.5e-5
  const size_t e = s.find('e');
  std::string mant = s.substr(0, e), ex = s.substr(e + 1);
  const bool neg = ex[0] == '-';
  ex = ex.substr(1);
  while (ex.size() > 1 && ex[0] == '0') ex.erase(0, 1);
  return mant + "e" + (neg ? "-" : "") + ex;
}

Ticks NiceTicks(double lo, double hi, int target, bool widen) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double d = lo == 0 ? 1 : 0.1 * std::fabs(lo);
    lo -= d, hi += d;
  }
  const double raw = (hi - lo) / std::max(1, target), mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag, step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
  const long k0 = widen ? long(std::floor(lo / step + 1e-9)) : long(std::ceil(lo / step - 1e-9));
  const long k1 = widen ? long(std::ceil(hi / step - 1e-9)) : long(std::floor(hi / step + 1e-9));
  Ticks t;
  t.lo = widen ? k0 * step : lo;
  t.hi = widen ? k1 * step : hi;
  for (long k = k0; k <= k1; ++k) {
    const double v = k * step;
    t.values.push_back(v);
    t.labels.push_back(TickLabel(v, step));
  }
  return t;
}

Ticks LogTicks(double lo, double hi) {
  if (!(lo > 0) || !std::isfinite(lo)) lo = 1e-6;
  if (!(hi > lo) || !std::isfinite(hi)) hi = lo * 10;
  const double pad = std::max(0.04 * std::log10(hi / lo), 0.02);  // decades of margin at each end
  Ticks t;
  t.lo = lo / std::pow(10.0, pad);
  t.hi = hi * std::pow(10.0, pad);
  const int k0 = int(std::floor(std::log10(t.lo))), k1 = int(std::ceil(std::log10(t.hi)));
  const std::vector<double> mant = (k1 - k0 <= 3) ? std::vector<double>{1, 2, 5} : std::vector<double>{1};
  const int every = std::max(1, (k1 - k0 + 7) / 8);  // at most ~8 decade labels
  for (int k = k0; k <= k1; ++k)
    for (double m : mant) {
      const double v = m * std::pow(10.0, k);
      if (v < t.lo || v > t.hi || (mant.size() == 1 && (k - k0) % every != 0)) continue;
      t.values.push_back(v);
      t.labels.push_back(TickLabel(v, std::pow(10.0, k)));
    }
  if (t.values.size() < 2) {  // less than a factor 2 between the ends: round values on a linear grid
    const Ticks lin = NiceTicks(lo, hi, 3);
    t.values.clear(), t.labels.clear();
    for (size_t i = 0; i < lin.values.size(); ++i)
      if (lin.values[i] >= t.lo && lin.values[i] <= t.hi) t.values.push_back(lin.values[i]), t.labels.push_back(lin.labels[i]);
  }
  return t;
}

std::string PaletteColor(size_t i) {
  static const char* kColors[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
                                  "#56b4e9", "#000000", "#f0e442", "#999999", "#7f3c8d"};
  return kColors[i % (sizeof kColors / sizeof kColors[0])];
}

std::vector<Placed> PlaceLabels(const std::vector<std::pair<double, double>>& anchors,
                                const std::vector<std::pair<double, double>>& sizes,
                                const std::vector<Box>& obstacles, const Box& area, double r) {
  std::vector<Placed> out;
  std::vector<Box> taken;
  for (size_t i = 0; i < anchors.size(); ++i) {
    const auto [ax, ay] = anchors[i];
    const auto [w, h] = sizes[i];
    Placed best{{0, 0, 0, 0}, false};
    double best_cost = INFINITY;
    for (int ring = 0; ring < 6 && best_cost > 0; ++ring) {
      const double d = r + 2 + ring * (h + 2);
      // (dx, dy) of the box's top-left corner: right, left, above, below, then the diagonals.
      const std::pair<double, double> cand[] = {
          {ax + d, ay - h / 2},     {ax - d - w, ay - h / 2}, {ax - w / 2, ay - d - h}, {ax - w / 2, ay + d},
          {ax + d, ay - d - h / 2}, {ax + d, ay + d - h / 2}, {ax - d - w, ay - d - h / 2},
          {ax - d - w, ay + d - h / 2}};
      for (const auto& [x0, y0] : cand) {
        Box b{x0, y0, x0 + w, y0 + h};
        if (b.x0 < area.x0 || b.y0 < area.y0 || b.x1 > area.x1 || b.y1 > area.y1) continue;
        double cost = 0;
        for (const Box& t : taken) cost += Overlap(b, t);
        for (const Box& o : obstacles) cost += Overlap(b, o);
        if (cost < best_cost) { best_cost = cost; best = {b, ring > 0}; }
        if (cost == 0) break;
      }
    }
    if (!std::isfinite(best_cost)) {  // wider than the area: pin it inside, at the anchor's height
      const double x0 = std::clamp(ax - w / 2, area.x0, std::max(area.x0, area.x1 - w));
      const double y0 = std::clamp(ay - h / 2, area.y0, std::max(area.y0, area.y1 - h));
      best = {{x0, y0, x0 + w, y0 + h}, true};
    }
    taken.push_back(best.box);
    out.push_back(best);
  }
  return out;
}

std::string Render(const Plot& p, double* width, double* height) {
  const auto [x_lo, x_hi] = Range(p, false);
  const auto [y_lo, y_hi] = Range(p, true);
  const bool empty = !(x_lo <= x_hi) || !(y_lo <= y_hi);
  Axis ax, ay;
  ax.log = p.log_x;
  ay.log = p.log_y;
  ax.ticks = empty ? NiceTicks(0, 1) : p.log_x ? LogTicks(x_lo, x_hi) : PaddedTicks(x_lo, x_hi, 6);
  ay.ticks = empty ? NiceTicks(0, 1) : p.log_y ? LogTicks(y_lo, y_hi) : PaddedTicks(y_lo, y_hi, 5);
  const Layout l = ComputeLayout(p, ax.ticks, ay.ticks);
  if (width) *width = l.W;
  if (height) *height = l.H;
  ax.p0 = l.L, ax.p1 = l.W - l.R;
  ay.p0 = l.H - l.B, ay.p1 = l.T;
  std::string s = fmt::format(
      "<svg id=\"{}\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "viewBox=\"0 0 {:.0f} {:.0f}\" font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"white\"/>\n",
      Esc(p.id), l.W, l.H, l.W, l.H, l.W, l.H);
  for (const auto& b : p.bands)
    s += fmt::format("<rect class=\"band\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" "
                     "fill-opacity=\"0.6\"><title>{}</title></rect>\n",
                     ax(b.x0), l.T, std::max(1.0, ax(b.x1) - ax(b.x0)), l.H - l.T - l.B, b.color, Esc(b.tip));
  s += AxesSvg(p, l, ax, ay);
  if (empty) s += Text(l.L + 10, l.T + 24, kAxisPx, "start", "no data to plot");
  for (const auto& se : p.series) s += SeriesSvg(se, ax, ay, p.log_x, p.log_y);
  for (size_t i = 0; i < p.series.size(); ++i)
    if (p.series[i].points) s += PointsSvg(p, p.series[i], i, ax, ay);
  if (!empty) s += LabelsSvg(p, l, ax, ay);
  if (!p.legend.empty()) s += LegendSvg(p, l);
  return s + "</svg>\n";
}

}  // namespace ql::svg
