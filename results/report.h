// `quantlab report`: one self-contained HTML page (inline SVG and one small inline script, nothing
// downloaded) built from a results directory: an index, then one section per experiment with its
// file, baseline and code version; ΔPPL and KLD against bits/weight with 95% intervals and labelled
// Pareto fronts; per-layer output error; weight-error histograms; the per-token NLL difference along
// the text; the sortable, filterable cell table. Every plot is also a standalone SVG (--figures).
#pragma once

#include <string>
#include <vector>

#include "kernels/status.h"
#include "results/store.h"

namespace ql {

struct ReportOptions {
  std::string experiment_id;  // "" = every experiment in the store
  std::string title = "quantlab report";
};

struct ReportFigure {
  std::string name;   // file stem: "<experiment>-<plot>", e.g. "ints-dppl"
  std::string title;
  std::string svg;    // a complete <svg> element with xmlns
  double width = 0, height = 0;
};

struct Report {
  std::string html;
  std::vector<ReportFigure> figures;
};

StatusOr<Report> RenderReport(ResultStore& store, const ReportOptions& opt);
StatusOr<std::string> RenderReportHtml(ResultStore& store, const ReportOptions& opt);

// Writes DIR/<name>.svg for every figure (DIR is created), and DIR/<name>.png rendered by
// `chromium` (a path; "" = SVG only). Returns the files written.
StatusOr<std::vector<std::string>> WriteFigures(const Report& r, const std::string& dir, const std::string& chromium);
// The first of chromium, chromium-browser, google-chrome found on PATH; "" when none is.
std::string FindChromium();

// Indices of the points on the lower-left Pareto front (minimise both x and y), sorted by x.
std::vector<size_t> ParetoFront(const std::vector<double>& x, const std::vector<double>& y);

// Format family of a canonical weight scheme, for colours/markers/filters: INT, FP8, FP6, FP4, MX,
// NVFP4, NF4, GGUF, FP16 (fp16/bf16), MIX (a per-module mix), none ("").
std::string FormatFamily(const std::string& weight_scheme);

// out[i] = mean of v[i .. i+window) for i in [0, n-window] (n-window+1 values; one value, the mean
// of all, when n < window).
std::vector<double> RollingMean(const std::vector<double>& v, size_t window);
// Start indices of the k highest windows of `rolling` (as RollingMean returns), highest first, no two
// closer than `window` (so the spans [start, start+window) do not overlap).
std::vector<size_t> WorstSpans(const std::vector<double>& rolling, size_t window, size_t k);

}  // namespace ql
