// The HTML report (see report.h). The store is read by column name (results/row_view.h); the plots
// are drawn by results/svg.h; the cell table is results/compare.h's, the same as `quantlab compare`.
// Written here rather than with a plotting library because Debian packages none for C++ that emits
// self-contained SVG, and the page must open offline.
#include "results/report.h"
#include "results/sensitivity_report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <array>
#include <tuple>
#include <map>
#include <set>

#include "results/compare.h"
#include "results/row_view.h"
#include "results/svg.h"

namespace ql {
namespace {
namespace fs = std::filesystem;
using svg::Esc;

constexpr size_t kMaxLines = 8;  // line plots show at most this many cells (the ΔPPL front when more)
constexpr double kZ95 = 1.959963984540054;

struct CellInfo {
  std::string id, weights, acts, kv, attn, algo, ignore, status, family, baseline_id;
  double bpw = NAN, ppl = NAN, dppl = NAN, dppl_lo = NAN, dppl_hi = NAN, kld = NAN, top1 = NAN;
  double kld_lo = NAN, kld_hi = NAN;  // 95% interval of the mean per-token KLD (from the arrays)

  // The scheme part: what a reader reads first, and what labels a point.
  std::string Label() const {
    std::string s = weights.empty() ? "(none)" : weights;
    if (!acts.empty()) s += " A=" + acts;
    if (!kv.empty()) s += " KV=" + kv;
    if (!attn.empty()) s += " ATTN(" + attn + ")";
    return s;
  }
  std::string FullLabel() const { return Label() + " | " + algo + " | ignore=" + ignore; }
  std::string Attrs() const {
    return "data-family=\"" + Esc(family) + "\" data-algo=\"" + Esc(algo) + "\" data-ignore=\"" + Esc(ignore) + "\"";
  }
};

struct ExperimentInfo {
  std::string id, name, created_at, code_version, host, config, slug;
  std::vector<CellInfo> cells;  // finished (ok) cells, by bits/weight then ΔPPL
  int n_failed = 0;
};

std::string Quote(const std::string& s) {
  std::string o = "'";
  for (char ch : s) o += ch == '\'' ? std::string("''") : std::string(1, ch);
  return o + "'";
}

// A file-name-safe version of an experiment name.
std::string Slug(const std::string& s) {
  std::string o;
  for (char ch : s) o += std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' ? ch : '_';
  return o.empty() ? "experiment" : o;
}

// An array of a cell or baseline ("nll", "kld", "weight_error_hist/<tensor>"); empty when not stored.
std::vector<double> OwnerArray(ResultStore& store, const std::string& owner, const std::string& name) {
  auto r = store.Query("SELECT h5_file FROM arrays WHERE owner_id = " + Quote(owner) + " AND name = " + Quote(name));
  if (!r.ok() || r->rows.empty()) return {};
  auto v = ReadH5Array(store.dir() + "/" + SqlValueToString(r->rows[0][0]), name);
  if (!v.ok()) return {};
  return std::vector<double>(v->begin(), v->end());
}

void AddKldInterval(ResultStore& store, CellInfo& c) {
  const auto k = OwnerArray(store, c.id, "kld");
  if (k.size() < 2) return;
  double m = 0, s2 = 0;
  for (double v : k) m += v;
  m /= double(k.size());
  for (double v : k) s2 += (v - m) * (v - m);
  const double se = std::sqrt(s2 / double(k.size() - 1) / double(k.size()));
  c.kld_lo = m - kZ95 * se;
  c.kld_hi = m + kZ95 * se;
}

StatusOr<std::vector<CellInfo>> LoadCells(ResultStore& store, const std::string& experiment_id, int* n_failed) {
  QL_ASSIGN_OR_RETURN(SqlResult r, store.Query(
      "SELECT c.*, m.* FROM cells c LEFT JOIN metrics m ON m.cell_id = c.id WHERE c.experiment_id = " +
      Quote(experiment_id) + " ORDER BY m.bits_per_weight, m.dppl, c.id"));
  const auto idx = ColumnIndex(r);
  std::vector<CellInfo> out;
  *n_failed = 0;
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const RowView v(r, i, idx);
    if (v.Text("status") != "ok" || !std::isfinite(v.Num("ppl"))) {
      ++*n_failed;
      continue;
    }
    CellInfo c{v.Text("id"), v.Text("weight_scheme"), v.Text("act_scheme"), v.Text("kv_scheme"), v.Text("attn_scheme"),
               v.Text("algorithm"), v.Text("ignore_set"), v.Text("status"), FormatFamily(v.Text("weight_scheme")),
               v.Text("baseline_id")};
    c.bpw = v.Num("bits_per_weight"), c.ppl = v.Num("ppl"), c.dppl = v.Num("dppl");
    c.dppl_lo = v.Num("dppl_lo"), c.dppl_hi = v.Num("dppl_hi"), c.kld = v.Num("kld_mean"), c.top1 = v.Num("top1");
    AddKldInterval(store, c);
    out.push_back(std::move(c));
  }
  return out;
}

// Experiments with rows in `experiments`, then ids that only cells name (an older or hand-made store).
StatusOr<std::vector<ExperimentInfo>> LoadExperiments(ResultStore& store, const ReportOptions& opt) {
  const std::string only = opt.experiment_id.empty() ? "" : " WHERE id = " + Quote(opt.experiment_id);
  QL_ASSIGN_OR_RETURN(SqlResult e, store.Query("SELECT * FROM experiments" + only + " ORDER BY created_at, id"));
  QL_ASSIGN_OR_RETURN(SqlResult orphans, store.Query(
      "SELECT DISTINCT experiment_id FROM cells WHERE experiment_id NOT IN (SELECT id FROM experiments)" +
      std::string(opt.experiment_id.empty() ? "" : " AND experiment_id = " + Quote(opt.experiment_id)) +
      " ORDER BY experiment_id"));
  std::vector<ExperimentInfo> out;
  const auto idx = ColumnIndex(e);
  std::set<std::string> slugs;
  auto add = [&](ExperimentInfo x) -> Status {
    x.slug = Slug(x.name.empty() ? x.id : x.name);
    while (!slugs.insert(x.slug).second) x.slug += "_";
    QL_ASSIGN_OR_RETURN(x.cells, LoadCells(store, x.id, &x.n_failed));
    out.push_back(std::move(x));
    return Status::Ok();
  };
  for (size_t i = 0; i < e.rows.size(); ++i) {
    const RowView v(e, i, idx);
    ExperimentInfo x;
    x.id = v.Text("id"), x.name = v.Text("name"), x.created_at = v.Text("created_at");
    x.code_version = v.Text("code_version"), x.host = v.Text("host"), x.config = v.Text("config");
    QL_RETURN_IF_ERROR(add(std::move(x)));
  }
  for (const auto& row : orphans.rows) {
    ExperimentInfo x;
    x.id = x.name = SqlValueToString(row[0]);
    QL_RETURN_IF_ERROR(add(std::move(x)));
  }
  if (!opt.experiment_id.empty() && out.empty())
    return Status::Errorf("report: no experiment '{}' in {} (list them: quantlab query \"SELECT id, name FROM "
                          "experiments\" --results {})", opt.experiment_id, store.dir(), store.dir());
  return out;
}

// A cell's name in legends and labels: its weight scheme, plus each other part (activations, KV
// cache, attention, algorithm, ignore set) that the experiment varies; the parts every cell shares
// are named once, in the section's table (CommonParts).
bool Varies(const ExperimentInfo& e, std::string CellInfo::*part) {
  for (const auto& x : e.cells)
    if (x.*part != e.cells.front().*part) return true;
  return false;
}

std::string LineName(const CellInfo& c, const ExperimentInfo& e) {
  std::string s = c.weights.empty() ? "(none)" : c.weights;
  if (!c.acts.empty() && Varies(e, &CellInfo::acts)) s += " A=" + c.acts;
  if (!c.kv.empty() && Varies(e, &CellInfo::kv)) s += " KV=" + c.kv;
  if (!c.attn.empty() && Varies(e, &CellInfo::attn)) s += " ATTN(" + c.attn + ")";
  if (Varies(e, &CellInfo::algo)) s += " " + c.algo;
  if (Varies(e, &CellInfo::ignore) && c.ignore != "none") s += " −" + c.ignore;  // − the modules kept unquantized
  return s;
}

std::string CommonParts(const ExperimentInfo& e) {
  if (e.cells.empty()) return "";
  const CellInfo& c = e.cells.front();
  std::string s;
  if (!Varies(e, &CellInfo::acts)) s += "activations " + (c.acts.empty() ? std::string("not quantized") : c.acts) + "; ";
  if (!Varies(e, &CellInfo::kv)) s += "KV cache " + (c.kv.empty() ? std::string("not quantized") : c.kv) + "; ";
  if (!Varies(e, &CellInfo::attn)) s += "attention inputs " + (c.attn.empty() ? std::string("not quantized") : c.attn) + "; ";
  if (!Varies(e, &CellInfo::algo)) s += "algorithm " + c.algo + "; ";
  if (!Varies(e, &CellInfo::ignore)) s += "ignore set " + c.ignore + "; ";
  return s.empty() ? s : s.substr(0, s.size() - 2);
}

// ---- scatter plots: quality against size ----

svg::Point Pt(double x, double y) {
  svg::Point p;
  p.x = x, p.y = y;
  return p;
}

svg::Series MakeSeries(const std::string& name, const std::string& color, svg::Marker m) {
  svg::Series s;
  s.name = name, s.color = color, s.marker = m;
  return s;
}

// Colour by algorithm, marker by ignore set. An axis the experiment does not vary says nothing, so
// then the format family takes its place (colour first).
struct Style {
  enum Key { kAlgo, kIgnore, kFamily, kNone };
  Key colour_key = kAlgo, mark_key = kIgnore;
  std::map<std::string, size_t> colour, mark;
  explicit Style(const std::vector<CellInfo>& cells) {
    std::set<std::string> algos, ignores;
    for (const auto& c : cells) algos.insert(c.algo), ignores.insert(c.ignore);
    colour_key = algos.size() > 1 ? kAlgo : kFamily;
    mark_key = ignores.size() > 1 ? kIgnore : colour_key == kAlgo ? kFamily : kNone;
    for (const auto& c : cells) colour.emplace(Value(c, colour_key), 0), mark.emplace(Value(c, mark_key), 0);
    size_t i = 0;
    for (auto& [k, v] : colour) v = i++;
    i = 0;
    for (auto& [k, v] : mark) v = i++;
  }
  static std::string Value(const CellInfo& c, Key k) {
    return k == kAlgo ? c.algo : k == kIgnore ? c.ignore : k == kFamily ? c.family : "";
  }
  static std::string Name(Key k) { return k == kAlgo ? "algorithm" : k == kIgnore ? "ignore set" : "format family"; }
  std::string Color(const CellInfo& c) const { return svg::PaletteColor(colour.at(Value(c, colour_key))); }
  svg::Marker Mark(const CellInfo& c) const { return svg::Marker(mark.at(Value(c, mark_key)) % svg::kMarkerCount); }
  std::string SeriesName(const CellInfo& c) const {
    return Value(c, colour_key) + (mark_key == kNone ? "" : " / " + Value(c, mark_key));
  }
  std::vector<svg::LegendEntry> Legend() const {
    std::vector<svg::LegendEntry> l{{"colour: " + Name(colour_key), "", {}, false, true}};
    for (const auto& [k, v] : colour) l.push_back({k, svg::PaletteColor(v), svg::Marker::kCircle});
    if (mark_key != kNone) {
      l.push_back({"marker: " + Name(mark_key), "", {}, false, true});
      for (const auto& [k, v] : mark) l.push_back({k, "#555", svg::Marker(v % svg::kMarkerCount)});
    }
    l.push_back({"Pareto front", "#c00", {}, true});
    return l;
  }
};

struct Metric {
  std::string key, ylabel;
  bool log_y;
  double CellInfo::*y, CellInfo::*lo, CellInfo::*hi;
};

svg::Plot ScatterPlot(const ExperimentInfo& e, const Metric& m) {
  const Style st(e.cells);
  svg::Plot p;
  p.id = e.slug + "-" + m.key;
  p.xlabel = "bits per weight (quantized linears, scales included)";
  p.ylabel = m.ylabel;
  p.log_y = m.log_y;
  p.zero_line = !m.log_y;
  p.legend = st.Legend();
  std::vector<size_t> usable;
  std::vector<double> xs, ys;
  for (size_t i = 0; i < e.cells.size(); ++i) {
    const auto& c = e.cells[i];
    if (std::isfinite(c.bpw) && std::isfinite(c.*m.y) && (!m.log_y || c.*m.y > 0)) {
      usable.push_back(i);
      xs.push_back(c.bpw);
      ys.push_back(c.*m.y);
    }
  }
  const auto front_k = ParetoFront(xs, ys);
  std::set<size_t> front;
  svg::Series line = MakeSeries("Pareto front", "#c00", svg::Marker::kCircle);
  line.points = false, line.step = true, line.dash = "5 3", line.width = 1.2, line.cls = "pareto";
  for (size_t k : front_k) {
    front.insert(usable[k]);
    line.pts.push_back(Pt(xs[k], ys[k]));
  }
  p.series.push_back(line);
  std::map<std::pair<size_t, int>, size_t> series_of;  // (colour, marker) -> series
  for (size_t i : usable) {
    const auto& c = e.cells[i];
    const auto key = std::make_pair(st.colour.at(Style::Value(c, st.colour_key)), int(st.Mark(c)));
    if (!series_of.count(key)) {
      series_of[key] = p.series.size();
      svg::Series s = MakeSeries(st.SeriesName(c), st.Color(c), st.Mark(c));
      s.has_err = true;
      p.series.push_back(s);
    }
    const bool on_front = front.count(i) > 0;
    svg::Point q = Pt(c.bpw, c.*m.y);
    q.lo = c.*m.lo, q.hi = c.*m.hi;
    q.tip = fmt::format("{}: {:.3f} b/w, {} {:.5g} [{:.5g}, {:.5g}]", c.FullLabel(), c.bpw, m.key, c.*m.y, c.*m.lo, c.*m.hi);
    q.attrs = c.Attrs() + (on_front ? " data-front=\"1\"" : "");
    if (on_front) q.label = LineName(c, e);
    p.series[series_of[key]].pts.push_back(q);
  }
  return p;
}

// ---- line plots: along the layers, along the text, over the error values ----

// The cells the line plots show: all when few, else up to kMaxLines of the ΔPPL front, spread evenly.
std::vector<const CellInfo*> LineCells(const ExperimentInfo& e) {
  std::vector<const CellInfo*> all;
  for (const auto& c : e.cells) all.push_back(&c);
  if (all.size() <= kMaxLines) return all;
  std::vector<double> xs, ys;
  std::vector<const CellInfo*> usable;
  for (const auto& c : e.cells)
    if (std::isfinite(c.bpw) && std::isfinite(c.dppl)) usable.push_back(&c), xs.push_back(c.bpw), ys.push_back(c.dppl);
  const auto f = ParetoFront(xs, ys);
  std::vector<const CellInfo*> out;
  for (size_t j = 0; j < std::min(kMaxLines, f.size()); ++j)
    out.push_back(usable[f[f.size() <= kMaxLines ? j : j * (f.size() - 1) / (kMaxLines - 1)]]);
  return out;
}

svg::Plot LinePlotBase(const std::string& id, const std::string& xl, const std::string& yl) {
  svg::Plot p;
  p.id = id;
  p.xlabel = xl;
  p.ylabel = yl;
  return p;
}

svg::Series CellLine(const CellInfo& c, const ExperimentInfo& e, size_t i) {
  svg::Series s = MakeSeries(LineName(c, e), svg::PaletteColor(i), svg::Marker(i % svg::kMarkerCount));
  s.line = true;
  s.cls = "lpt";
  return s;
}

StatusOr<svg::Plot> LayerPlot(ResultStore& store, const ExperimentInfo& e, const std::vector<const CellInfo*>& cells) {
  auto p = LinePlotBase(e.slug + "-layers", "decoder block", "relative MSE of the block output (log)");
  p.log_y = true;
  for (size_t i = 0; i < cells.size(); ++i) {
    QL_ASSIGN_OR_RETURN(SqlResult r, store.Query("SELECT layer, rel_mse FROM layer_errors WHERE cell_id = " +
                                                 Quote(cells[i]->id) + " ORDER BY layer"));
    auto s = CellLine(*cells[i], e, i);
    for (const auto& row : r.rows) {
      const double l = std::get<int64_t>(row[0]);
      const double v = std::holds_alternative<double>(row[1]) ? std::get<double>(row[1]) : NAN;
      svg::Point q = Pt(l, v);
      q.tip = fmt::format("{} block {}: {:.3e}", s.name, l, v);
      q.attrs = cells[i]->Attrs();
      s.pts.push_back(q);
    }
    p.legend.push_back({s.name, s.color, s.marker});
    if (!s.pts.empty()) p.series.push_back(std::move(s));
  }
  return p;
}

// The tensor whose mean SQNR over the experiment's cells is lowest: where quantization hurts most.
StatusOr<std::string> WorstTensor(ResultStore& store, const ExperimentInfo& e) {
  QL_ASSIGN_OR_RETURN(SqlResult r, store.Query(
      "SELECT t.tensor FROM tensor_errors t JOIN cells c ON c.id = t.cell_id WHERE t.scheme <> '' AND "
      "c.experiment_id = " + Quote(e.id) + " GROUP BY t.tensor ORDER BY avg(t.sqnr_db), t.tensor LIMIT 1"));
  return r.rows.empty() ? std::string() : SqlValueToString(r.rows[0][0]);
}

svg::Plot HistPlot(ResultStore& store, const ExperimentInfo& e, const std::vector<const CellInfo*>& cells,
                   const std::string& tensor) {
  auto p = LinePlotBase(e.slug + "-weight-error", "quantized − original weight", "density of weights (log)");
  p.title = tensor;
  p.log_y = true;
  for (size_t i = 0; i < cells.size(); ++i) {
    const auto h = OwnerArray(store, cells[i]->id, "weight_error_hist/" + tensor);
    if (h.size() < 3) continue;
    const size_t bins = h.size() - 2;
    const double lo = h[bins], hi = h[bins + 1], w = (hi - lo) / double(bins);
    double total = 0;
    for (size_t b = 0; b < bins; ++b) total += h[b];
    if (!(w > 0) || !(total > 0)) continue;
    auto s = CellLine(*cells[i], e, i);
    s.line = false, s.points = false, s.step = true;
    for (size_t b = 0; b < bins; ++b) s.pts.push_back(Pt(lo + w * double(b), h[b] / (total * w)));
    s.pts.push_back(Pt(hi, h[bins - 1] / (total * w)));
    p.legend.push_back({s.name, s.color, {}, true});
    p.series.push_back(std::move(s));
  }
  return p;
}

struct SpanRow {
  std::string cell;
  size_t start, end;
  double mean;
};

size_t NllWindow(size_t n) { return std::clamp<size_t>(n / 40, 8, 512); }

svg::Plot NllPlot(ResultStore& store, const ExperimentInfo& e, const std::vector<const CellInfo*>& cells,
                  std::vector<SpanRow>* spans) {
  auto p = LinePlotBase(e.slug + "-nll", "scored token (position in evaluation order)",
                        "rolling mean of NLL(cell) − NLL(baseline), nats");
  p.zero_line = true;
  const CellInfo* worst = nullptr;
  for (const auto* c : cells)
    if (!worst || c->dppl > worst->dppl) worst = c;
  for (size_t i = 0; i < cells.size(); ++i) {
    const auto q = OwnerArray(store, cells[i]->id, "nll"), b = OwnerArray(store, cells[i]->baseline_id, "nll");
    if (q.empty() || q.size() != b.size()) continue;
    std::vector<double> d(q.size());
    for (size_t t = 0; t < q.size(); ++t) d[t] = q[t] - b[t];
    const size_t win = NllWindow(d.size());
    const auto roll = RollingMean(d, win);
    auto s = CellLine(*cells[i], e, i);
    s.points = false;
    const size_t stride = std::max<size_t>(1, roll.size() / 600);
    for (size_t t = 0; t < roll.size(); t += stride) s.pts.push_back(Pt(double(t) + win / 2.0, roll[t]));
    p.legend.push_back({s.name, s.color, {}, true});
    p.series.push_back(std::move(s));
    if (cells[i] != worst) continue;
    for (size_t st : WorstSpans(roll, win, 3)) {
      spans->push_back({LineName(*cells[i], e), st, st + win, roll[st]});
      p.bands.push_back({double(st), double(st + win), "#f4c7c3",
                         fmt::format("tokens {}–{}: mean ΔNLL {:+.4f}", st, st + win, roll[st])});
    }
  }
  p.title = spans->empty() ? "" : "shaded: the 3 worst spans of " + spans->front().cell;
  return p;
}

// ---- tables ----

std::string HtmlTable(const SqlResult& r, const std::string& id) {
  std::string h = "<table id=\"" + Esc(id) + "\"><thead><tr>";
  for (const auto& c : r.columns) h += "<th>" + Esc(c) + "</th>";
  h += "</tr></thead><tbody>\n";
  for (const auto& row : r.rows) {
    h += "<tr>";
    for (const auto& v : row) h += "<td>" + Esc(SqlValueToString(v)) + "</td>";
    h += "</tr>\n";
  }
  return h + "</tbody></table>\n";
}

// The compare table with the data-* attributes the page's filter reads; headers sort on click.
StatusOr<std::string> CellTable(ResultStore& store, const ExperimentInfo& e) {
  QL_ASSIGN_OR_RETURN(TextTable t, CompareTable(store, {e.id, "dppl", {}}));
  auto col = [&](const std::string& key) {
    for (size_t i = 0; i < t.columns.size(); ++i) if (t.columns[i].key == key) return int(i);
    return -1;
  };
  const int cw = col("weights"), ca = col("algo"), ci = col("ignore");
  std::string h = "<table class=\"cells sortable\" id=\"cells-" + Esc(e.slug) + "\"><thead><tr>";
  for (const auto& c : t.columns)
    h += std::string("<th") + (c.numeric ? " class=\"n\"" : "") + " title=\"click to sort\">" +
         Esc(c.title.empty() ? c.key : c.title) + "</th>";
  h += "</tr></thead><tbody>\n";
  auto at = [](const std::vector<std::string>& row, int i) { return i < 0 ? std::string() : row[size_t(i)]; };
  for (const auto& row : t.rows) {
    h += "<tr data-family=\"" + Esc(FormatFamily(at(row, cw))) + "\" data-algo=\"" + Esc(at(row, ca)) +
         "\" data-ignore=\"" + Esc(at(row, ci)) + "\">";
    for (size_t i = 0; i < row.size(); ++i)
      h += (t.columns[i].numeric ? "<td class=\"n\">" : "<td>") + Esc(row[i]) + "</td>";
    h += "</tr>\n";
  }
  return h + "</tbody></table>\n";
}

StatusOr<std::string> BaselineTable(ResultStore& store, const ExperimentInfo& e) {
  QL_ASSIGN_OR_RETURN(SqlResult b, store.Query(
      "SELECT DISTINCT b.protocol, b.precision, printf('%.4f ± %.4f', b.ppl, b.ppl_err) AS ppl, b.n_tokens AS tokens, "
      "mo.path AS model, mo.n_params AS params, d.path AS data FROM cells c JOIN baselines b ON b.id = c.baseline_id "
      "LEFT JOIN models mo ON mo.id = b.model_id LEFT JOIN datasets d ON d.id = b.dataset_id WHERE c.experiment_id = " +
      Quote(e.id)));
  return HtmlTable(b, "baselines-" + e.slug);
}

StatusOr<std::string> FormatErrorTable(ResultStore& store, const ExperimentInfo& e) {
  QL_ASSIGN_OR_RETURN(SqlResult f, store.Query(
      "SELECT t.scheme AS scheme, count(DISTINCT t.cell_id) AS cells, count(*) AS tensors, "
      "printf('%.2f', avg(t.sqnr_db)) AS mean_sqnr_db, printf('%.2f', min(t.sqnr_db)) AS worst_sqnr_db, "
      "printf('%.3e', avg(t.mse)) AS mean_mse, printf('%.4f', sum(t.bits_per_weight * t.bytes) / sum(t.bytes)) AS "
      "bits_per_weight FROM tensor_errors t JOIN cells c ON c.id = t.cell_id WHERE t.scheme <> '' AND "
      "c.experiment_id = " + Quote(e.id) + " GROUP BY t.scheme ORDER BY avg(t.sqnr_db) DESC"));
  return HtmlTable(f, "format-errors-" + e.slug);
}

std::string SpanTable(const std::vector<SpanRow>& spans) {
  std::string h = "<table class=\"spans\"><thead><tr><th>cell</th><th>scored tokens</th><th>mean ΔNLL (nats)</th>"
                  "</tr></thead><tbody>\n";
  for (const auto& s : spans)
    h += fmt::format("<tr><td>{}</td><td class=\"n\">{}–{}</td><td class=\"n\">{:+.4f}</td></tr>\n", Esc(s.cell),
                     s.start, s.end, s.mean);
  return h + "</tbody></table>\n";
}

// ---- the heatmap of per-layer errors (rows = cells), margins sized to its labels ----

StatusOr<std::string> HeatmapSvg(ResultStore& store, const ExperimentInfo& e, double* w_out, double* h_out) {
  QL_ASSIGN_OR_RETURN(SqlResult r, store.Query(
      "SELECT l.cell_id, l.layer, l.rel_mse FROM layer_errors l JOIN cells c ON c.id = l.cell_id WHERE "
      "c.experiment_id = " + Quote(e.id)));
  std::map<std::string, size_t> row_of;
  for (size_t i = 0; i < e.cells.size(); ++i) row_of[e.cells[i].id] = i;
  std::map<std::pair<size_t, int>, double> v;
  int n_layers = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : r.rows) {
    auto it = row_of.find(SqlValueToString(row[0]));
    if (it == row_of.end() || !std::holds_alternative<double>(row[2])) continue;
    const int l = int(std::get<int64_t>(row[1]));
    const double x = std::get<double>(row[2]);
    n_layers = std::max(n_layers, l + 1);
    v[{it->second, l}] = x;
    if (x > 0) lo = std::min(lo, std::log10(x)), hi = std::max(hi, std::log10(x));
  }
  if (!(hi > lo)) hi = lo + 1;
  std::vector<std::string> labels;
  double lw = 0;
  for (const auto& c : e.cells) {
    labels.push_back(svg::FitTextMiddle(LineName(c, e), 11, 420));
    lw = std::max(lw, svg::TextWidth(labels.back(), 11));
  }
  const double cw = std::clamp(560.0 / std::max(1, n_layers), 10.0, 40.0), ch = 16, L = lw + 14, T = 34;
  const std::string legend = fmt::format("colour: log10 relative MSE of the block output, green {:.1e} … red {:.1e}",
                                         std::pow(10.0, lo), std::pow(10.0, hi));
  const double W = std::max(L + cw * n_layers + 16, svg::TextWidth(legend, 11) + 16), H = T + ch * e.cells.size() + 30;
  *w_out = W, *h_out = H;
  std::string s = fmt::format("<svg id=\"{}-heatmap\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" "
                              "height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" font-family=\"DejaVu Sans, Verdana, Arial, "
                              "sans-serif\">\n<rect width=\"{:.0f}\" height=\"{:.0f}\" fill=\"white\"/>\n",
                              Esc(e.slug), W, H, W, H, W, H);
  s += fmt::format("<text x=\"{:.1f}\" y=\"12\" font-size=\"11\" text-anchor=\"middle\">decoder block</text>\n",
                   L + cw * n_layers / 2);
  for (int l = 0; l < n_layers; ++l)
    if (n_layers <= 40 || l % 5 == 0)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n", L + cw * (l + 0.5),
                       T - 6, l);
  for (size_t i = 0; i < e.cells.size(); ++i) {
    s += fmt::format("<g {}><text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>", e.cells[i].Attrs(),
                     L - 6, T + ch * (i + 0.75), Esc(labels[i]));
    for (int l = 0; l < n_layers; ++l) {
      auto it = v.find({i, l});
      std::string fill = "#ddd", tip = "n/a";
      if (it != v.end() && it->second > 0) {
        const double t = (std::log10(it->second) - lo) / (hi - lo);
        fill = fmt::format("rgb({},{},60)", int(255 * std::min(1.0, 2 * t)), int(255 * std::min(1.0, 2 * (1 - t))));
        tip = fmt::format("{:.3e}", it->second);
      }
      s += fmt::format("<rect class=\"cell\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
                       "<title>{} block {}: relative MSE {}</title></rect>",
                       L + cw * l, T + ch * i, cw - 1, ch - 1, fill, Esc(e.cells[i].FullLabel()), l, tip);
    }
    s += "</g>\n";
  }
  s += fmt::format("<text x=\"8\" y=\"{:.0f}\" font-size=\"11\">{}</text>\n", H - 10, Esc(legend));
  return s + "</svg>\n";
}

