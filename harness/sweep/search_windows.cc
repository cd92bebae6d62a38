// Per-window KLD sums of a stored cell (see search_windows.h).
#include "harness/sweep/search_windows.h"

#include <algorithm>
#include <cmath>

#include "harness/sweep/cell_eval.h"
#include "results/h5_arrays.h"

namespace ql {

std::vector<int64_t> WindowTokens(const std::vector<Window>& windows) {
  std::vector<int64_t> t;
  for (const Window& w : windows) t.push_back(int64_t(w.score_end) - int64_t(w.score_begin));
  return t;
}

std::vector<int> WindowsRan(int ran, int n_windows, int64_t seed) {
  std::vector<int> w = AdaptiveOrder(n_windows, seed);
  if (ran < n_windows) w.resize(size_t(std::max(0, ran)));
  std::sort(w.begin(), w.end());
  return w;
}

std::vector<double> CellWindowKld(ResultStore& store, const std::string& cell_id, const std::vector<int64_t>& tokens,
                                  const std::vector<int>& ran) {
  auto r = store.Query("SELECT h5_file FROM arrays WHERE owner_id = '" + cell_id + "' AND name = 'kld'");
  if (!r.ok() || r->rows.empty()) return {};
  auto k = ReadH5Array(store.dir() + "/" + SqlValueToString(r->rows[0][0]), "kld");
  if (!k.ok()) return {};
  int64_t need = 0;
  for (int w : ran) need += tokens[size_t(w)];
  if (int64_t(k->size()) != need) return {};
  std::vector<double> out(tokens.size(), std::nan(""));
  size_t at = 0;
  for (int w : ran) {
    double s = 0;
    for (int64_t i = 0; i < tokens[size_t(w)]; ++i) s += double((*k)[at++]);
    out[size_t(w)] = s;
  }
  return out;
}

}  // namespace ql
