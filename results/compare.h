// The comparison table of a results store (`quantlab compare`, the end of `quantlab sweep`): one row
// per cell with its scheme, algorithm, ignore set, bits/weight, PPL, ΔPPL with its paired 95% interval,
// KLD, top-1 and status, read from the store by column name, formatted once for every output
// (terminal, Markdown, LaTeX, CSV, JSON; results/table_format.h).
#pragma once

#include <string>
#include <vector>

#include "kernels/status.h"
#include "results/store.h"
#include "results/table_format.h"

namespace ql {

struct CompareOptions {
  std::string experiment_id;         // "" = every experiment (an `experiment` column is added when > 1)
  std::string sort = "dppl";         // dppl | kld | bits
  // Keys to show, in this order (CompareColumnKeys(), or a task column of the store by
  // TASK[.CONVENTION].METRIC, e.g. piqa.acc_norm); empty = the default set.
  std::vector<std::string> columns;
};

// The keys CompareOptions::columns may name.
const std::vector<std::string>& CompareColumnKeys();
StatusOr<TextTable> CompareTable(ResultStore& store, const CompareOptions& opt);

}  // namespace ql
