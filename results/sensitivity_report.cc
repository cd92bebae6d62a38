// The report's sensitivity section (see sensitivity_report.h).
#include "results/sensitivity_report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "results/svg.h"

namespace ql {
namespace {

using svg::Esc;

std::string Quoted(const std::string& s) {
  std::string o = "'";
  for (char ch : s) o += ch == '\'' ? std::string("''") : std::string(1, ch);
  return o + "'";
}

double Num(const SqlValue& v) {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v)) return double(*i);
  return std::nan("");
}

// "model.layers.12.mlp.up_proj" -> 12; anything else -1.
int LayerOf(const std::string& module) {
  const std::string p = "model.layers.";
  if (module.rfind(p, 0) != 0) return -1;
  return std::atoi(module.c_str() + p.size());
}

std::string SvgOpen(const std::string& id, double w, double h) {
  return fmt::format("<svg id=\"{}\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
                     "viewBox=\"0 0 {:.0f} {:.0f}\" font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\">\n"
                     "<rect width=\"{:.0f}\" height=\"{:.0f}\" fill=\"white\"/>\n",
                     Esc(id), w, h, w, h, w, h);
}

std::vector<std::string> Schemes(const std::vector<SensitivityUnitRow>& rows) {
  std::vector<std::string> s;
  for (const auto& r : rows)
    if (std::find(s.begin(), s.end(), r.scheme) == s.end()) s.push_back(r.scheme);
  return s;
}

// Σ KLD of each layer's units per scheme as grouped bars on a log axis (the units of one layer add up
// when they are modules; a layer unit is its layer).
std::string LayerBars(const std::vector<SensitivityUnitRow>& rows, const std::string& id) {
  const std::vector<std::string> schemes = Schemes(rows);
  std::map<std::pair<int, size_t>, double> sum;  // (layer, scheme) -> Σ kld
  int n_layers = 0;
  double lo = INFINITY, hi = 0;
  for (const auto& r : rows) {
    if (r.layer < 0) continue;
    const size_t si = size_t(std::find(schemes.begin(), schemes.end(), r.scheme) - schemes.begin());
    sum[{r.layer, si}] += std::max(0.0, r.kld);
    n_layers = std::max(n_layers, r.layer + 1);
  }
  for (const auto& [k, v] : sum)
    if (v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  if (n_layers == 0 || !(hi > 0)) return "";
  const svg::Ticks t = svg::LogTicks(lo, hi);
  const double L = 70, T = 30, R = 150, B = 46, gw = std::clamp(900.0 / n_layers, 14.0, 80.0), H = 300;
  const double W = L + gw * n_layers + R, bw = (gw - 4) / double(schemes.size());
  auto y = [&](double v) { return T + H * (1 - (std::log10(v) - std::log10(t.lo)) / (std::log10(t.hi) - std::log10(t.lo))); };
  std::string s = SvgOpen(id, W, T + H + B);
  s += fmt::format("<text x=\"{:.0f}\" y=\"16\" font-size=\"12\">ΔKLD of each layer's units, per scheme (log; sum over "
                   "the layer's units)</text>\n", L);
  for (size_t i = 0; i < t.values.size(); ++i)
    s += fmt::format("<line x1=\"{:.0f}\" x2=\"{:.0f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/><text x=\"{:.0f}\" "
                     "y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\">{}</text>\n",
                     L, L + gw * n_layers, y(t.values[i]), y(t.values[i]), L - 4, y(t.values[i]) + 3, Esc(t.labels[i]));
  for (int l = 0; l < n_layers; ++l) {
    if (n_layers <= 32 || l % 2 == 0)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.0f}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n",
                       L + gw * (l + 0.5), T + H + 14, l);
    for (size_t si = 0; si < schemes.size(); ++si) {
      auto it = sum.find({l, si});
      if (it == sum.end() || !(it->second > 0)) continue;
      const double top = y(it->second);
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>block {} {}: Σ "
                       "ΔKLD {:.6f}</title></rect>\n",
                       L + gw * l + 2 + bw * si, top, std::max(1.0, bw - 1), T + H - top, svg::PaletteColor(si), l,
                       Esc(schemes[si]), it->second);
    }
  }
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.0f}\" font-size=\"11\" text-anchor=\"middle\">decoder block</text>\n",
                   L + gw * n_layers / 2, T + H + 34);
  for (size_t si = 0; si < schemes.size(); ++si)
    s += fmt::format("<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0f}\" y=\"{:.0f}\" "
                     "font-size=\"11\">{}</text>\n",
                     L + gw * n_layers + 12, T + 16 * si, svg::PaletteColor(si), L + gw * n_layers + 26, T + 16 * si + 9,
                     Esc(svg::FitText(schemes[si], 11, R - 30)));
  return s + "</svg>\n";
}