// ---- page assembly ----

struct Section {
  std::string html;
  std::vector<ReportFigure> figures;
};

void AddFigure(Section& s, const svg::Plot& p, const std::string& caption) {
  double w = 0, h = 0;
  const std::string svg = svg::Render(p, &w, &h);
  s.figures.push_back({p.id, caption, svg, w, h});
  s.html += "<figure>" + svg + "<figcaption>" + Esc(caption) + "</figcaption></figure>\n";
}

std::string MetaTable(const ExperimentInfo& e) {
  std::string h = "<table class=\"meta\">";
  auto row = [&](const std::string& k, const std::string& v) { h += "<tr><th>" + k + "</th><td>" + Esc(v) + "</td></tr>"; };
  row("experiment id", e.id);
  row("created", e.created_at);
  row("code version", e.code_version);
  row("host", e.host);
  row("cells", fmt::format("{} finished, {} failed or diverged", e.cells.size(), e.n_failed));
  if (!CommonParts(e).empty()) row("every cell", CommonParts(e));
  return h + "</table>\n";
}

// Task accuracy (task_metrics rows, when the experiment has `tasks:`): for each task, convention and
// accuracy metric M, the accuracy lost against the baseline (points, baseline − cell, so lower is better
// as on the other plots) with the paired 95% interval, against bits per weight.
Status AddTaskPlots(ResultStore& store, const ExperimentInfo& e, Section& s) {
  QL_ASSIGN_OR_RETURN(SqlResult r, store.Query(
      "SELECT t.cell_id, t.task, t.convention, t.metric, t.value FROM task_metrics t JOIN cells c ON c.id = t.cell_id "
      "WHERE c.experiment_id = " + Quote(e.id) + " AND (t.metric LIKE '%\\_delta' ESCAPE '\\' OR t.metric LIKE "
      "'%\\_delta\\_lo' ESCAPE '\\' OR t.metric LIKE '%\\_delta\\_hi' ESCAPE '\\') ORDER BY t.task, t.convention, t.metric"));
  // (task, convention, M) -> cell id -> {delta, lo, hi}
  std::map<std::tuple<std::string, std::string, std::string>, std::map<std::string, std::array<double, 3>>> plots;
  const auto idx = ColumnIndex(r);
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const RowView row(r, i, idx);
    std::string metric = row.Text("metric");
    int slot = 0;
    for (const auto& [suffix, k] : {std::pair<std::string, int>{"_delta_lo", 1}, {"_delta_hi", 2}, {"_delta", 0}}) {
      if (metric.size() > suffix.size() && metric.ends_with(suffix)) {
        metric.resize(metric.size() - suffix.size()), slot = k;
        break;
      }
    }
    auto& v = plots[{row.Text("task"), row.Text("convention"), metric}]
                  .try_emplace(row.Text("cell_id"), std::array<double, 3>{NAN, NAN, NAN}).first->second;
    v[size_t(slot)] = row.Num("value");
  }
  if (plots.empty()) return Status::Ok();
  s.html += "<h3>Task accuracy</h3>\n<p>Accuracy lost against the baseline on the same items (points; above 0 the "
            "cell is worse), with the paired 95% interval; the store's task_metrics rows carry McNemar's p and the "
            "flips (docs/tasks.md).</p>\n";
  for (const auto& [key, by_cell] : plots) {
    const auto& [task, convention, metric] = key;
    ExperimentInfo t = e;
    t.cells.clear();
    for (CellInfo c : e.cells) {
      const auto it = by_cell.find(c.id);
      if (it == by_cell.end() || !std::isfinite(it->second[0])) continue;
      c.dppl = -100 * it->second[0], c.dppl_lo = -100 * it->second[2], c.dppl_hi = -100 * it->second[1];
      t.cells.push_back(std::move(c));
    }
    if (t.cells.empty()) continue;
    const std::string id = "task-" + Slug(task + "-" + convention + "-" + metric);
    AddFigure(s, ScatterPlot(t, {id, task + " " + metric + " lost, points (" + convention + ")", false, &CellInfo::dppl,
                                 &CellInfo::dppl_lo, &CellInfo::dppl_hi}),
              e.name + ": " + task + " " + metric + " (" + convention + ") lost against the baseline, by bits per "
                                                             "weight (error bars: paired 95% interval)");
  }
  return Status::Ok();
}

