// The metrics of a cell as data: one descriptor per quantity — its name (the same everywhere: SQLite
// column of `metrics`, `eval --json` key, text label, results/README.md), type, unit, a one-line doc,
// and how it is computed from a cell's measurements. The store's schema and insert, `eval`'s JSON and
// text, the sweep's progress line and the README's table all follow from MetricTable(); adding a
// metric is one row in metric_table.cc. Not the math (metrics.h) nor the storage (results/store.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/eval/metrics.h"

namespace ql {

// What a cell measured, in one place: the token-by-token comparison and the storage it takes.
struct CellMeasurements {
  ComparisonStats cmp;
  int64_t quant_bits = 0;    // bits of every quantized tensor as stored (codes + scales + zero points)
  int64_t quant_numel = 0;   // their element count
  int64_t model_bytes = 0;   // the whole model as stored (the rest at the baseline precision)
  int eval_windows = 0;      // windows evaluated (fewer than the protocol's only for adaptive cells)
};

enum class MetricType { kReal, kInteger };

struct MetricDef {
  std::string_view name;  // stored, never renamed
  MetricType type;
  std::string_view unit;  // "nats/token", "fraction", "bits", "bytes", "" (dimensionless)
  std::string_view doc;   // one line, as printed in results/README.md
  std::optional<double> (*get)(const CellMeasurements&);
};

// In column order. Names are unique (checked by the table test).
const std::vector<MetricDef>& MetricTable();
// Index of `name` in MetricTable(), or -1.
int MetricIndex(std::string_view name);

// One value per MetricTable() row; nullopt = not measured (NULL in the store).
struct MetricValues {
  MetricValues();  // every value nullopt
  std::vector<std::optional<double>> values;
  void Set(std::string_view name, double v);               // QL_CHECKs that the name exists
  std::optional<double> Get(std::string_view name) const;  // QL_CHECKs that the name exists
  double Or(std::string_view name, double fallback) const { return Get(name).value_or(fallback); }
};
MetricValues ComputeMetrics(const CellMeasurements& m);

// results/README.md's metrics table, generated: "| name | type | unit | doc |" rows.
std::string MetricTableMarkdown();

}  // namespace ql
