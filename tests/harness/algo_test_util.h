// Helpers shared by the algorithm tests (tests/harness/algo_*_test.cc): deterministic random data,
// layer output error, a small model with outlier activation channels. Test-only.
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "harness/quant/calibration.h"

namespace ql::testing {

inline std::vector<float> Gaussian(size_t n, uint64_t seed, float std = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, std);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Σ_t Σ_o (x_t · (w_o − q_o))²: the layer output error on inputs x [T, in] (plain loops, double).
inline double OutputError(const std::vector<float>& x, int T, int in, const std::vector<float>& w,
                          const std::vector<float>& q, int out) {
  double e = 0;
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int j = 0; j < in; ++j) s += double(x[size_t(t) * in + j]) * (double(w[size_t(o) * in + j]) - q[size_t(o) * in + j]);
      e += s * s;
    }
  return e;
}

// The QLoRA tests' model shape (tied head, 2 layers, GQA 4:2), small enough for finite differences.
inline ModelConfig LoraTinyConfig() {
  ModelConfig c;
  c.dim = 8, c.hidden_dim = 12, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 2;
  c.vocab_size = 11, c.max_seq_len = 8, c.tied_embeddings = true;
  return c;
}

// Stories260K-shaped random model whose residual stream carries a few large channels (embedding
// columns 3, 17, 40 scaled by 30), as trained LLMs do.
inline Model OutlierModel(ModelConfig c = Stories260KConfig(), uint64_t seed = 7) {
  Model m = RandomModel(c, seed);
  Tensor& e = m.W("model.embed_tokens.weight");
  for (int64_t v = 0; v < e.rows(); ++v)
    for (int j : {3, 17, 40})
      if (j < c.dim) e.data[v * c.dim + j] *= 30.0f;
  return m;
}

inline CalibrationSet RandomCalibration(int vocab, int samples, int seqlen, uint64_t seed) {
  CalibrationSet c;
  c.source = "random tokens";
  std::mt19937_64 rng(seed);
  for (int i = 0; i < samples; ++i) {
    std::vector<int> w(seqlen);
    for (auto& t : w) t = int(rng() % uint64_t(vocab));
    c.windows.push_back(w);
  }
  return c;
}

// Mean squared logit difference between two models over the windows.
inline double LogitMse(const Model& a, const Model& b, const CalibrationSet& calib, const ForwardHooks* hb = nullptr) {
  double s = 0;
  size_t n = 0;
  for (const auto& w : calib.windows) {
    std::vector<float> la(w.size() * a.config.vocab_size), lb(la.size());
    QL_CHECK(ForwardWindow(a, w, la.data()).ok(), "forward a");
    QL_CHECK(ForwardWindow(b, w, lb.data(), hb).ok(), "forward b");
    for (size_t i = 0; i < la.size(); ++i) s += double(la[i] - lb[i]) * (la[i] - lb[i]);
    n += la.size();
  }
  return s / double(n);
}

}  // namespace ql::testing