StatusOr<Section> RenderExperiment(ResultStore& store, const ExperimentInfo& e, size_t k) {
  Section s;
  s.html = fmt::format("<section class=\"experiment\" id=\"exp-{}\"><h2>{}. {}</h2>\n", k + 1, k + 1, Esc(e.name));
  s.html += MetaTable(e);
  if (!e.config.empty()) s.html += "<details><summary>experiment file</summary><pre>" + Esc(e.config) + "</pre></details>\n";
  QL_ASSIGN_OR_RETURN(std::string bt, BaselineTable(store, e));
  s.html += "<h3>Baseline</h3>\n" + bt;
  QL_ASSIGN_OR_RETURN(std::string sens, SensitivitySection(store, e.id, e.slug, &s.figures));
  s.html += sens;
  QL_ASSIGN_OR_RETURN(std::string frontier, SearchFrontierSection(store, e.id, e.name, e.slug, &s.figures));
  s.html += frontier;
  s.html += "<h3>Quality against size</h3>\n<p>Each point is a cell, with its paired 95% interval; labelled points "
            "are on the Pareto front (no other cell is both smaller and better). Hover a point for its numbers.</p>\n";
  AddFigure(s, ScatterPlot(e, {"dppl", "ΔPPL against the baseline", false, &CellInfo::dppl, &CellInfo::dppl_lo,
                               &CellInfo::dppl_hi}),
            e.name + ": ΔPPL against bits per weight (error bars: paired 95% interval)");
  AddFigure(s, ScatterPlot(e, {"kld", "mean KL divergence, nats/token (log)", true, &CellInfo::kld, &CellInfo::kld_lo,
                               &CellInfo::kld_hi}),
            e.name + ": mean KLD(baseline ‖ cell) against bits per weight (error bars: 95% interval of the mean "
                     "over tokens)");
  QL_RETURN_IF_ERROR(AddTaskPlots(store, e, s));
  const auto lines = LineCells(e);
  const std::string which = lines.size() < e.cells.size() ? " (the cells on the ΔPPL Pareto front)" : "";
  QL_ASSIGN_OR_RETURN(svg::Plot layers, LayerPlot(store, e, lines));
  s.html += "<h3>Per-layer output error</h3>\n";
  AddFigure(s, layers, e.name + ": relative MSE of each decoder block's output against the baseline's" + which);
  double hw = 0, hh = 0;
  QL_ASSIGN_OR_RETURN(std::string heat, HeatmapSvg(store, e, &hw, &hh));
  s.figures.push_back({e.slug + "-heatmap", e.name + ": per-layer error, every cell", heat, hw, hh});
  s.html += "<figure>" + heat + "<figcaption>every cell, per block</figcaption></figure>\n";
  QL_ASSIGN_OR_RETURN(std::string tensor, WorstTensor(store, e));
  s.html += "<h3>Weight error</h3>\n";
  if (!tensor.empty())
    AddFigure(s, HistPlot(store, e, lines, tensor),
              e.name + ": distribution of the weight error of " + tensor + ", the tensor with the lowest mean SQNR" + which);
  QL_ASSIGN_OR_RETURN(std::string fe, FormatErrorTable(store, e));
  s.html += fe;
  std::vector<SpanRow> spans;
  s.html += "<h3>Along the text</h3>\n<p>Where the quantized model loses: the rolling mean of the per-token NLL "
            "difference over the scored tokens. The store keeps token positions, not the text, so the worst spans "
            "are given as positions.</p>\n";
  AddFigure(s, NllPlot(store, e, lines, &spans), e.name + ": per-token NLL difference along the text" + which);
  s.html += SpanTable(spans);
  QL_ASSIGN_OR_RETURN(std::string cells, CellTable(store, e));
  s.html += "<h3>All cells</h3>\n" + cells + "</section>\n";
  return s;
}