// Units (rows) × schemes (columns), colour log10 ΔKLD, green (least) to red (most).
std::string UnitHeatmap(const std::vector<SensitivityUnitRow>& rows, const std::string& id) {
  const std::vector<std::string> schemes = Schemes(rows);
  std::vector<std::string> units;
  std::map<std::pair<std::string, std::string>, const SensitivityUnitRow*> at;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : rows) {
    if (std::find(units.begin(), units.end(), r.unit) == units.end()) units.push_back(r.unit);
    at[{r.unit, r.scheme}] = &r;
    if (r.kld > 0) lo = std::min(lo, std::log10(r.kld)), hi = std::max(hi, std::log10(r.kld));
  }
  if (!(hi > lo)) hi = lo + 1;
  double lw = 0;
  for (const auto& u : units) lw = std::max(lw, svg::TextWidth(svg::FitTextMiddle(u, 11, 300), 11));
  const double cw = 90, ch = 14, L = lw + 14, T = 40;
  const std::string legend = fmt::format("colour: log10 ΔKLD, green {:.1e} … red {:.1e}; grey: not measured",
                                         std::pow(10.0, lo), std::pow(10.0, hi));
  const double W = std::max(L + cw * double(schemes.size()) + 16, svg::TextWidth(legend, 11) + 16);
  const double H = T + ch * double(units.size()) + 28;
  std::string s = SvgOpen(id, W, H);
  for (size_t j = 0; j < schemes.size(); ++j)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.0f}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
                     L + cw * (j + 0.5), T - 8, Esc(svg::FitText(schemes[j], 11, cw - 4)));
  for (size_t i = 0; i < units.size(); ++i) {
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>", L - 6,
                     T + ch * (i + 0.8), Esc(svg::FitTextMiddle(units[i], 11, 300)));
    for (size_t j = 0; j < schemes.size(); ++j) {
      auto it = at.find({units[i], schemes[j]});
      std::string fill = "#ddd", tip = "not measured";
      if (it != at.end() && it->second->kld > 0) {
        const double f = (std::log10(it->second->kld) - lo) / (hi - lo);
        fill = fmt::format("rgb({},{},60)", int(255 * std::min(1.0, 2 * f)), int(255 * std::min(1.0, 2 * (1 - f))));
        tip = fmt::format("ΔKLD {:.6f} ± {:.6f}", it->second->kld, it->second->kld_se);
      }
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"{}\"><title>{} {}: {}"
                       "</title></rect>",
                       L + cw * j, T + ch * i, cw - 1, ch - 1, fill, Esc(units[i]), Esc(schemes[j]), tip);
    }
    s += "\n";
  }
  s += fmt::format("<text x=\"8\" y=\"{:.0f}\" font-size=\"11\">{}</text>\n", H - 8, Esc(legend));
  return s + "</svg>\n";
}

std::string UnitTable(const std::vector<SensitivityUnitRow>& rows, const std::string& slug) {
  std::string h = "<table class=\"sens sortable\" id=\"sens-" + Esc(slug) + "\"><thead><tr>";
  for (const char* c : {"unit", "scheme", "bits/weight", "ΔKLD", "± se", "ΔPPL", "ΔPPL 95% CI", "top-1 %", "windows"})
    h += std::string("<th title=\"click to sort\">") + c + "</th>";
  h += "</tr></thead><tbody>\n";
  for (const auto& r : rows)
    h += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"n\">{:.4f}</td><td class=\"n\">{:.6f}</td><td class=\"n\">"
                     "{:.6f}</td><td class=\"n\">{:+.4f}</td><td class=\"n\">[{:+.4f}, {:+.4f}]</td><td class=\"n\">{:.2f}"
                     "</td><td class=\"n\">{}</td></tr>\n",
                     Esc(r.unit), Esc(r.scheme), r.bits_per_weight, r.kld, r.kld_se, r.dppl, r.dppl_lo, r.dppl_hi,
                     100 * r.top1, r.eval_windows > 0 ? std::to_string(r.eval_windows) : std::string("?"));
  return h + "</tbody></table>\n";
}

// One cell of the frontier plot: bits per weight of the whole model, KLD with its 95% interval.
struct FrontierPoint {
  std::string label;
  double bpw = 0, kld = 0, kld_se = 0;
};

