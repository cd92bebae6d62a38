// The HTML report (see report.h). Plots are drawn as inline SVG by the small helpers below; written
// here rather than taken from a plotting library because Debian packages none for C++ that emits
// self-contained SVG, and the page must open offline.
#include "results/report.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <set>

namespace ql {
namespace {

std::string Esc(const std::string& s) {
  std::string o;
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

double Num(const SqlValue& v) {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return double(*i);
  return NAN;
}

// Colour per format family, so a reader sees the families cluster.
std::string FamilyColor(const std::string& scheme) {
  static const std::vector<std::pair<std::string, std::string>> kFamilies = {
      {"mx", "#1b9e77"}, {"nvfp4", "#d95f02"}, {"nf4", "#7570b3"}, {"q", "#e7298a"},
      {"fp", "#66a61e"}, {"e", "#66a61e"}, {"int", "#1f78b4"}, {"uint", "#1f78b4"}};
  for (const auto& [prefix, color] : kFamilies)
    if (scheme.rfind(prefix, 0) == 0) return color;
  return "#666666";
}

struct Point {
  double x, y;
  std::string label, color;
};

std::string Tick(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 100 || a < 0.01) return fmt::format("{:.1e}", v);
  return fmt::format("{:.3g}", v);
}

// Scatter plot with optional log-y, the Pareto front drawn as a step line.
std::string ScatterSvg(const std::string& id, const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Point>& pts, bool log_y) {
  const double W = 720, H = 420, L = 70, R = 20, T = 20, B = 50;
  std::vector<Point> p;
  for (const auto& q : pts)
    if (std::isfinite(q.x) && std::isfinite(q.y) && (!log_y || q.y > 0)) p.push_back(q);
  std::string svg = fmt::format(
      "<svg id=\"{}\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\">\n<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n",
      id, W, H, W, H, W, H);
  if (p.empty()) return svg + "<text x=\"20\" y=\"40\">no finished cells to plot</text></svg>\n";
  auto fy = [&](double y) { return log_y ? std::log10(y) : y; };
  double x0 = p[0].x, x1 = p[0].x, y0 = fy(p[0].y), y1 = fy(p[0].y);
  for (const auto& q : p) {
    x0 = std::min(x0, q.x); x1 = std::max(x1, q.x);
    y0 = std::min(y0, fy(q.y)); y1 = std::max(y1, fy(q.y));
  }
  if (x1 - x0 < 1e-9) { x0 -= 0.5; x1 += 0.5; }
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  const double xp = 0.05 * (x1 - x0), yp = 0.08 * (y1 - y0);
  x0 -= xp; x1 += xp; y0 -= yp; y1 += yp;
  auto sx = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto sy = [&](double y) { return H - B - (fy(y) - y0) / (y1 - y0) * (H - T - B); };
  // Axes and ticks.
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", L, H - B, W - R, H - B);
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", L, T, L, H - B);
  for (int i = 0; i <= 5; ++i) {
    const double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    const double X = L + (W - L - R) * i / 5, Y = H - B - (H - T - B) * i / 5;
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n", X, H - B + 16, Tick(xv));
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n", L - 6, Y + 4,
                       Tick(log_y ? std::pow(10.0, yv) : yv));
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n", L + 1, Y, W - R, Y);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n", (L + W - R) / 2, H - 10, Esc(xlabel));
  svg += fmt::format("<text x=\"16\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n",
                     (T + H - B) / 2, (T + H - B) / 2, Esc(ylabel + (log_y ? " (log)" : "")));
  // Pareto front.
  std::vector<double> xs, ys;
  for (const auto& q : p) { xs.push_back(q.x); ys.push_back(q.y); }
  const auto front = ParetoFront(xs, ys);
  std::string path;
  for (size_t k = 0; k < front.size(); ++k) {
    const auto& q = p[front[k]];
    if (k > 0) path += fmt::format(" L {:.1f} {:.1f}", sx(q.x), sy(p[front[k - 1]].y));
    path += fmt::format("{} {:.1f} {:.1f}", k == 0 ? "M" : " L", sx(q.x), sy(q.y));
  }
  if (!path.empty())
    svg += "<path class=\"pareto\" d=\"" + path + "\" fill=\"none\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\n";
  for (const auto& q : p) {
    svg += fmt::format("<circle class=\"pt\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"{}\" fill-opacity=\"0.8\">"
                       "<title>{} ({}, {})</title></circle>\n",
                       sx(q.x), sy(q.y), q.color, Esc(q.label), Tick(q.x), Tick(q.y));
  }
  return svg + "</svg>\n";
}

// Heatmap: rows = cells, columns = layers, colour = log10(rel_mse).
std::string HeatmapSvg(const std::vector<std::string>& rows, int n_layers,
                       const std::map<std::pair<size_t, int>, double>& v) {
  const double cw = std::max(14.0, std::min(40.0, 600.0 / std::max(1, n_layers))), ch = 16, L = 260, T = 30;
  const double W = std::max(760.0, L + cw * n_layers + 80), H = T + ch * rows.size() + 40;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& [k, x] : v)
    if (x > 0 && std::isfinite(x)) { lo = std::min(lo, std::log10(x)); hi = std::max(hi, std::log10(x)); }
  if (!(hi > lo)) { hi = lo + 1; }
  std::string svg = fmt::format("<svg id=\"layer-heatmap\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" "
                                "width=\"{:.0f}\" height=\"{:.0f}\">\n", W, H);
  for (int l = 0; l < n_layers; ++l)
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n", L + cw * (l + 0.5), T - 8, l);
  for (size_t r = 0; r < rows.size(); ++r) {
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n", L - 6, T + ch * (r + 0.75), Esc(rows[r]));
    for (int l = 0; l < n_layers; ++l) {
      auto it = v.find({r, l});
      std::string fill = "#ddd";
      std::string tip = "n/a";
      if (it != v.end() && it->second > 0 && std::isfinite(it->second)) {
        const double t = (std::log10(it->second) - lo) / (hi - lo);  // 0 = best, 1 = worst
        const int red = int(255 * std::min(1.0, 2 * t)), green = int(255 * std::min(1.0, 2 * (1 - t)));
        fill = fmt::format("rgb({},{},60)", red, green);
        tip = fmt::format("{:.3e}", it->second);
      }
      svg += fmt::format("<rect class=\"cell\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
                         "<title>{} layer {}: rel MSE {}</title></rect>\n",
                         L + cw * l, T + ch * r, cw - 1, ch - 1, fill, Esc(rows[r]), l, tip);
    }
  }
  svg += fmt::format("<text x=\"{}\" y=\"{:.0f}\" font-size=\"11\">green = lowest, red = highest relative MSE of the "
                     "block output (log scale, {:.1e} … {:.1e})</text>\n",
                     L, H - 12, std::pow(10.0, lo), std::pow(10.0, hi));
  return svg + "</svg>\n";
}