std::string FilterBar(const std::vector<ExperimentInfo>& exps) {
  std::map<std::string, std::set<std::string>> values;
  for (const auto& e : exps)
    for (const auto& c : e.cells) values["family"].insert(c.family), values["algo"].insert(c.algo), values["ignore"].insert(c.ignore);
  std::string h = "<div id=\"filters\">Show only: ";
  const std::pair<const char*, const char*> keys[] = {{"family", "format family"}, {"algo", "algorithm"}, {"ignore", "ignore set"}};
  for (const auto& [key, name] : keys) {
    h += fmt::format("<label>{} <select class=\"filter\" data-key=\"{}\"><option value=\"\">all</option>", name, key);
    for (const auto& v : values[key]) h += "<option>" + Esc(v) + "</option>";
    h += "</select></label> ";
  }
  return h + "<span id=\"shown\"></span> <noscript>(filters and sorting need JavaScript)</noscript></div>\n";
}

// Filters (select boxes, or the URL's #family=..&algo=..&ignore=..) hide table rows, plot points and
// their labels; clicking a header sorts its table. No network, no libraries.
constexpr const char* kScript = R"JS(
(function () {
  var sels = Array.prototype.slice.call(document.querySelectorAll('select.filter'));
  function current() {
    var f = {};
    sels.forEach(function (s) { if (s.value) f[s.dataset.key] = s.value; });
    return f;
  }
  function apply() {
    var f = current(), shown = 0, total = 0;
    document.querySelectorAll('[data-family]').forEach(function (el) {
      var ok = true;
      for (var k in f) if (el.dataset[k] !== f[k]) ok = false;
      el.style.display = ok ? '' : 'none';
      if (el.tagName === 'TR') { total++; if (ok) shown++; }
      if (el.id) document.querySelectorAll('[data-for="' + el.id + '"]').forEach(function (l) {
        l.style.display = ok ? '' : 'none';
      });
    });
    document.getElementById('shown').textContent = shown + ' of ' + total + ' cells shown';
    var h = Object.keys(f).map(function (k) { return k + '=' + encodeURIComponent(f[k]); }).join('&');
    if (('#' + h) !== location.hash && (h || location.hash)) history.replaceState(null, '', h ? '#' + h : location.pathname);
  }
  location.hash.slice(1).split('&').forEach(function (kv) {
    var p = kv.split('=');
    sels.forEach(function (s) {
      if (s.dataset.key !== p[0]) return;
      var v = decodeURIComponent(p[1] || '');
      if (!Array.prototype.some.call(s.options, function (o) { return o.value === v; })) s.add(new Option(v, v));
      s.value = v;
    });
  });
  sels.forEach(function (s) { s.addEventListener('change', apply); });
  function key(td) {
    var t = td ? td.textContent : '', x = parseFloat(t.replace(/^\[/, ''));
    return isNaN(x) ? t : x;
  }
  document.querySelectorAll('table.sortable').forEach(function (tab) {
    tab.querySelectorAll('th').forEach(function (th, i) {
      th.addEventListener('click', function () {
        var asc = th.dataset.dir !== 'asc', body = tab.tBodies[0];
        th.dataset.dir = asc ? 'asc' : 'desc';
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (x === '' || y === '') return (x === '') - (y === '');
          var c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === 'number' ? -1 : 1);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  apply();
})();
)JS";

constexpr const char* kStyle =
    "body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;margin:24px;max-width:1280px;color:#222}"
    "table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ccc;padding:2px 6px;"
    "text-align:left}th{background:#f4f4f4}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    "table.sortable th{cursor:pointer}h2{margin-top:40px;border-bottom:2px solid #ddd}figure{margin:12px 0}"
    "figcaption{font-size:12px;color:#555}svg.plot{border:1px solid #ddd;max-width:100%;height:auto}"
    "#filters{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ddd;font-size:13px}"
    "pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto}table.meta th{width:9em}";

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

std::string FormatFamily(const std::string& s) {
  auto starts = [&](const char* p) { return s.rfind(p, 0) == 0; };
  if (s.empty()) return "none";
  if (starts("mix") || s.find(';') != std::string::npos) return "MIX";
  if (starts("nvfp4")) return "NVFP4";
  if (starts("mx")) return "MX";
  if (starts("nf4")) return "NF4";
  if (starts("int") || starts("uint")) return "INT";
  if (starts("fp16") || starts("bf16")) return "FP16";
  if (starts("fp8") || starts("e4m3") || starts("e5m2")) return "FP8";
  if (starts("fp6")) return "FP6";
  if (starts("fp4")) return "FP4";
  if (starts("q") || starts("iq") || starts("tq")) return "GGUF";
  return s.substr(0, s.find(':'));
}

std::vector<double> RollingMean(const std::vector<double>& v, size_t window) {
  if (v.empty()) return {};
  window = std::max<size_t>(1, window);
  if (v.size() < window) {
    double s = 0;
    for (double x : v) s += x;
    return {s / double(v.size())};
  }
  std::vector<double> out(v.size() - window + 1);
  for (size_t i = 0; i < out.size(); ++i) {  // summed afresh per window: no drift from a running sum
    double s = 0;
    for (size_t j = i; j < i + window; ++j) s += v[j];
    out[i] = s / double(window);
  }
  return out;
}

std::vector<size_t> WorstSpans(const std::vector<double>& rolling, size_t window, size_t k) {
  std::vector<size_t> order(rolling.size()), out;
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rolling[a] > rolling[b]; });
  for (size_t i : order) {
    if (out.size() >= k) break;
    bool clear = true;
    for (size_t j : out) clear = clear && (i >= j + window || j >= i + window);
    if (clear) out.push_back(i);
  }
  return out;
}

StatusOr<Report> RenderReport(ResultStore& store, const ReportOptions& opt) {
  QL_ASSIGN_OR_RETURN(std::vector<ExperimentInfo> exps, LoadExperiments(store, opt));
  std::time_t now = std::time(nullptr);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  Report rep;
  std::string body;
  std::string index = "<nav><h2>Experiments</h2><ol>\n";
  for (size_t k = 0; k < exps.size(); ++k) {
    QL_ASSIGN_OR_RETURN(Section s, RenderExperiment(store, exps[k], k));
    body += s.html;
    for (auto& f : s.figures) rep.figures.push_back(std::move(f));
    index += fmt::format("<li><a href=\"#exp-{}\">{}</a> — {} finished cells, {} failed; code {}</li>\n", k + 1,
                         Esc(exps[k].name), exps[k].cells.size(), exps[k].n_failed, Esc(exps[k].code_version));
  }
  index += "</ol></nav>\n";
  std::string& h = rep.html;
  h = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + Esc(opt.title) + "</title>\n<style>" + kStyle +
      "</style></head><body>\n<h1>" + Esc(opt.title) + "</h1>\n<p>Generated " + ts + " from " + Esc(store.dir()) +
      ". One section per experiment; every number is read from the store (results/README.md).</p>\n";
  h += FilterBar(exps) + index + body;
  h += std::string("<script>") + kScript + "</script>\n</body></html>\n";
  return rep;
}

StatusOr<std::string> RenderReportHtml(ResultStore& store, const ReportOptions& opt) {
  QL_ASSIGN_OR_RETURN(Report r, RenderReport(store, opt));
  return std::move(r.html);
}

std::string FindChromium() {
  const char* path = std::getenv("PATH");
  const std::string p = path ? path : "/usr/bin:/bin";
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    size_t a = 0;
    while (a <= p.size()) {
      const size_t b = std::min(p.find(':', a), p.size());
      const std::string cand = p.substr(a, b - a) + "/" + name;
      if (b > a && access(cand.c_str(), X_OK) == 0) return cand;
      a = b + 1;
    }
  }
  return "";
}

StatusOr<std::vector<std::string>> WriteFigures(const Report& r, const std::string& dir, const std::string& chromium) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Errorf("{}: cannot create the figures directory ({})", dir, ec.message());
  std::vector<std::string> written;
  for (const auto& f : r.figures) {
    const std::string svg_path = (fs::path(dir) / (f.name + ".svg")).string();
    std::ofstream out(svg_path, std::ios::binary);
    if (!(out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" << f.svg))
      return Status::Errorf("{}: cannot write the figure", svg_path);
    out.close();
    written.push_back(svg_path);
    if (chromium.empty()) continue;
    const std::string png = (fs::path(dir) / (f.name + ".png")).string();
    const std::string cmd = fmt::format(
        "'{}' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --window-size={:.0f},{:.0f} "
        "--screenshot='{}' 'file://{}' >/dev/null 2>&1",
        chromium, std::ceil(f.width), std::ceil(f.height), png, fs::absolute(svg_path).string());
    if (std::system(cmd.c_str()) != 0 || !fs::exists(png))
      return Status::Errorf("{}: chromium could not render {} (run without PNGs: --no-png)", chromium, svg_path);
    written.push_back(png);
  }
  return written;
}

}  // namespace ql