// Ok cells with their whole-model bits per weight (model_bytes · 8 / parameters); `where` filters cells c.
StatusOr<std::vector<FrontierPoint>> FrontierPoints(ResultStore& store, const std::string& where) {
  QL_ASSIGN_OR_RETURN(SqlResult r, store.Query(
      "SELECT c.weight_scheme, m.model_bytes * 8.0 / mo.n_params, m.kld_mean, m.kld_se FROM cells c JOIN metrics m ON "
      "m.cell_id = c.id JOIN models mo ON mo.id = c.model_id WHERE c.status = 'ok' AND " + where +
      " ORDER BY 2, c.id"));
  std::vector<FrontierPoint> out;
  for (const auto& row : r.rows)
    if (std::isfinite(Num(row[1])) && Num(row[2]) > 0)
      out.push_back({SqlValueToString(row[0]), Num(row[1]), Num(row[2]), Num(row[3])});
  return out;
}

svg::Point FrontierPt(const FrontierPoint& f, const std::string& what) {
  svg::Point q;
  q.x = f.bpw, q.y = f.kld, q.lo = std::max(f.kld * 1e-3, f.kld - 1.96 * f.kld_se), q.hi = f.kld + 1.96 * f.kld_se;
  q.tip = fmt::format("{}: {:.4f} b/w (whole model), KLD {:.5g} ± {:.2g}", what, f.bpw, f.kld, f.kld_se);
  return q;
}

}  // namespace

StatusOr<std::string> SearchFrontierSection(ResultStore& store, const std::string& experiment_id,
                                            const std::string& experiment_name, const std::string& slug,
                                            std::vector<ReportFigure>* figures) {
  const std::string suffix = "-search";
  if (experiment_name.size() <= suffix.size() || !experiment_name.ends_with(suffix)) return std::string();
  QL_ASSIGN_OR_RETURN(SqlResult any, store.Query("SELECT model_id, dataset_id, protocol FROM cells WHERE experiment_id = " +
                                                 Quoted(experiment_id) + " AND status = 'ok' LIMIT 1"));
  if (any.rows.empty()) return std::string();
  const std::string same = "c.model_id = " + Quoted(SqlValueToString(any.rows[0][0])) + " AND c.dataset_id = " +
                           Quoted(SqlValueToString(any.rows[0][1])) + " AND c.protocol = " +
                           Quoted(SqlValueToString(any.rows[0][2]));
  QL_ASSIGN_OR_RETURN(std::vector<FrontierPoint> found, FrontierPoints(store, "c.experiment_id = " + Quoted(experiment_id)));
  // Uniform: weight-only, no ignore set, no overrides (presets such as Q4_K_M included).
  QL_ASSIGN_OR_RETURN(std::vector<FrontierPoint> uniform, FrontierPoints(store, same +
      " AND c.weight_scheme != '' AND c.act_scheme = '' AND c.kv_scheme = '' AND coalesce(c.attn_scheme, '') = '' AND "
      "c.ignore_set = 'none' AND c.config NOT LIKE '%\"overrides\"%'"));
  svg::Plot p;
  p.id = slug + "-frontier";
  p.xlabel = "bits per weight, whole model (model bytes × 8 / parameters)";
  p.ylabel = "mean KL divergence, nats/token (log)";
  p.log_y = true;
  svg::Series s, front;  // every verified cell; the line through those no other one beats (found is by bpw)
  s.name = "search (verified cells)", s.color = "#c00", s.has_err = true, s.cls = "frontier";
  front.name = "search frontier", front.color = "#c00", front.points = false, front.line = true, front.cls = "fline";
  double best = INFINITY;
  for (const FrontierPoint& f : found) {
    s.pts.push_back(FrontierPt(f, "search"));
    if (f.kld < best) best = f.kld, front.pts.push_back(FrontierPt(f, "search frontier"));
  }
  svg::Series u;
  u.name = "uniform schemes", u.color = "#0072b2", u.marker = svg::Marker::kSquare, u.has_err = true, u.cls = "uniform";
  for (const FrontierPoint& f : uniform) {
    u.pts.push_back(FrontierPt(f, f.label));
    u.pts.back().label = f.label;
  }
  p.series = {front, s, u};
  p.legend = {{"search: verified configurations", "#c00", svg::Marker::kCircle},
              {"search: frontier (no other is smaller and better)", "#c00", svg::Marker::kCircle, true},
              {"uniform scheme / preset (same model, text, protocol)", "#0072b2", svg::Marker::kSquare}};
  double w = 0, hgt = 0;
  const std::string svg_text = svg::Render(p, &w, &hgt);
  const std::string title = "Searched configurations against every uniform scheme of the store: KLD by bits per "
                            "weight of the whole model (error bars: 95% interval of the mean over tokens)";
  figures->push_back({p.id, title, svg_text, w, hgt});
  return "<h3>Search frontier</h3>\n<p>Each red point is a configuration `quantlab search` chose and measured as "
         "a cell; each blue point a uniform weight scheme. Bits per weight count every tensor as stored (the "
         "exceptions kept at baseline precision included).</p>\n<figure>" + svg_text + "<figcaption>" + Esc(title) +
         "</figcaption></figure>\n";
}

