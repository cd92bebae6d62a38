// Prefix reuse and adaptive evaluation of one cell (see cell_eval.h).
#include "harness/sweep/cell_eval.h"

#include <algorithm>
#include <cmath>

#include "harness/eval/evaluator.h"
#include "harness/quant/quant_util.h"
#include "harness/sweep/window_records.h"

namespace ql {

int FirstChangedBlock(const Model& work, const CellPlan& p, const AlgorithmRuntime& runtime) {
  if (runtime.linear_input || runtime.residual_to_model_basis) return 0;
  return FirstPlannedBlock(work, p);
}

namespace {
// FirstPlannedBlock, or -1 when the cell may change something before its first quantized block.
int PlannedStart(const Model& work, const CellPlan& p) {
  if (!p.algorithm->changes_only_targets) return -1;
  if (p.kv_cache || p.attn_q || p.attn_p) return -1;
  const int L = work.config.n_layers;
  int first = L;
  for (const auto& [m, sc] : p.module_schemes) {
    const std::string wn = WeightKey(work, m);
    const int layer = ModuleLayer(wn);
    if (layer >= 0) first = std::min(first, layer);
    else if (wn != "lm_head.weight") return -1;  // the embedding (a tied head), or anything unknown
  }
  return first;
}
}  // namespace

int FirstPlannedBlock(const Model& work, const CellPlan& p) { return std::max(0, PlannedStart(work, p)); }

bool OnlyMlpChangesAt(const Model& work, const CellPlan& p, int first) {
  if (first >= work.config.n_layers) return false;
  for (const auto& [m, sc] : p.module_schemes)
    if (ModuleLayer(WeightKey(work, m)) == first && m.find(".mlp.") == std::string::npos) return false;
  return true;
}

PrefixStart CellPrefixStart(const Session& s, const Model& work, const CellPlan& p, const AlgorithmRuntime* runtime) {
  if (!s.prefix) return {};
  if (runtime && (runtime->linear_input || runtime->residual_to_model_basis)) return {};
  const int first = PlannedStart(work, p);
  if (first < 0) return {};
  if (s.prefix->MlpKept(first) && OnlyMlpChangesAt(work, p, first)) return {first, true};
  return {s.prefix->StartAtOrBelow(first), false};
}

std::vector<int> AdaptiveOrder(int n, int64_t seed) {
  uint64_t state = uint64_t(seed) ^ 0x5eed5eed5eed5eedULL;
  auto next = [&state] {  // SplitMix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<int> order(size_t(std::max(0, n)));
  for (int i = 0; i < n; ++i) order[size_t(i)] = i;
  for (int i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(next() % uint64_t(i + 1))]);
  return order;
}

WindowRatio RatioOverWindows(const std::vector<double>& sum, const std::vector<int64_t>& tokens, int n_total) {
  const size_t n = sum.size();
  QL_CHECK(n >= 2 && tokens.size() == n, "{} window sums, {} token counts", n, tokens.size());
  double k = 0, t = 0;
  for (size_t i = 0; i < n; ++i) k += sum[i], t += double(tokens[i]);
  WindowRatio w;
  if (t <= 0) return w;
  w.r = k / t;
  const double t_mean = t / double(n);
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += (sum[i] - w.r * double(tokens[i])) * (sum[i] - w.r * double(tokens[i]));
  w.se = std::sqrt(std::max(0.0, 1 - double(n) / n_total) / double(n) * ss / double(n - 1)) / t_mean;
  return w;
}

bool AdaptiveStop(const AdaptiveSpec& a, const WindowSums& sums, int n_total) {
  const size_t n = sums.kld.size();
  if (int(n) >= n_total) return true;
  if (a.windows > 0) return int(n) >= a.windows;
  if (int(n) < a.min_windows) return false;
  double t = 0;
  for (int64_t v : sums.tokens) t += double(v);
  if (t <= 0) return false;
  const WindowRatio kld = RatioOverWindows(sums.kld, sums.tokens, n_total);
  const bool kld_known = kld.se <= a.rel_se * kld.r || (a.threshold >= 0 && std::fabs(kld.r - a.threshold) >= a.z * kld.se);
  if (!kld_known || !a.DnllRule()) return kld_known;
  QL_CHECK(sums.dnll.size() == n, "the ΔNLL rule needs every window's NLL-difference sum");
  const WindowRatio d = RatioOverWindows(sums.dnll, sums.tokens, n_total);
  return d.se <= std::max(a.dnll_rel_se * std::fabs(d.r), a.dnll_se);
}

bool AdaptiveStop(const AdaptiveSpec& a, const std::vector<double>& kld_sum, const std::vector<int64_t>& tokens,
                  int n_total) {
  QL_CHECK(!a.DnllRule(), "the ΔNLL rule needs the windows' NLL-difference sums (WindowSums)");
  return AdaptiveStop(a, WindowSums{kld_sum, {}, tokens}, n_total);
}

StatusOr<WindowRecords> EvaluateReusingPrefix(const Session& s, const Model& work, const CellPlan& p,
                                     const AlgorithmRuntime& runtime, const ForwardHooks& hooks) {
  WindowPlan plan;
  if (s.prefix) {
    plan.prefix = s.prefix.get();
    const PrefixStart start = CellPrefixStart(s, work, p, &runtime);
    plan.start_block = start.block, plan.start_mlp = start.mlp;
  }
  const std::string records = WindowRecordsPath(s, *p.cell);
  KnownWindows known;
  if (!records.empty()) {  // adaptive or not: a known window's records are what running it gives
    known = ReadWindowRecords(records, s.windows);
    plan.known = &known;
  }
  if (const std::optional<AdaptiveSpec>& a = p.cell->adaptive) {
    const int n = int(s.windows.size());
    plan.order = AdaptiveOrder(n, s.experiment->seed);
    plan.stop = [a = *a, n](const WindowSums& sums) { return AdaptiveStop(a, sums, n); };
  }
  QL_ASSIGN_OR_RETURN(WindowRecords out, EvaluateWindows(work, s.windows, *s.base, &hooks, plan));
  if (s.window_tally) s.window_tally->evaluated += out.windows - out.reused, s.window_tally->taken += out.reused;
  const int had = int(std::count_if(known.begin(), known.end(), [](const auto& k) { return k.has_value(); }));
  if (p.cell->adaptive && !records.empty() && out.windows > had) {  // never replace a file holding more
    std::vector<int> ran(plan.order.begin(), plan.order.begin() + out.windows);
    std::sort(ran.begin(), ran.end());
    QL_RETURN_IF_ERROR(WriteWindowRecords(records, s.windows, ran, out.records));
  }
  return out;
}

std::string WindowRecordsPath(const Session& s, const Cell& cell) {
  if (s.window_records_dir.empty()) return "";
  Cell full = cell;
  full.adaptive.reset();
  return s.window_records_dir + "/" + DescribeCell(s, full).id + ".qlwr";
}

StatusOr<std::vector<SignalError>> CellLayerErrors(const Session& s, const Model& work, const CellPlan& p,
                                                   const AlgorithmRuntime& runtime, const ForwardHooks& hooks) {
  const int k = s.prefix ? FirstChangedBlock(work, p, runtime) : 0;
  if (k == 0)
    return LayerOutputErrors(s.reference, work, s.windows, s.experiment->layer_error_windows, &hooks,
                             runtime.residual_to_model_basis);
  return LayerOutputErrorsFrom(s.reference, work, s.windows, s.experiment->layer_error_windows, &hooks, *s.prefix, k);
}

namespace {
std::string SchemeText(const std::optional<Scheme>& s) { return s ? ToString(*s) : std::string("-"); }
}  // namespace

std::optional<BodyKey> CellBodyKey(const Session& s, const Model& work, const CellPlan& p,
                                   const AlgorithmRuntime& runtime) {
  if (runtime.linear_input || runtime.residual_to_model_basis || s.prefix || p.cell->adaptive) return std::nullopt;
  BodyKeyBuilder k;
  const int matmul = int(work.matmul);
  k.Add(&matmul, sizeof matmul);
  for (const auto& [name, t] : work.weights) {  // std::map: name order
    if (name == "lm_head.weight" || name == "model.norm.weight") continue;  // read from the final norm on
    k.Add(name);
    k.Add(t.shape.data(), t.shape.size() * sizeof(t.shape[0]));
    k.AddFloats(t.data);
  }
  k.Add("activations " + SchemeText(p.activations));
  if (p.activations)
    for (const auto& [m, sc] : p.module_schemes)
      if (m != "lm_head") k.Add(m);
  for (const auto& [m, type] : p.llamacpp_act)
    if (m != "lm_head") k.Add(fmt::format("llamacpp {} {}", m, int(type)));
  k.Add("kv " + SchemeText(p.kv_cache) + " q " + SchemeText(p.attn_q) + " p " + SchemeText(p.attn_p));
  return k.Key();
}

std::string PlannedBodyGroup(const CellPlan& p) {
  std::string g = p.cell->algorithm.name + " " + p.cell->algorithm.params.dump();
  for (const auto& [m, sc] : p.module_schemes)
    if (m != "lm_head") g += "|" + m + "=" + sc;
  g += "|a " + SchemeText(p.activations) + (p.llamacpp_act.empty() ? "" : " llamacpp");
  g += "|kv " + SchemeText(p.kv_cache) + " q " + SchemeText(p.attn_q) + " p " + SchemeText(p.attn_p);
  return g + (p.cell->adaptive ? "|adaptive" : "");
}

double CellWork(const Session& s, const CellPlan& p) {
  const Model& m = s.reference;
  std::vector<double> block(size_t(std::max(0, m.config.n_layers)), 0.0);  // (n_layers) weights per block
  double head = 0;
  for (const auto& [name, w] : m.weights) {
    const int layer = ModuleLayer(name);
    if (layer >= 0 && layer < int(block.size())) block[size_t(layer)] += double(w.numel());
    else if (name == "lm_head.weight" || (name == "model.embed_tokens.weight" && !m.Has("lm_head.weight")))
      head += double(w.numel());
  }
  const PrefixStart start = CellPrefixStart(s, m, p, nullptr);
  double run = head;
  for (size_t l = size_t(start.block); l < block.size(); ++l) run += block[l];
  if (start.mlp)  // block k's attention is skipped
    for (const auto& [name, w] : m.weights)
      if (ModuleLayer(name) == start.block && name.find(".self_attn.") != std::string::npos) run -= double(w.numel());
  return run;
}

size_t CellsEta::Plan(double work, bool adaptive) {
  cells_.push_back({work, adaptive, false});
  return cells_.size() - 1;
}

void CellsEta::Skip(size_t i) { cells_[i].done = true; }

void CellsEta::Ran(size_t i, double seconds_fixed, double seconds_eval, double window_fraction) {
  Planned& c = cells_[i];
  c.done = true;
  ++ran_;
  fixed_ += seconds_fixed, eval_ += seconds_eval, eval_work_ += c.work * window_fraction;
  fraction_sum_[c.adaptive] += window_fraction, ++fraction_n_[c.adaptive];
}

double CellsEta::SecondsLeft() const {
  if (ran_ == 0) return 0;
  const double rate = eval_work_ > 0 ? eval_ / eval_work_ : 0;  // evaluation seconds per unit of work
  double left = 0;
  for (const Planned& c : cells_) {
    if (c.done) continue;
    const int k = c.adaptive;
    const double fraction = fraction_n_[k] ? fraction_sum_[k] / fraction_n_[k] : 1.0;
    left += fixed_ / ran_ + rate * c.work * fraction;
  }
  return left;
}

}  // namespace ql
