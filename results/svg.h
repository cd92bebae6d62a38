// Drawing plots as self-contained SVG for the report: round axis ticks (1-2-5 steps, decades on log
// axes), text widths estimated from DejaVu Sans metrics so every label gets a margin that holds it,
// a legend, error bars and direct labels placed without overlaps. Not a plotting library: only the
// scatter / line / step plots the report draws.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ql::svg {

std::string Esc(std::string_view s);  // XML/HTML text and attribute escaping

// Advance width in px of `s` drawn at `px` in DejaVu Sans (Chromium's default sans-serif on Debian),
// rounded up by 4% so a narrower fallback font (Arial, Helvetica, Liberation) also fits.
double TextWidth(std::string_view s, double px);
// `s`, or its longest prefix plus "…" whose width at `px` is at most max_w.
std::string FitText(const std::string& s, double px, double max_w);
// The same, cut in the middle ("int8:channel A=int8:token … −lm_head"): the end of a label is often
// what tells it from its neighbours.
std::string FitTextMiddle(const std::string& s, double px, double max_w);

struct Ticks {
  std::vector<double> values;       // in data units, ascending, all inside [lo, hi]
  std::vector<std::string> labels;  // as printed
  double lo = 0, hi = 1;            // the axis range (linear: widened to a tick multiple)
};
// Linear axis over [lo, hi]: step 1, 2 or 5 × 10^k giving about `target` intervals. widen: the range
// becomes the enclosing multiples of the step; else it stays [lo, hi] with the multiples inside it.
Ticks NiceTicks(double lo, double hi, int target = 5, bool widen = true);
// Log axis over [lo, hi] (both > 0): the range padded by 4% of its decades at each end; ticks at
// 1·10^k inside it (plus 2·10^k and 5·10^k when it spans at most 3 decades; round linear-grid values
// when that leaves fewer than two).
Ticks LogTicks(double lo, double hi);
// A tick label: the shortest of fixed / exponent notation that shows `step`'s precision.
std::string TickLabel(double v, double step);

enum class Marker { kCircle, kSquare, kTriangle, kDiamond, kCross, kTriangleDown };
inline constexpr int kMarkerCount = 6;
// A distinct colour for index i (colour-blind-friendly palette, Okabe & Ito 2008, then greys).
std::string PaletteColor(size_t i);

struct Point {
  double x = 0, y = 0;
  double lo = 0, hi = 0;   // error bar in y (drawn when the series has_err)
  std::string tip;         // hover text (<title>)
  std::string attrs;       // raw extra attributes for the point's <g>, e.g. data-algo="rtn"
  std::string label;       // direct label; "" = none
};

struct Series {
  std::string name;        // for tooltips on lines
  std::string color = "#0072b2";
  Marker marker = Marker::kCircle;
  bool points = true;      // draw markers
  bool line = false;       // join the points
  bool step = false;       // join as a histogram step line (x = bin edges, n+1 for n counts)
  bool has_err = false;
  double width = 1.5;      // line width
  std::string dash;        // stroke-dasharray, "" = solid
  std::string cls = "pt";  // class of each point's <g>
  std::vector<Point> pts;
};

struct LegendEntry {
  std::string text;
  std::string color = "#333";
  Marker marker = Marker::kCircle;
  bool line = false;       // a line swatch instead of a marker
  bool heading = false;    // a group title ("colour: algorithm")
};

struct Band {              // a shaded x-range, e.g. a worst span of the text
  double x0 = 0, x1 = 0;
  std::string color = "#f2c0c0", tip;
};

struct Plot {
  std::string id, title, xlabel, ylabel;
  bool log_x = false, log_y = false;
  double width = 760, height = 420;  // the whole SVG, legend included (widened, up to 1100, for a long legend)
  std::vector<Series> series;
  std::vector<LegendEntry> legend;
  std::vector<Band> bands;
  bool zero_line = false;            // a horizontal rule at y = 0 (linear y)
};

// The plot as one <svg> element (xmlns set, fonts given inline, so it also stands alone as a file).
// Points outside a log axis (<= 0) are left out. Labelled points get a label placed by PlaceLabels.
std::string Render(const Plot& p, double* width = nullptr, double* height = nullptr);  // final size out

// Label placement: boxes (x0, y0, x1, y1) in px. For each anchor (a marker of radius r at ax, ay)
// and its label size (w, h), picks the first of a ring of candidate positions (right, left, above,
// below, diagonals, then farther out) that stays inside `area`, overlaps no placed label and no
// marker in `obstacles`; when none does, the candidate with the least overlap. Deterministic.
struct Box {
  double x0, y0, x1, y1;
};
struct Placed {
  Box box;
  bool leader;  // far from its anchor: draw a leader line
};
std::vector<Placed> PlaceLabels(const std::vector<std::pair<double, double>>& anchors,
                                const std::vector<std::pair<double, double>>& sizes,
                                const std::vector<Box>& obstacles, const Box& area, double r);

}  // namespace ql::svg
