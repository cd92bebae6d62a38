// Hadamard transforms (see hadamard.h).
#include "kernels/hadamard.h"

#include <cmath>

namespace ql {
namespace {

bool IsPrime(int q) {
  if (q < 2) return false;
  for (int d = 2; d * d <= q; ++d)
    if (q % d == 0) return false;
  return true;
}

// Quadratic character χ(a) of GF(q), q prime: 0, +1 (square), −1.
std::vector<int> QuadraticCharacter(int q) {
  std::vector<int> chi(q, -1);
  chi[0] = 0;
  for (int x = 1; x < q; ++x) chi[(int64_t(x) * x) % q] = 1;
  return chi;
}

bool IsPow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

}  // namespace

void Fwht(float* x, int64_t n) {
  for (int64_t h = 1; h < n; h *= 2)
    for (int64_t i = 0; i < n; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

StatusOr<std::vector<int8_t>> HadamardMatrix(int k) {
  std::vector<int8_t> h;
  if (IsPow2(k)) {  // Sylvester: H_{2n} = [[H, H], [H, −H]]
    h.assign(size_t(k) * k, 1);
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) h[size_t(i) * k + j] = (__builtin_popcount(unsigned(i & j)) & 1) ? -1 : 1;
    return h;
  }
  if (k % 4 == 0 && IsPrime(k - 1) && (k - 1) % 4 == 3) {
    // Paley I: Q[i][j] = χ(j − i) (skew for q ≡ 3 mod 4); S = [[0, 1ᵀ], [−1, Q]]; H = I + S.
    const int q = k - 1;
    const auto chi = QuadraticCharacter(q);
    h.assign(size_t(k) * k, 0);
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        int s;
        if (i == 0 && j == 0) s = 0;
        else if (i == 0) s = 1;
        else if (j == 0) s = -1;
        else s = chi[((j - 1) - (i - 1) + q) % q];
        h[size_t(i) * k + j] = int8_t(s + (i == j ? 1 : 0));
      }
  } else if (k % 4 == 0 && IsPrime(k / 2 - 1) && (k / 2 - 1) % 4 == 1) {
    // Paley II: symmetric conference matrix C = [[0, 1ᵀ], [1, Q]] of order q+1; each entry becomes a
    // 2×2 block: 0 → [[1, −1], [−1, −1]], ±1 → ±[[1, 1], [1, −1]].
    const int q = k / 2 - 1, m = q + 1;
    const auto chi = QuadraticCharacter(q);
    h.assign(size_t(k) * k, 0);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j) {
        int c;
        if (i == 0 && j == 0) c = 0;
        else if (i == 0 || j == 0) c = 1;
        else c = chi[((j - 1) - (i - 1) + q) % q];
        const int blk[2][2] = {{c == 0 ? 1 : c, c == 0 ? -1 : c}, {c == 0 ? -1 : c, c == 0 ? -1 : -c}};
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) h[size_t(2 * i + a) * k + 2 * j + b] = int8_t(blk[a][b]);
      }
  } else {
    return Status::Errorf("no Hadamard matrix construction for order {} (have: powers of two, Paley I q+1 with q "
                          "prime = 3 mod 4, Paley II 2(q+1) with q prime = 1 mod 4)", k);
  }
  // Self-check: H·Hᵀ = k·I (cheap for the small orders used).
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) {
      int d = 0;
      for (int t = 0; t < k; ++t) d += h[size_t(i) * k + t] * h[size_t(j) * k + t];
      QL_CHECK(d == (i == j ? k : 0), "Hadamard construction of order {} failed at ({}, {})", k, i, j);
    }
  return h;
}

StatusOr<HadamardPlan> PlanHadamard(int64_t n) {
  if (n <= 0) return Status::Errorf("Hadamard size {} must be positive", n);
  int64_t p2 = 1;
  while (n % (p2 * 2) == 0) p2 *= 2;
  std::string tried;
  for (int64_t m = p2; m >= 1; m /= 2) {
    const int64_t k = n / m;
    if (k > 4096) break;
    auto h = HadamardMatrix(int(k));
    if (h.ok()) {
      HadamardPlan plan;
      plan.n = n;
      plan.k = int(k);
      plan.hk = std::move(*h);
      return plan;
    }
    tried += (tried.empty() ? "" : ", ") + std::to_string(k);
  }
  return Status::Errorf("no Hadamard transform of size {}: none of the factors K = {} (n = K·2^m) has a "
                        "construction", n, tried);
}

void ApplyHadamard(const HadamardPlan& plan, float* x) {
  const int64_t n = plan.n, k = plan.k, m = n / k;
  for (int64_t r = 0; r < k; ++r) Fwht(x + r * m, m);
  const float scale = 1.0f / std::sqrt(float(n));
  if (k == 1) {
    for (int64_t i = 0; i < n; ++i) x[i] *= scale;
    return;
  }
  std::vector<float> col(k);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t a = 0; a < k; ++a) {
      float s = 0;
      for (int64_t b = 0; b < k; ++b) s += plan.hk[a * k + b] * x[b * m + r];
      col[a] = s;
    }
    for (int64_t a = 0; a < k; ++a) x[a * m + r] = col[a] * scale;
  }
}

std::vector<float> HadamardMatrixExplicit(const HadamardPlan& plan) {
  const int64_t n = plan.n;
  std::vector<float> r(size_t(n) * n), e(n);
  for (int64_t j = 0; j < n; ++j) {
    std::fill(e.begin(), e.end(), 0.0f);
    e[j] = 1.0f;
    ApplyHadamard(plan, e.data());
    for (int64_t i = 0; i < n; ++i) r[size_t(i) * n + j] = e[i];
  }
  return r;
}

}  // namespace ql
