// The report's sensitivity section, read from the store alone: the units of a `quantlab sensitivity`
// experiment (cells with no grid weights and one override) as a per-layer bar chart of ΔKLD per scheme,
// a unit × scheme heatmap and a sortable table. Not the scan itself (harness/sweep/sensitivity.h).
#pragma once

#include <string>
#include <vector>

#include "kernels/status.h"
#include "results/report.h"
#include "results/store.h"

namespace ql {

// One measured unit of a scan.
struct SensitivityUnitRow {
  std::string unit, scheme;  // "model.layers.3.mlp.down_proj" / "layer 3" / "down_proj"; canonical scheme
  int layer = -1;            // layer of the unit's first module; -1 for lm_head or a type unit
  double kld = 0, kld_se = 0, dppl = 0, dppl_lo = 0, dppl_hi = 0, top1 = 0, bits_per_weight = 0;
  int eval_windows = 0;      // 0 = not recorded
};

// The experiment's sensitivity units in plan order; empty when it has none.
StatusOr<std::vector<SensitivityUnitRow>> ReadSensitivityUnits(ResultStore& store, const std::string& experiment_id);

// "" when the experiment has no sensitivity units; else the HTML of its section, with its figures
// (named "<slug>-sens-layers", "<slug>-sens-heatmap") appended to `figures`.
StatusOr<std::string> SensitivitySection(ResultStore& store, const std::string& experiment_id,
                                         const std::string& slug, std::vector<ReportFigure>* figures);

// "" unless the experiment is a `quantlab search`'s verification cells ("<name>-search"); else a section
// with one figure ("<slug>-frontier"): those cells against every uniform weight-only cell of the store on
// the same model, text and protocol, mean KLD (log) by whole-model bits per weight.
StatusOr<std::string> SearchFrontierSection(ResultStore& store, const std::string& experiment_id,
                                            const std::string& experiment_name, const std::string& slug,
                                            std::vector<ReportFigure>* figures);

}  // namespace ql
