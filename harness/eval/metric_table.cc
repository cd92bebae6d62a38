// The metric descriptors (see metric_table.h). One row per metric; its getter reads CellMeasurements.
#include "harness/eval/metric_table.h"

#include <string>

#include <fmt/format.h>

#include "kernels/status.h"

namespace ql {
namespace {

using M = const CellMeasurements&;
using O = std::optional<double>;
constexpr MetricType R = MetricType::kReal, I = MetricType::kInteger;

}  // namespace

const std::vector<MetricDef>& MetricTable() {
  static const std::vector<MetricDef> kTable = {
      {"n_tokens", I, "tokens", "scored tokens (the protocol's targets)", [](M m) -> O { return double(m.cmp.n); }},
      {"ppl", R, "", "perplexity of the cell on the scored tokens", [](M m) -> O { return m.cmp.quant.ppl; }},
      {"ppl_err", R, "", "its standard error (delta method)", [](M m) -> O { return m.cmp.quant.ppl_err; }},
      {"ppl_base", R, "", "the baseline's perplexity on the same tokens", [](M m) -> O { return m.cmp.base.ppl; }},
      {"dppl", R, "", "ppl - ppl_base", [](M m) -> O { return m.cmp.delta.dppl; }},
      {"dppl_lo", R, "", "lower end of the paired 95% interval of dppl", [](M m) -> O { return m.cmp.delta.dppl_lo; }},
      {"dppl_hi", R, "", "upper end of the paired 95% interval of dppl", [](M m) -> O { return m.cmp.delta.dppl_hi; }},
      {"ppl_ratio", R, "", "ppl / ppl_base (= exp of the mean per-token NLL difference)",
       [](M m) -> O { return m.cmp.delta.ratio; }},
      {"ppl_ratio_lo", R, "", "lower end of the paired 95% interval of ppl_ratio", [](M m) -> O { return m.cmp.delta.ratio_lo; }},
      {"ppl_ratio_hi", R, "", "upper end of the paired 95% interval of ppl_ratio", [](M m) -> O { return m.cmp.delta.ratio_hi; }},
      {"ln_ppl_ratio_se", R, "nats/token", "paired standard error of ln(ppl_ratio)", [](M m) -> O { return m.cmp.delta.se_diff; }},
      {"nll_correlation", R, "", "Pearson correlation of the per-token NLLs of cell and baseline",
       [](M m) -> O { return m.cmp.delta.correlation; }},
      {"kld_mean", R, "nats/token", "mean KL(base || cell) over scored tokens", [](M m) -> O { return m.cmp.kld.mean; }},
      {"kld_se", R, "nats/token", "standard error of kld_mean", [](M m) -> O { return m.cmp.kld.se; }},
      {"kld_median", R, "nats/token", "median per-token KLD", [](M m) -> O { return m.cmp.kld.median; }},
      {"kld_p99", R, "nats/token", "99th percentile of per-token KLD", [](M m) -> O { return m.cmp.kld.P(0.99); }},
      {"kld_max", R, "nats/token", "largest per-token KLD", [](M m) -> O { return m.cmp.kld.max; }},
      {"top1", R, "fraction", "tokens whose argmax agrees with the baseline's", [](M m) -> O { return m.cmp.top1; }},
      {"top1_se", R, "fraction", "binomial standard error of top1", [](M m) -> O { return m.cmp.top1_se; }},
      {"dp_mean", R, "probability", "mean of p_cell(correct) - p_base(correct)", [](M m) -> O { return m.cmp.p_diff.mean; }},
      {"dp_rms", R, "probability", "RMS of p_cell(correct) - p_base(correct)", [](M m) -> O { return m.cmp.p_diff.rms; }},
      {"bits_per_weight", R, "bits", "quantized tensors as stored (scales and zero points included) per element",
       [](M m) -> O { return m.quant_numel > 0 ? O(double(m.quant_bits) / double(m.quant_numel)) : std::nullopt; }},
      {"model_bytes", I, "bytes", "the whole model as stored (unquantized tensors at the baseline precision)",
       [](M m) -> O { return double(m.model_bytes); }},
      {"eval_windows", I, "windows", "evaluation windows the metrics cover (all but for adaptive sensitivity units)",
       [](M m) -> O { return m.eval_windows > 0 ? O(double(m.eval_windows)) : std::nullopt; }},
  };
  return kTable;
}

int MetricIndex(std::string_view name) {
  const auto& t = MetricTable();
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i].name == name) return int(i);
  return -1;
}

MetricValues::MetricValues() : values(MetricTable().size()) {}

void MetricValues::Set(std::string_view name, double v) {
  const int i = MetricIndex(name);
  QL_CHECK(i >= 0, "no metric named '{}'", name);
  values[size_t(i)] = v;
}

std::optional<double> MetricValues::Get(std::string_view name) const {
  const int i = MetricIndex(name);
  QL_CHECK(i >= 0 && size_t(i) < values.size(), "no metric named '{}'", name);
  return values[size_t(i)];
}

MetricValues ComputeMetrics(const CellMeasurements& m) {
  MetricValues v;
  const auto& table = MetricTable();
  for (size_t i = 0; i < table.size(); ++i) v.values[i] = table[i].get(m);
  return v;
}

std::string MetricTableMarkdown() {
  std::string s = "| metric | type | unit | meaning |\n|---|---|---|---|\n";
  for (const MetricDef& d : MetricTable())
    s += fmt::format("| `{}` | {} | {} | {} |\n", d.name, d.type == MetricType::kInteger ? "integer" : "real",
                     d.unit.empty() ? "-" : std::string(d.unit), d.doc);
  return s;
}

}  // namespace ql
