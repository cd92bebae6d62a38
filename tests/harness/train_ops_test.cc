// Gradient checks of the trainer's ops (harness/train/train_ops.h) against central finite differences:
// for y = f(x) and a fixed random R, d(sum y*R)/dx from the op's backward must match the numerical slope.
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "harness/train/train_ops.h"
#include "kernels/ops.h"
#include "tests/kernels/random_fill.h"

namespace ql::train {
namespace {

std::vector<float> Rand(size_t n, uint32_t seed, float scale = 1.0f) {
  return ql::testing::RandomNormal(n, seed, scale);
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// Checks analytic[i] == d loss(x) / d x[i] for every element of x (central difference, step h).
void CheckGrad(const char* what, std::vector<float>* x, const std::vector<float>& analytic,
               const std::function<double()>& loss, float h = 1e-2f, double tol = 2e-3) {
  ASSERT_EQ(x->size(), analytic.size()) << what;
  for (size_t i = 0; i < x->size(); ++i) {
    const float keep = (*x)[i];
    (*x)[i] = keep + h;
    const double lp = loss();
    (*x)[i] = keep - h;
    const double lm = loss();
    (*x)[i] = keep;
    const double num = (lp - lm) / (2.0 * h);
    EXPECT_NEAR(analytic[i], num, tol * std::max(1.0, std::fabs(num))) << what << " element " << i;
  }
}

TEST(TrainOps, LinearGradients) {
  const int n = 3, in = 5, out = 4;
  auto x = Rand(n * in, 1), w = Rand(out * in, 2), r = Rand(n * out, 3);
  std::vector<float> y(n * out), dx(n * in), dw(out * in, 0.5f);  // dw starts non-zero: backward accumulates
  LinearBackward(x.data(), w.data(), r.data(), n, in, out, dx.data(), dw.data());
  for (float& v : dw) v -= 0.5f;
  auto loss = [&] {
    LinearForward(x.data(), w.data(), n, in, out, y.data());
    return Dot(y, r);
  };
  // Forward against a plain loop.
  LinearForward(x.data(), w.data(), n, in, out, y.data());
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int k = 0; k < in; ++k) s += double(x[i * in + k]) * w[o * in + k];
      EXPECT_NEAR(y[i * out + o], s, 1e-5);
    }
  CheckGrad("dx", &x, dx, loss);
  CheckGrad("dw", &w, dw, loss);
}

TEST(TrainOps, RmsNormGradients) {
  const int n = 3, d = 6;
  const float eps = 1e-5f;
  auto x = Rand(n * d, 4), w = Rand(d, 5), r = Rand(n * d, 6);
  for (float& v : w) v += 1.0f;
  std::vector<float> y(n * d), rstd(n), dx(n * d), dw(d, 0.0f);
  RmsNormForward(x.data(), w.data(), n, d, eps, y.data(), rstd.data());
  std::vector<float> ref(d);
  for (int i = 0; i < n; ++i) {  // forward against the inference kernel
    ops::RmsNormRef(&x[i * d], w.data(), d, eps, ref.data());
    for (int j = 0; j < d; ++j) EXPECT_NEAR(y[i * d + j], ref[j], 1e-5);
  }
  RmsNormBackward(x.data(), w.data(), rstd.data(), r.data(), n, d, dx.data(), dw.data());
  auto loss = [&] {
    RmsNormForward(x.data(), w.data(), n, d, eps, y.data(), rstd.data());
    return Dot(y, r);
  };
  CheckGrad("dx", &x, dx, loss);
  CheckGrad("dw", &w, dw, loss);
}

class TrainRope : public ::testing::TestWithParam<bool> {};

TEST_P(TrainRope, MatchesInferenceKernelAndInverseIsGradient) {
  const bool interleaved = GetParam();
  const int b = 2, t = 3, heads = 2, hd = 8, n = b * t;
  std::vector<float> cos, sin;
  RopeTables(t, hd, 10000.0f, interleaved, &cos, &sin);
  auto x = Rand(n * heads * hd, 7), r = Rand(n * heads * hd, 8);
  std::vector<float> y = x;
  RopeApply(y.data(), n, t, heads, hd, cos.data(), sin.data(), interleaved, false);
  for (int row = 0; row < n; ++row) {  // row's position is row % t
    std::vector<float> ref(x.begin() + row * heads * hd, x.begin() + (row + 1) * heads * hd);
    ops::Rope(ref.data(), heads, hd, &cos[(row % t) * hd], &sin[(row % t) * hd], interleaved);
    for (int j = 0; j < heads * hd; ++j) EXPECT_NEAR(y[row * heads * hd + j], ref[j], 1e-6);
  }
  std::vector<float> dx = r;
  RopeApply(dx.data(), n, t, heads, hd, cos.data(), sin.data(), interleaved, true);
  auto loss = [&] {
    y = x;
    RopeApply(y.data(), n, t, heads, hd, cos.data(), sin.data(), interleaved, false);
    return Dot(y, r);
  };
  CheckGrad("dx", &x, dx, loss);
}
INSTANTIATE_TEST_SUITE_P(Layouts, TrainRope, ::testing::Values(false, true));

TEST(TrainOps, AttentionGradients) {
  const int b = 2, t = 4, h = 4, kv = 2, hd = 3;
  auto q = Rand(b * t * h * hd, 9), k = Rand(b * t * kv * hd, 10), v = Rand(b * t * kv * hd, 11);
  auto r = Rand(b * t * h * hd, 12);
  std::vector<float> probs(b * h * t * t), out(b * t * h * hd);
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  AttentionForward(q.data(), k.data(), v.data(), b, t, h, kv, hd, probs.data(), out.data());
  // Forward against a plain causal softmax attention.
  for (int bi = 0; bi < b; ++bi)
    for (int hi = 0; hi < h; ++hi)
      for (int i = 0; i < t; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e30, sum = 0;
        for (int j = 0; j <= i; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e)
            d += double(q[((bi * t + i) * h + hi) * hd + e]) * k[((bi * t + j) * kv + hi / 2) * hd + e];
          s[j] = d / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        for (double& z : s) sum += (z = std::exp(z - mx));
        for (int e = 0; e < hd; ++e) {
          double o = 0;
          for (int j = 0; j <= i; ++j) o += s[j] / sum * v[((bi * t + j) * kv + hi / 2) * hd + e];
          EXPECT_NEAR(out[((bi * t + i) * h + hi) * hd + e], o, 1e-5);
        }
      }
  AttentionBackward(q.data(), k.data(), v.data(), probs.data(), r.data(), b, t, h, kv, hd, dq.data(), dk.data(),
                    dv.data());
  auto loss = [&] {
    AttentionForward(q.data(), k.data(), v.data(), b, t, h, kv, hd, probs.data(), out.data());
    return Dot(out, r);
  };
  CheckGrad("dq", &q, dq, loss);
  CheckGrad("dk", &k, dk, loss);
  CheckGrad("dv", &v, dv, loss);
}

TEST(TrainOps, SwiGluGradients) {
  const int n = 17;
  auto g = Rand(n, 13, 2.0f), u = Rand(n, 14), r = Rand(n, 15);
  std::vector<float> out(n), dg(n), du(n);
  SwiGluForward(g.data(), u.data(), n, out.data());
  for (int i = 0; i < n; ++i) EXPECT_NEAR(out[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-5);
  SwiGluBackward(g.data(), u.data(), r.data(), n, dg.data(), du.data());
  auto loss = [&] {
    SwiGluForward(g.data(), u.data(), n, out.data());
    return Dot(out, r);
  };
  CheckGrad("dgate", &g, dg, loss);
  CheckGrad("dup", &u, du, loss);
}

TEST(TrainOps, CrossEntropyValueAndGradient) {
  const int n = 3, v = 7;
  auto logits = Rand(n * v, 16, 2.0f);
  std::vector<int> tg = {2, -1, 6};  // the middle row is ignored
  // Value by hand: mean over the two counted rows of logsumexp - logit[target].
  double want = 0;
  for (int r : {0, 2}) {
    double s = 0;
    for (int j = 0; j < v; ++j) s += std::exp(double(logits[r * v + j]));
    want += std::log(s) - logits[r * v + tg[r]];
  }
  want /= 2;
  std::vector<float> work = logits, d(n * v);
  EXPECT_NEAR(CrossEntropy(work.data(), tg.data(), n, v, d.data()), want, 1e-6);
  for (int j = 0; j < v; ++j) EXPECT_EQ(d[v + j], 0.0f);
  auto loss = [&] {
    work = logits;
    return CrossEntropy(work.data(), tg.data(), n, v, nullptr);
  };
  CheckGrad("dlogits", &logits, d, loss, 1e-2f, 1e-3);
}

TEST(TrainOps, KlToTeacherValueAndGradient) {
  const int n = 3, v = 7;
  auto logits = Rand(n * v, 21, 2.0f);
  std::vector<float> p(n * v, 0.0f);  // teacher rows: two dense, one with zeros
  for (int r = 0; r < n; ++r) {
    double s = 0;
    for (int j = 0; j < v; ++j) s += (p[r * v + j] = (r == 2 && j % 2) ? 0.0f : float(1 + (j * 5 + r) % 4));
    for (int j = 0; j < v; ++j) p[r * v + j] = float(p[r * v + j] / s);
  }
  double want = 0;  // Σ_j p log(p / q), q = softmax(logits), by hand
  for (int r = 0; r < n; ++r) {
    double s = 0;
    for (int j = 0; j < v; ++j) s += std::exp(double(logits[r * v + j]));
    for (int j = 0; j < v; ++j)
      if (p[r * v + j] > 0) want += p[r * v + j] * (std::log(double(p[r * v + j])) - (logits[r * v + j] - std::log(s)));
  }
  want /= n;
  std::vector<float> work = logits, d(n * v);
  EXPECT_NEAR(KlToTeacher(work.data(), p.data(), n, v, d.data()), want, 1e-6);
  auto loss = [&] {
    work = logits;
    return KlToTeacher(work.data(), p.data(), n, v, nullptr);
  };
  CheckGrad("dlogits", &logits, d, loss, 1e-2f, 1e-3);
}

}  // namespace
}  // namespace ql::train
