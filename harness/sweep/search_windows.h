// Per-window cost sums of a stored sensitivity cell, read back from its per-token "kld" or "nll" array,
// for the paired comparisons of `search`'s refinement (search_refine.h). Decision data only: the arrays
// are float32, so these sums are not the cell's metrics (those stay the store's, bitwise).
#pragma once

#include <string>
#include <vector>

#include "datasets/protocol.h"
#include "kernels/status.h"
#include "results/store.h"

namespace ql {

// Scored tokens of each window: [windows].
std::vector<int64_t> WindowTokens(const std::vector<Window>& windows);

// The windows a cell that ran `ran` of them ran, in index order (records are kept in that order): every
// window when ran >= their count, else the first `ran` of the seeded adaptive order (cell_eval.h).
std::vector<int> WindowsRan(int ran, int n_windows, int64_t seed);

// [windows] the KLD sum of each window the cell ran (NaN for the others), from its "kld" array. Empty
// when the store has no such array or its length is not the scored tokens of `ran` (a store from
// before; the search then falls back to the unpaired intervals).
std::vector<double> CellWindowKld(ResultStore& store, const std::string& cell_id, const std::vector<int64_t>& tokens,
                                  const std::vector<int>& ran);

// [windows] Σ (nll_quant − nll_base) over each window the cell ran (NaN for the others), from its "nll"
// array and the baseline's per-token NLL `base_nll` ([n] over every window, in index order: Baseline::nll).
// Empty as CellWindowKld, or when base_nll is not every window's scored tokens.
std::vector<double> CellWindowDeltaNll(ResultStore& store, const std::string& cell_id,
                                       const std::vector<int64_t>& tokens, const std::vector<int>& ran,
                                       const std::vector<double>& base_nll);

}  // namespace ql
