// `quantlab report`: one self-contained HTML page (inline SVG, no scripts, no downloads) built from a
// results directory: the comparison table, Pareto fronts (bits/weight vs ΔPPL and vs KLD), a
// per-layer sensitivity heatmap, a per-format weight-error summary and the failed cells.
#pragma once

#include <string>

#include "kernels/status.h"
#include "results/store.h"

namespace ql {

struct ReportOptions {
  std::string experiment_id;  // "" = every experiment in the store
  std::string title = "quantlab report";
};

StatusOr<std::string> RenderReportHtml(ResultStore& store, const ReportOptions& opt);

// Indices of the points on the lower-left Pareto front (minimise both x and y), sorted by x.
std::vector<size_t> ParetoFront(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace ql