StatusOr<std::vector<SensitivityUnitRow>> ReadSensitivityUnits(ResultStore& store, const std::string& experiment_id) {
  auto q = store.Query(
      "SELECT p.label, c.config, m.kld_mean, m.kld_se, m.dppl, m.dppl_lo, m.dppl_hi, m.top1, m.bits_per_weight, "
      "m.eval_windows FROM planned_cells p JOIN cells c ON c.id = p.cell_id JOIN metrics m ON m.cell_id = c.id WHERE "
      "p.experiment_id = " + Quoted(experiment_id) + " AND c.status = 'ok' AND c.weight_scheme = '' ORDER BY p.cell_index");
  if (!q.ok()) {  // a store from before eval_windows: the same without it
    QL_ASSIGN_OR_RETURN(q, store.Query(
        "SELECT p.label, c.config, m.kld_mean, m.kld_se, m.dppl, m.dppl_lo, m.dppl_hi, m.top1, m.bits_per_weight, 0 "
        "FROM planned_cells p JOIN cells c ON c.id = p.cell_id JOIN metrics m ON m.cell_id = c.id WHERE "
        "p.experiment_id = " + Quoted(experiment_id) + " AND c.status = 'ok' AND c.weight_scheme = '' ORDER BY p.cell_index"));
  }
  std::vector<SensitivityUnitRow> out;
  for (const auto& row : q->rows) {
    const nlohmann::json cfg = nlohmann::json::parse(SqlValueToString(row[1]), nullptr, false);
    if (cfg.is_discarded() || !cfg.contains("overrides") || cfg["overrides"].size() != 1) continue;
    const nlohmann::json& o = cfg["overrides"][0];
    const std::string label = SqlValueToString(row[0]);
    const size_t at = label.find(" @ "), bar = label.find(" | ");
    SensitivityUnitRow r;
    r.scheme = o.value("scheme", "");
    r.unit = at != std::string::npos ? label.substr(at + 3, bar == std::string::npos ? std::string::npos : bar - at - 3)
                                     : o["targets"].dump();
    r.layer = o["targets"].empty() ? -1 : LayerOf(o["targets"][0].get<std::string>());
    r.kld = Num(row[2]), r.kld_se = Num(row[3]), r.dppl = Num(row[4]), r.dppl_lo = Num(row[5]), r.dppl_hi = Num(row[6]);
    r.top1 = Num(row[7]), r.bits_per_weight = Num(row[8]);
    r.eval_windows = std::isnan(Num(row[9])) ? 0 : int(Num(row[9]));
    out.push_back(std::move(r));
  }
  return out;
}

StatusOr<std::string> SensitivitySection(ResultStore& store, const std::string& experiment_id, const std::string& slug,
                                         std::vector<ReportFigure>* figures) {
  QL_ASSIGN_OR_RETURN(std::vector<SensitivityUnitRow> rows, ReadSensitivityUnits(store, experiment_id));
  if (rows.empty()) return std::string();
  std::string h = "<h3>Sensitivity units</h3>\n<p>Each unit quantized alone with each scheme, everything else at the "
                  "baseline precision (quantlab sensitivity). ΔKLD is the unit's mean KLD against the baseline; "
                  "“windows” is how many evaluation windows it covers (fewer for adaptive units).</p>\n";
  auto add = [&](const std::string& name, const std::string& title, const std::string& svg_text) {
    if (svg_text.empty()) return;
    const auto num = [&](const char* attr) {
      const size_t p = svg_text.find(std::string(attr) + "=\"");
      return p == std::string::npos ? 0.0 : std::atof(svg_text.c_str() + p + std::string(attr).size() + 2);
    };
    figures->push_back({name, title, svg_text, num("width"), num("height")});
    h += "<figure>" + svg_text + "<figcaption>" + Esc(title) + "</figcaption></figure>\n";
  };
  add(slug + "-sens-layers", "ΔKLD per decoder block and scheme (sum over the block's units)",
      LayerBars(rows, slug + "-sens-layers"));
  add(slug + "-sens-heatmap", "ΔKLD of every unit at every scheme", UnitHeatmap(rows, slug + "-sens-heatmap"));
  return h + UnitTable(rows, slug);
}

}  // namespace ql
