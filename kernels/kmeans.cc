// k-means for the codebook formats (see kernels/kmeans.h).
#include "kernels/kmeans.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace ql {

KMeans1DResult KMeans1D(const float* x, const float* w, int64_t n, int k, int max_iters) {
  KMeans1DResult r;
  r.centroids.assign(size_t(k), 0.0);
  if (n <= 0 || k <= 0) return r;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] < x[b]; });
  // Prefix sums over the sorted values: weight, weight·x, weight·x² ([n + 1] each).
  std::vector<double> xs(static_cast<size_t>(n)), sw(size_t(n) + 1, 0.0), swx(sw), swxx(sw);
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[order[i]], wi = w ? double(w[order[i]]) : 1.0;
    xs[i] = xi;
    sw[i + 1] = sw[i] + wi;
    swx[i + 1] = swx[i] + wi * xi;
    swxx[i + 1] = swxx[i] + wi * xi * xi;
  }
  for (int j = 0; j < k; ++j) r.centroids[j] = xs[size_t(std::min<int64_t>(n - 1, int64_t((j + 0.5) * n / k)))];
  std::vector<int64_t> cut(size_t(k) + 1, 0), prev;  // cluster j = sorted [cut[j], cut[j+1])
  cut[k] = n;
  for (int it = 0; it < max_iters; ++it) {
    // Assignment: x goes to the first centroid whose midpoint with the next one is >= x (ties lower).
    for (int j = 1; j < k; ++j) {
      const double mid = 0.5 * (r.centroids[j - 1] + r.centroids[j]);
      cut[j] = std::upper_bound(xs.begin(), xs.end(), mid) - xs.begin();
      cut[j] = std::max(cut[j], cut[j - 1]);
    }
    double obj = 0;
    for (int j = 0; j < k; ++j) {
      const int64_t a = cut[j], b = cut[j + 1];
      const double c = r.centroids[j], W = sw[b] - sw[a], WX = swx[b] - swx[a], WXX = swxx[b] - swxx[a];
      obj += std::max(0.0, WXX - 2 * c * WX + c * c * W);
    }
    r.objective.push_back(obj);
    if (cut == prev) break;
    prev = cut;
    // Update: weighted means (an empty or weightless cluster keeps its centroid). Means of sorted runs stay
    // sorted, so the next assignment is again by midpoints.
    for (int j = 0; j < k; ++j) {
      const double W = sw[cut[j + 1]] - sw[cut[j]];
      if (W > 0) r.centroids[j] = (swx[cut[j + 1]] - swx[cut[j]]) / W;
    }
    for (int j = 1; j < k; ++j) r.centroids[j] = std::max(r.centroids[j], r.centroids[j - 1]);
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