std::string HtmlTable(const SqlResult& r, const std::string& id) {
  std::string h = "<table id=\"" + id + "\"><thead><tr>";
  for (const auto& c : r.columns) h += "<th>" + Esc(c) + "</th>";
  h += "</tr></thead><tbody>\n";
  for (const auto& row : r.rows) {
    h += "<tr>";
    for (const auto& v : row) h += "<td>" + Esc(SqlValueToString(v)) + "</td>";
    h += "</tr>\n";
  }
  return h + "</tbody></table>\n";
}

}  // namespace

std::vector<size_t> ParetoFront(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<size_t> idx(x.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return x[a] != x[b] ? x[a] < x[b] : y[a] < y[b]; });
  std::vector<size_t> front;
  double best = INFINITY;
  for (size_t i : idx) {
    if (y[i] < best) {
      front.push_back(i);
      best = y[i];
    }
  }
  return front;
}

StatusOr<std::string> RenderReportHtml(ResultStore& store, const ReportOptions& opt) {
  const std::string where = opt.experiment_id.empty() ? "1" : "c.experiment_id = '" + opt.experiment_id + "'";
  // Attention-input schemes (schema version 2); a version-1 store has no attn_scheme column.
  const std::string attn = store.Query("SELECT attn_scheme FROM cells LIMIT 0").ok() ? "c.attn_scheme" : "''";
  QL_ASSIGN_OR_RETURN(SqlResult cells, store.Query(
      "SELECT c.id, c.weight_scheme, c.act_scheme, c.kv_scheme, c.algorithm, c.ignore_set, m.bits_per_weight, "
      "m.dppl, m.kld_mean, m.ppl, m.top1, " + attn + " FROM cells c JOIN metrics m ON m.cell_id = c.id "
      "WHERE c.status = 'ok' AND " + where + " ORDER BY m.bits_per_weight, m.dppl"));
  std::vector<Point> p_dppl, p_kld;
  std::vector<std::string> labels;
  for (const auto& row : cells.rows) {
    std::string label = SqlValueToString(row[1]);
    if (!SqlValueToString(row[2]).empty()) label += " A=" + SqlValueToString(row[2]);
    if (!SqlValueToString(row[3]).empty()) label += " KV=" + SqlValueToString(row[3]);
    if (!SqlValueToString(row[11]).empty()) label += " ATTN(" + SqlValueToString(row[11]) + ")";
    label += " | " + SqlValueToString(row[4]) + " | ignore=" + SqlValueToString(row[5]);
    labels.push_back(label);
    const std::string color = FamilyColor(SqlValueToString(row[1]));
    p_dppl.push_back({Num(row[6]), Num(row[7]), label, color});
    p_kld.push_back({Num(row[6]), Num(row[8]), label, color});
  }
  // Per-layer sensitivity.
  QL_ASSIGN_OR_RETURN(SqlResult layers, store.Query(
      "SELECT l.cell_id, l.layer, l.rel_mse FROM layer_errors l JOIN cells c ON c.id = l.cell_id WHERE " + where));
  std::map<std::string, size_t> row_of;
  for (size_t i = 0; i < cells.rows.size(); ++i) row_of[SqlValueToString(cells.rows[i][0])] = i;
  std::map<std::pair<size_t, int>, double> heat;
  int n_layers = 0;
  for (const auto& row : layers.rows) {
    auto it = row_of.find(SqlValueToString(row[0]));
    if (it == row_of.end()) continue;
    const int l = int(Num(row[1]));
    n_layers = std::max(n_layers, l + 1);
    heat[{it->second, l}] = Num(row[2]);
  }
  QL_ASSIGN_OR_RETURN(SqlResult formats, store.Query(
      "SELECT t.scheme AS scheme, count(DISTINCT t.cell_id) AS cells, count(*) AS tensors, "
      "printf('%.2f', avg(t.sqnr_db)) AS mean_sqnr_db, printf('%.2f', min(t.sqnr_db)) AS worst_sqnr_db, "
      "printf('%.3e', avg(t.mse)) AS mean_mse, printf('%.4f', sum(t.bits_per_weight * t.bytes) / sum(t.bytes)) AS bits_per_weight "
      "FROM tensor_errors t JOIN cells c ON c.id = t.cell_id WHERE " + where +
      " GROUP BY t.scheme ORDER BY avg(t.sqnr_db) DESC"));
  QL_ASSIGN_OR_RETURN(SqlResult failed, store.Query(
      "SELECT c.weight_scheme, c.act_scheme, c.algorithm, c.ignore_set, c.status, c.reason FROM cells c "
      "WHERE c.status <> 'ok' AND " + where));
  QL_ASSIGN_OR_RETURN(SqlResult baselines, store.Query(
      "SELECT b.protocol, b.precision, printf('%.4f ± %.4f', b.ppl, b.ppl_err) AS ppl, b.n_tokens, m.path AS model, "
      "d.path AS data FROM baselines b LEFT JOIN models m ON m.id = b.model_id LEFT JOIN datasets d ON d.id = b.dataset_id"));
  QL_ASSIGN_OR_RETURN(SqlResult table, store.Query(
      "SELECT c.weight_scheme AS weights, c.act_scheme AS acts, c.kv_scheme AS kv, " + attn + " AS attn, "
      "c.algorithm AS algo, c.ignore_set AS ignore, "
      "printf('%.3f', m.bits_per_weight) AS bpw, printf('%.4f', m.ppl) AS ppl, "
      "printf('%+.4f [%+.4f, %+.4f]', m.dppl, m.dppl_lo, m.dppl_hi) AS dppl_95ci, printf('%.5f', m.kld_mean) AS kld, "
      "printf('%.5f', m.kld_p99) AS kld_p99, printf('%.2f%%', 100 * m.top1) AS top1, c.code_version AS code, c.host AS host "
      "FROM cells c JOIN metrics m ON m.cell_id = c.id WHERE c.status = 'ok' AND " + where + " ORDER BY m.dppl"));

  std::time_t now = std::time(nullptr);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::string h = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + Esc(opt.title) + "</title>\n"
                  "<style>body{font-family:sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;"
                  "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#f4f4f4}"
                  "h2{margin-top:32px}.plot{border:1px solid #ddd}</style></head><body>\n";
  h += "<h1>" + Esc(opt.title) + "</h1>\n<p>Generated " + std::string(ts) + " from " + Esc(store.dir()) + ". " +
       std::to_string(cells.rows.size()) + " finished cells, " + std::to_string(failed.rows.size()) +
       " failed or diverged.</p>\n";
  h += "<h2>Baselines</h2>\n" + HtmlTable(baselines, "baselines");
  h += "<h2>Pareto front: bits per weight vs ΔPPL</h2>\n<p>Each point is a cell; the dashed line joins the cells no "
       "other cell beats on both axes. Hover for the scheme.</p>\n";
  h += ScatterSvg("pareto-dppl", "bits per weight (quantized linears, scales included)", "ΔPPL vs baseline", p_dppl, false);
  h += "<h2>Pareto front: bits per weight vs KLD</h2>\n";
  h += ScatterSvg("pareto-kld", "bits per weight (quantized linears, scales included)", "mean KL divergence (nats/token)",
                  p_kld, true);
  h += "<h2>Per-layer sensitivity</h2>\n<p>Relative MSE of each decoder block's output against the baseline's, per cell.</p>\n";
  h += HeatmapSvg(labels, n_layers, heat);
  h += "<h2>Per-format weight error</h2>\n" + HtmlTable(formats, "format-errors");
  h += "<h2>All finished cells</h2>\n" + HtmlTable(table, "cells");
  h += "<h2>Failed or diverged cells</h2>\n" + HtmlTable(failed, "failed");
  h += "</body></html>\n";
  return h;
}

}  // namespace ql
