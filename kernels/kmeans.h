// Deterministic k-means for the codebook formats (kernels/lut.h, kernels/vq.h): exact (globally optimal)
// weighted 1-D k-means by dynamic programming, and 2-D k-means on pairs (Lloyd's iterations from a seeded
// initialisation, so that objective never increases; its trace is returned for tests). Not a format: the
// codecs round and store.
#pragma once

#include <cstdint>
#include <vector>

namespace ql {

struct KMeans1DResult {
  std::vector<double> centroids;  // [k], non-decreasing
  double objective = 0;           // Σ w_i (x_i − c_a(i))², the minimum over all assignments to k centroids
};

// Optimal weighted 1-D k-means of x [n] with weights w [n] (null: all 1; negative weights are the caller's
// error). In 1-D an optimal clustering is a partition of the sorted values into k runs, so the minimum is a
// dynamic programme over the distinct values (Wang & Song 2011, "Ckmeans.1d.dp", The R Journal 3(2)),
// D[j][i] = min_a D[j−1][a] + cost(a, i), with the optimal split monotone in i, which a divide-and-conquer
// per row of D exploits (Grønlund et al. 2017, "Fast Exact k-Means, k-Medians and Bregman Divergence
// Clustering in 1D", arXiv:1701.07204); ties take the lowest split, so the answer is deterministic.
// Lloyd's iterations from the quantiles, used before, stop at fixed points that on rows of real checkpoints
// (heavy tails, values on a Q4_1 grid) cost 1.4–5.6× this optimum. Centroid = the run's weighted mean (its
// unweighted mean when the run has no weight). Fewer than k distinct values: one centroid each, the last
// repeated. Cost O(n log n + k·m log m) for m distinct values.
KMeans1DResult KMeans1D(const float* x, const float* w, int64_t n, int k);

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
