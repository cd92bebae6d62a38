// k-means for the codebook formats (see kernels/kmeans.h).
#include "kernels/kmeans.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace ql {

namespace {

// The sorted distinct values of x with their summed weights, shifted by the mean of x (k-means is
// shift-invariant; the shift keeps Σw·x² − (Σw·x)²/Σw away from cancellation), as prefix sums.
struct Runs {
  std::vector<double> v;                // [m] distinct values, ascending, unshifted
  std::vector<double> s0, s1, s2;       // [m + 1] prefix sums of weight, weight·(v − shift), weight·(v − shift)²
  std::vector<double> t1;               // [m + 1] prefix sums of (v − shift), for weightless runs
  double shift = 0;
  int64_t m() const { return int64_t(v.size()); }
  // Σ w (x − mean)² over the distinct values [a, b).
  double Cost(int64_t a, int64_t b) const {
    const double W = s0[b] - s0[a];
    if (!(W > 0)) return 0.0;
    const double S = s1[b] - s1[a];
    return std::max(0.0, (s2[b] - s2[a]) - S * S / W);
  }
  double Centroid(int64_t a, int64_t b) const {
    const double W = s0[b] - s0[a];
    if (W > 0) return shift + (s1[b] - s1[a]) / W;
    return shift + (t1[b] - t1[a]) / double(b - a);
  }
};

Runs MakeRuns(const float* x, const float* w, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] < x[b]; });
  Runs r;
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  r.shift = mean / double(n);
  std::vector<double> wv;  // [m] summed weight per distinct value
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[order[i]], wi = w ? double(w[order[i]]) : 1.0;
    if (r.v.empty() || xi != r.v.back()) r.v.push_back(xi), wv.push_back(0.0);
    wv.back() += wi;
  }
  const size_t m = r.v.size();
  r.s0.assign(m + 1, 0.0), r.s1 = r.s0, r.s2 = r.s0, r.t1 = r.s0;
  for (size_t i = 0; i < m; ++i) {
    const double d = r.v[i] - r.shift;
    r.s0[i + 1] = r.s0[i] + wv[i];
    r.s1[i + 1] = r.s1[i] + wv[i] * d;
    r.s2[i + 1] = r.s2[i] + wv[i] * d * d;
    r.t1[i + 1] = r.t1[i] + d;
  }
  return r;
}

// One row of the programme: cur[i] = min over a in [j, i) of prev[a] + cost(a, i) for i in [lo, hi), whose
// optimal a lies in [alo, ahi]; arg[i] = the lowest such a.
void DivideAndConquer(const Runs& r, const std::vector<double>& prev, std::vector<double>& cur,
                      std::vector<int64_t>& arg, int64_t j, int64_t lo, int64_t hi, int64_t alo, int64_t ahi) {
  if (lo >= hi) return;
  const int64_t mid = lo + (hi - lo) / 2;
  double best = INFINITY;
  int64_t besta = alo;
  for (int64_t a = std::max(alo, j); a <= std::min(ahi, mid - 1); ++a) {
    const double c = prev[a] + r.Cost(a, mid);
    if (c < best) best = c, besta = a;
  }
  cur[mid] = best, arg[mid] = besta;
  DivideAndConquer(r, prev, cur, arg, j, lo, mid, alo, besta);
  DivideAndConquer(r, prev, cur, arg, j, mid + 1, hi, besta, ahi);
}

}  // namespace

