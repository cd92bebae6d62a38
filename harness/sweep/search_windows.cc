// Per-window KLD and NLL-difference sums of a stored cell (see search_windows.h).
#include "harness/sweep/search_windows.h"

#include <algorithm>
#include <cmath>
#include <optional>

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

namespace {

// The cell's per-token array `name` when it has one for exactly the scored tokens of `ran`.
std::optional<std::vector<float>> RanArray(ResultStore& store, const std::string& cell_id, const std::string& name,
                                           const std::vector<int64_t>& tokens, const std::vector<int>& ran) {
  auto r = store.Query("SELECT h5_file FROM arrays WHERE owner_id = '" + cell_id + "' AND name = '" + name + "'");
  if (!r.ok() || r->rows.empty()) return std::nullopt;
  auto k = ReadH5Array(store.dir() + "/" + SqlValueToString(r->rows[0][0]), name);
  if (!k.ok()) return std::nullopt;
  int64_t need = 0;
  for (int w : ran) need += tokens[size_t(w)];
  if (int64_t(k->size()) != need) return std::nullopt;
  return std::move(*k);
}

// Offsets of each window's first scored token in the concatenation of every window: [windows].
std::vector<int64_t> WindowOffsets(const std::vector<int64_t>& tokens) {
  std::vector<int64_t> at(tokens.size(), 0);
  for (size_t w = 1; w < tokens.size(); ++w) at[w] = at[w - 1] + tokens[w - 1];
  return at;
}

}  // namespace

std::vector<double> CellWindowKld(ResultStore& store, const std::string& cell_id, const std::vector<int64_t>& tokens,
                                  const std::vector<int>& ran) {
  const auto k = RanArray(store, cell_id, "kld", tokens, ran);
  if (!k) return {};
  std::vector<double> out(tokens.size(), std::nan(""));
  size_t at = 0;
  for (int w : ran) {
    double s = 0;
    for (int64_t i = 0; i < tokens[size_t(w)]; ++i) s += double((*k)[at++]);
    out[size_t(w)] = s;
  }
  return out;
}

std::vector<double> CellWindowDeltaNll(ResultStore& store, const std::string& cell_id,
                                       const std::vector<int64_t>& tokens, const std::vector<int>& ran,
                                       const std::vector<double>& base_nll) {
  const auto q = RanArray(store, cell_id, "nll", tokens, ran);
  const std::vector<int64_t> first = WindowOffsets(tokens);
  if (!q || tokens.empty() || first.back() + tokens.back() != int64_t(base_nll.size())) return {};
  std::vector<double> out(tokens.size(), std::nan(""));
  size_t at = 0;
  for (int w : ran) {
    double s = 0;
    for (int64_t i = 0; i < tokens[size_t(w)]; ++i) s += double((*q)[at++]) - base_nll[size_t(first[size_t(w)] + i)];
    out[size_t(w)] = s;
  }
  return out;
}

}  // namespace ql
