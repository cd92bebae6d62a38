// GPTAQ (harness/quant/gptaq.h): a two-column case worked by hand, P against its closed form
// (ΔX·X̃ᵀ)[q, F]·H_FF⁻¹ on the damped (and act-ordered) Hessian, a two-layer toy where the asymmetric objective
// ‖X·W₂ᵀ − X̃·Q₂ᵀ‖² falls below GPTQ's, and the model-level driver: alpha 0 is GPTQ bit for bit, alpha 0.25
// lowers the logit error against the fp model.
#include <cmath>
#include <cstring>
#include <vector>

#include <armadillo>
#include <gtest/gtest.h>

#include "harness/quant/algorithm.h"
#include "harness/quant/gptaq.h"
#include "harness/quant/gptq.h"
#include "harness/quant/quant_util.h"
#include "kernels/quantizer.h"
#include "tests/harness/algo_test_util.h"

namespace ql {
namespace {

using testing::Gaussian;

// One row, two columns, integer grid (int8:noscale rounds to integers), no damping, H = [[2, 1], [1, 4]].
// Column 0: 1.3 -> 1, error 0.3. GPTQ moves column 1 by 0.3·H01/H11 = 0.075: 2.39 -> 2.465 -> 2. GPTAQ adds
// α·w0·D01/H11 = α·1.3·1.0/4 = 0.08125 at α = 0.25: 2.54625 -> 3. D's second row (column 1's own asymmetry)
// does not enter: the last column gets no share of its own residual (P is strictly upper triangular).
TEST(AlgoGptaq, TwoColumnsByHand) {
  const auto scheme = ParseScheme("int8:noscale");
  ASSERT_TRUE(scheme.ok());
  const std::vector<double> h = {2, 1, 1, 4};
  GptqOptions opt;
  opt.percdamp = 0.0;
  auto f = GptqFactorize(h, 2, opt);
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto run = [&](const std::vector<double>& d, double alpha) {
    std::vector<float> w = {1.3f, 2.39f}, p;
    GptqOptions o = opt;
    if (alpha >= 0) {
      p = GptaqP(*f, d, alpha);
      o.asym_p = &p;
    }
    EXPECT_TRUE(GptqQuantizeWeight(*scheme, w.data(), 1, 2, *f, o).ok());
    return w;
  };
  const std::vector<double> d = {0.0, 1.0, 0.3, 0.7};
  EXPECT_EQ(run(d, -1), (std::vector<float>{1, 2}));    // GPTQ
  EXPECT_EQ(run(d, 0.25), (std::vector<float>{1, 3}));  // GPTAQ
  EXPECT_EQ(run(d, 0.0), (std::vector<float>{1, 2}));
  EXPECT_EQ(run({0.0, 1.0, -50.0, 90.0}, 0.25), (std::vector<float>{1, 3}));  // the second row of D is unused
  const std::vector<float> p = GptaqP(*f, d, 0.25);
  EXPECT_NEAR(p[1], 0.25 * 1.0 / 4.0, 1e-7);  // P[0, 1] = α·D01/H11
  EXPECT_EQ(p[0], 0.0f);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_EQ(p[3], 0.0f);
}

// P[q, F] = α·D[q, F]·(H_FF)⁻¹, F = the columns after q, on the damped Hessian in act_order's column order.
TEST(AlgoGptaq, PIsTheCrossCovarianceTimesTheTrailingInverse) {
  const int n = 9;
  const auto a = Gaussian(size_t(n) * 3 * n, 3);
  arma::mat A(a.size() / n, n);
  for (size_t i = 0; i < a.size(); ++i) A(i / n, i % n) = a[i] * (1.0 + (i % n) * 0.3);
  const arma::mat H = A.t() * A;
  const auto dv = Gaussian(size_t(n) * n, 4);
  std::vector<double> h(size_t(n) * n), d(dv.begin(), dv.end());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) h[size_t(i) * n + j] = H(i, j);
  for (bool act_order : {false, true}) {
    SCOPED_TRACE(act_order ? "act_order" : "in order");
    GptqOptions opt;
    opt.act_order = act_order;
    auto f = GptqFactorize(h, n, opt);
    ASSERT_TRUE(f.ok());
    const std::vector<float> p = GptaqP(*f, d, 0.5);
    arma::mat Hp(n, n), Dp(n, n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        Hp(i, j) = H(f->perm[i], f->perm[j]);
        Dp(i, j) = d[size_t(f->perm[i]) * n + f->perm[j]];
      }
    Hp.diag() += opt.percdamp * arma::mean(Hp.diag());
    for (int q = 0; q < n; ++q) {
      for (int j = 0; j <= q; ++j) EXPECT_EQ(p[size_t(q) * n + j], 0.0f) << q << "," << j;
      if (q + 1 == n) continue;
      const arma::rowvec want = 0.5 * Dp(q, arma::span(q + 1, n - 1)) * arma::inv(Hp(arma::span(q + 1, n - 1), arma::span(q + 1, n - 1)));
      for (int j = q + 1; j < n; ++j)
        EXPECT_NEAR(p[size_t(q) * n + j], want(j - q - 1), 1e-4 * (1 + std::fabs(want(j - q - 1)))) << q << "," << j;
    }
  }
}

// Two linears: X = Z·W₁ᵀ (fp), X̃ = Z·Q(W₁)ᵀ (int2 first layer). Quantizing W₂ at int3:g16, GPTAQ's ‖X·W₂ᵀ − X̃·Q₂ᵀ‖²
// is below GPTQ's, which fits W₂·X̃ instead of W₂·X.
TEST(AlgoGptaq, TwoLayerToyLowersTheAsymmetricObjective) {
  const int T = 512, k = 48, m = 64, r = 32;
  const auto z = Gaussian(size_t(T) * k, 1);
  const auto w1 = Gaussian(size_t(m) * k, 2, 0.2f);
  const auto w2 = Gaussian(size_t(r) * m, 3, 0.2f);
  std::vector<float> q1(w1.size());
  ASSERT_TRUE(FakeQuantize(*ParseScheme("int2:g16"), w1.data(), m, k, q1.data()).ok());
  auto times = [&](const std::vector<float>& x, int rows, int in, const std::vector<float>& w, int out) {
    std::vector<float> y(size_t(rows) * out, 0.0f);  // x [rows, in] · wᵀ [in, out]
    for (int t = 0; t < rows; ++t)
      for (int o = 0; o < out; ++o) {
        double s = 0;
        for (int j = 0; j < in; ++j) s += double(x[size_t(t) * in + j]) * w[size_t(o) * in + j];
        y[size_t(t) * out + o] = float(s);
      }
    return y;
  };
  const std::vector<float> x = times(z, T, k, w1, m), xq = times(z, T, k, q1, m);  // [T, m]
  std::vector<double> h(size_t(m) * m, 0.0), d(size_t(m) * m, 0.0);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j) {
        const double xi = xq[size_t(t) * m + i], xj = xq[size_t(t) * m + j];
        h[size_t(i) * m + j] += 2 * xi * xj;
        d[size_t(i) * m + j] += 2 * (x[size_t(t) * m + i] - xi) * xj;
      }
  const auto scheme = ParseScheme("int3:g16");
  GptqOptions opt;
  opt.blocksize = 16;  // several lazy batches
  auto f = GptqFactorize(h, m, opt);
  ASSERT_TRUE(f.ok());
  const std::vector<float> target = times(x, T, m, w2, r);
  auto objective = [&](double alpha) {
    std::vector<float> q = w2, p;
    GptqOptions o = opt;
    if (alpha > 0) {
      p = GptaqP(*f, d, alpha);
      o.asym_p = &p;
    }
    EXPECT_TRUE(GptqQuantizeWeight(*scheme, q.data(), r, m, *f, o).ok());
    const std::vector<float> y = times(xq, T, m, q, r);
    double e = 0;
    for (size_t i = 0; i < y.size(); ++i) e += (double(y[i]) - target[i]) * (double(y[i]) - target[i]);
    return e;
  };
  const double gptq = objective(0), gptaq = objective(0.25), gptaq1 = objective(1.0);
  EXPECT_LT(gptaq, gptq);
  EXPECT_LT(gptaq1, gptq);
  RecordProperty("objective", std::to_string(gptq) + " " + std::to_string(gptaq) + " " + std::to_string(gptaq1));
}