KMeans1DResult KMeans1D(const float* x, const float* w, int64_t n, int k) {
  KMeans1DResult r;
  r.centroids.assign(size_t(std::max(k, 0)), 0.0);
  if (n <= 0 || k <= 0) return r;
  const Runs runs = MakeRuns(x, w, n);
  const int64_t m = runs.m();
  if (m <= k) {  // every distinct value its own centroid: objective 0
    for (int j = 0; j < k; ++j) r.centroids[j] = runs.v[size_t(std::min<int64_t>(j, m - 1))];
    return r;
  }
  // D[j][i]: the least cost of the first i distinct values in j + 1 runs; split[j][i] where the last run starts.
  std::vector<double> prev(size_t(m) + 1), cur(size_t(m) + 1, INFINITY);
  std::vector<std::vector<int64_t>> split(size_t(k), std::vector<int64_t>(size_t(m) + 1, 0));
  for (int64_t i = 0; i <= m; ++i) prev[i] = runs.Cost(0, i);
  for (int j = 1; j < k; ++j) {
    std::fill(cur.begin(), cur.end(), INFINITY);
    DivideAndConquer(runs, prev, cur, split[j], j, j + 1, m + 1, j, m - 1);
    std::swap(prev, cur);
  }
  r.objective = prev[m];
  for (int64_t j = k - 1, end = m; j >= 0; --j) {
    const int64_t begin = j == 0 ? 0 : split[j][end];
    r.centroids[j] = runs.Centroid(begin, end);
    end = begin;
  }
  return r;
}

uint32_t Nearest1D(const float* c, int k, float x) {
  uint32_t best = 0;
  double bd = std::fabs(double(x) - double(c[0]));
  for (int j = 1; j < k; ++j) {
    const double d = std::fabs(double(x) - double(c[j]));
    if (d < bd) bd = d, best = uint32_t(j);
  }
  return best;
}

uint32_t Nearest2D(const float* c, int k, float x, float y) {
  uint32_t best = 0;
  double bd = INFINITY;
  for (int j = 0; j < k; ++j) {
    const double dx = double(x) - c[2 * j], dy = double(y) - c[2 * j + 1], d = dx * dx + dy * dy;
    if (d < bd) bd = d, best = uint32_t(j);
  }
  return best;
}

KMeans2DResult KMeans2D(const float* p, int64_t n, int k, int max_iters, uint64_t seed) {
  KMeans2DResult r;
  r.centroids.assign(size_t(2 * k), 0.0);
  if (n <= 0 || k <= 0) return r;
  // Init: a seeded partial Fisher-Yates over the pair indices.
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t(0));
  std::mt19937_64 rng(seed);
  for (int j = 0; j < k; ++j) {
    int64_t pick;
    if (j < n) {
      std::swap(idx[j], idx[j + int64_t(rng() % uint64_t(n - j))]);
      pick = idx[j];
    } else {
      pick = idx[j % n];
    }
    r.centroids[2 * j] = p[2 * pick];
    r.centroids[2 * j + 1] = p[2 * pick + 1];
  }
  std::vector<uint32_t> a(size_t(n), UINT32_MAX);
  std::vector<double> sx(k), sy(k), cnt(k);
  for (int it = 0; it < max_iters; ++it) {
    bool changed = false;
    double obj = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double x = p[2 * i], y = p[2 * i + 1];
      uint32_t best = 0;
      double bd = INFINITY;
      for (int j = 0; j < k; ++j) {
        const double dx = x - r.centroids[2 * j], dy = y - r.centroids[2 * j + 1], d = dx * dx + dy * dy;
        if (d < bd) bd = d, best = uint32_t(j);
      }
      changed |= a[i] != best;
      a[i] = best;
      obj += bd;
    }
    r.objective.push_back(obj);
    if (!changed) break;
    std::fill(sx.begin(), sx.end(), 0.0);
    std::fill(sy.begin(), sy.end(), 0.0);
    std::fill(cnt.begin(), cnt.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) sx[a[i]] += p[2 * i], sy[a[i]] += p[2 * i + 1], cnt[a[i]] += 1;
    for (int j = 0; j < k; ++j)
      if (cnt[j] > 0) r.centroids[2 * j] = sx[j] / cnt[j], r.centroids[2 * j + 1] = sy[j] / cnt[j];
  }
  return r;
}

}  // namespace ql
