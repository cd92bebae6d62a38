// Deterministic k-means for the codebook formats (kernels/lut.h, kernels/vq.h): weighted 1-D k-means with
// quantile initialisation, and 2-D k-means on pairs with seeded initialisation. Lloyd's iterations, so the
// objective never increases; the traces are returned for tests. Not a format: the codecs round and store.
#pragma once

#include <cstdint>
#include <vector>

namespace ql {

struct KMeans1DResult {
  std::vector<double> centroids;  // [k], non-decreasing
  std::vector<double> objective;  // Σ w_i (x_i − c_a(i))² after each assignment step, in order
};

// Weighted 1-D k-means of x [n] with weights w [n] (null: all 1; negative weights are the caller's error).
// Init: the (j + 1/2)/k quantiles of the sorted x. Each iteration assigns every x to its nearest centroid
// (the centroids stay sorted, so clusters are runs of the sorted x, split at midpoints) and moves every
// centroid with positive weight to its cluster's weighted mean. Stops when no assignment changes or after
// max_iters. Cost O(n log n + iters·k log n).
KMeans1DResult KMeans1D(const float* x, const float* w, int64_t n, int k, int max_iters);

struct KMeans2DResult {
  std::vector<double> centroids;  // [k, 2]
  std::vector<double> objective;  // Σ |p_i − c_a(i)|² after each assignment step
};

// 2-D k-means of pairs p [n, 2]. Init: k distinct-index pairs drawn by std::mt19937_64(seed) (all of them,
// repeated, when n < k). Nearest centroid by squared distance, ties to the lower index. Stops when no
// assignment changes or after max_iters. Cost O(iters·n·k).
KMeans2DResult KMeans2D(const float* p, int64_t n, int k, int max_iters, uint64_t seed);

// Index of the nearest of k centroids c [k] (1-D) / c [k, 2] (2-D) to x, the lower index on a tie; exact
// (double) distances.
uint32_t Nearest1D(const float* c, int k, float x);
uint32_t Nearest2D(const float* c, int k, float x, float y);

}  // namespace ql