struct ModelCase {
  Model fp = testing::OutlierModel();
  CalibrationSet calib = testing::RandomCalibration(fp.config.vocab_size, 8, 64, 5);
  std::vector<std::pair<std::string, std::string>> ms;
  ModelCase() {
    for (const auto& m : fp.LinearModules())
      if (m != "lm_head") ms.emplace_back(m, "int3:g32");
  }
  Model Run(const char* algo, const nlohmann::json& params) {
    AlgorithmContext ctx;
    ctx.module_schemes = &ms;
    ctx.params = params;
    ctx.calibration = &calib;
    Model m = fp;
    auto info = FindAlgorithm(algo);
    EXPECT_TRUE(info.ok());
    const Status s = (*info)->apply(m, ctx);
    EXPECT_TRUE(s.ok()) << s.message();
    return m;
  }
};

TEST(AlgoGptaq, ModelLevelAlphaZeroIsGptqAndAlphaLowersTheLogitError) {
  ModelCase c;
  const Model gptq = c.Run("gptq", nlohmann::json::object());
  const Model zero = c.Run("gptaq", {{"alpha", 0.0}});
  for (const auto& [name, w] : gptq.weights)
    EXPECT_EQ(std::memcmp(w.data.data(), zero.W(name).data.data(), w.data.size() * sizeof(float)), 0) << name;
  const Model gptaq = c.Run("gptaq", nlohmann::json::object());
  const double e_gptq = testing::LogitMse(c.fp, gptq, c.calib), e_gptaq = testing::LogitMse(c.fp, gptaq, c.calib);
  EXPECT_NE(e_gptq, e_gptaq);
  EXPECT_LT(e_gptaq, e_gptq);
  RecordProperty("logit_mse", std::to_string(e_gptq) + " " + std::to_string(e_gptaq));
}

}  // namespace
}  // namespace ql
