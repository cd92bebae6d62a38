// `quantlab verify`: checks that every row of a results store points to complete, plausible arrays
// (file present, every dataset the arrays table lists present with its recorded length, lengths equal to
// the row's n_tokens / layer count, not all zero where the row's own metrics say that is impossible),
// and can re-queue broken cells so that a rerun of the sweep recomputes them.
// Not a recomputation: numbers are compared with the row that stored them, not with a new evaluation.
#pragma once

#include <string>
#include <vector>

#include "kernels/status.h"
#include "results/store.h"

namespace ql {

struct VerifyProblem {
  std::string owner;  // cell or baseline id
  std::string kind;   // "cell", "baseline" or "orphan" (an arrays row whose owner has no row)
  std::string what;   // one line: which array, what is wrong
};

struct VerifyReport {
  int64_t cells = 0, baselines = 0, arrays = 0;  // rows checked
  std::vector<VerifyProblem> problems;
  bool ok() const { return problems.empty(); }
};

StatusOr<VerifyReport> VerifyStore(ResultStore& store);

// Deletes every broken cell (its row, metrics, errors, arrays rows and .h5 file) and every broken
// baseline, in one transaction, so the next `quantlab sweep` computes them again. Needs a writer store.
// Returns how many owners were removed.
StatusOr<int64_t> RequeueBroken(ResultStore& store, const VerifyReport& report);

}  // namespace ql
