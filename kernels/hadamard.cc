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

bool IsPow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// q = p^e with p prime and e >= 1 (else false).
bool PrimePower(int q, int* p, int* e) {
  if (q < 2) return false;
  int d = 2;
  while (q % d != 0) ++d;  // smallest prime factor
  int k = 0, r = q;
  while (r % d == 0) r /= d, ++k;
  if (r != 1) return false;
  *p = d, *e = k;
  return true;
}

// GF(q), q = p^e: element x ↔ polynomial Σ digit_i(x) t^i (base-p digits of x), arithmetic modulo a
// monic irreducible f of degree e (the first one in counting order: no monic factor of degree ≤ e/2).
// Only what Paley needs: subtraction and the quadratic character χ (0, +1 on squares, −1).
struct FiniteField {
  int p = 0, e = 0, q = 0;
  std::vector<int> f;    // [e] low coefficients of f (monic: t^e = −Σ f_i t^i)
  std::vector<int> chi;  // [q]

  std::vector<int> Digits(int x) const {
    std::vector<int> d(e);
    for (int i = 0; i < e; ++i) d[i] = x % p, x /= p;
    return d;
  }
  int FromDigits(const std::vector<int>& d) const {
    int x = 0;
    for (int i = e - 1; i >= 0; --i) x = x * p + d[i];
    return x;
  }
  int Sub(int a, int b) const {
    const auto da = Digits(a), db = Digits(b);
    std::vector<int> d(e);
    for (int i = 0; i < e; ++i) d[i] = ((da[i] - db[i]) % p + p) % p;
    return FromDigits(d);
  }
  int Mul(int a, int b) const {
    const auto da = Digits(a), db = Digits(b);
    std::vector<int> prod(2 * e, 0);  // degree ≤ 2e − 2
    for (int i = 0; i < e; ++i)
      for (int j = 0; j < e; ++j) prod[i + j] = (prod[i + j] + da[i] * db[j]) % p;
    for (int k = 2 * e - 2; k >= e; --k) {  // t^k = t^(k−e)·(−Σ f_i t^i)
      const int c = prod[k];
      prod[k] = 0;
      for (int i = 0; i < e; ++i) prod[k - e + i] = ((prod[k - e + i] - c * f[i]) % p + p) % p;
    }
    return FromDigits(std::vector<int>(prod.begin(), prod.begin() + e));
  }
};

// True when the monic polynomial g (coefficients low → high, g.back() = 1) divides the monic f of
// degree e given by its low coefficients.
bool Divides(std::vector<int> num, const std::vector<int>& g, int p) {
  // Modular inverse of the leading coefficient is 1 (monic).
  const int dg = int(g.size()) - 1;
  for (int k = int(num.size()) - 1; k >= dg; --k) {
    const int c = num[k];
    if (c == 0) continue;
    for (int i = 0; i <= dg; ++i) num[k - dg + i] = ((num[k - dg + i] - c * g[i]) % p + p) % p;
  }
  for (int i = 0; i < dg; ++i)
    if (num[i] != 0) return false;
  return true;
}

FiniteField MakeField(int p, int e) {
  FiniteField F;
  F.p = p, F.e = e, F.q = 1;
  for (int i = 0; i < e; ++i) F.q *= p;
  if (e == 1) {
    F.f = {0};  // t ≡ 0: elements are 0..p−1 and the reduction never runs
  } else {
    for (int code = 0; code < F.q; ++code) {  // monic f = t^e + Σ c_i t^i
      std::vector<int> f(e + 1, 0);
      for (int i = 0, c = code; i < e; ++i, c /= p) f[i] = c % p;
      f[e] = 1;
      bool irreducible = f[0] != 0;
      for (int d = 1; irreducible && 2 * d <= e; ++d) {
        int count = 1;
        for (int i = 0; i < d; ++i) count *= p;
        for (int gc = 0; irreducible && gc < count; ++gc) {
          std::vector<int> g(d + 1, 0);
          for (int i = 0, c = gc; i < d; ++i, c /= p) g[i] = c % p;
          g[d] = 1;
          if (Divides(f, g, p)) irreducible = false;
        }
      }
      if (irreducible) {
        F.f.assign(f.begin(), f.begin() + e);
        break;
      }
    }
    QL_CHECK(!F.f.empty(), "no irreducible polynomial of degree {} over GF({})", e, p);
  }
  F.chi.assign(F.q, -1);
  F.chi[0] = 0;
  for (int x = 1; x < F.q; ++x) F.chi[F.Mul(x, x)] = 1;
  return F;
}

// Paley I / II need q = k − 1 (≡ 3 mod 4) or q = k/2 − 1 (≡ 1 mod 4) to be a prime power.
bool PaleyField(int q, int residue, FiniteField* F) {
  int p, e;
  if (q % 4 != residue || !PrimePower(q, &p, &e)) return false;
  *F = MakeField(p, e);
  return true;
}

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
  FiniteField F;
  if (k % 4 == 0 && PaleyField(k - 1, 3, &F)) {
    // Paley I: Q[i][j] = χ(x_j − x_i) (skew for q ≡ 3 mod 4); S = [[0, 1ᵀ], [−1, Q]]; H = I + S.
    h.assign(size_t(k) * k, 0);
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        int s;
        if (i == 0 && j == 0) s = 0;
        else if (i == 0) s = 1;
        else if (j == 0) s = -1;
        else s = F.chi[F.Sub(j - 1, i - 1)];
        h[size_t(i) * k + j] = int8_t(s + (i == j ? 1 : 0));
      }
  } else if (k % 4 == 0 && PaleyField(k / 2 - 1, 1, &F)) {
    // Paley II: symmetric conference matrix C = [[0, 1ᵀ], [1, Q]] of order q+1; each entry becomes a
    // 2×2 block: 0 → [[1, −1], [−1, −1]], ±1 → ±[[1, 1], [1, −1]].
    const int m = F.q + 1;
    h.assign(size_t(k) * k, 0);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j) {
        int c;
        if (i == 0 && j == 0) c = 0;
        else if (i == 0 || j == 0) c = 1;
        else c = F.chi[F.Sub(j - 1, i - 1)];
        const int blk[2][2] = {{c == 0 ? 1 : c, c == 0 ? -1 : c}, {c == 0 ? -1 : c, c == 0 ? -1 : -c}};
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) h[size_t(2 * i + a) * k + 2 * j + b] = int8_t(blk[a][b]);
      }
  } else {
    // Sylvester–Kronecker product H_a ⊗ H_b (a·b = k, both constructible; a Hadamard order is 1, 2
    // or a multiple of 4): the smallest such a first.
    for (int a = 2; a < k; ++a) {
      const int b = k / a;
      if (k % a != 0 || (a > 2 && a % 4 != 0) || (b > 2 && b % 4 != 0)) continue;
      auto ha = HadamardMatrix(a);
      if (!ha.ok()) continue;
      auto hb = HadamardMatrix(b);
      if (!hb.ok()) continue;
      h.assign(size_t(k) * k, 0);
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j)
          h[size_t(i) * k + j] = int8_t((*ha)[size_t(i / b) * a + j / b] * (*hb)[size_t(i % b) * b + j % b]);
      return h;  // a Kronecker product of Hadamard matrices is Hadamard
    }
    return Status::Errorf("no Hadamard matrix construction for order {} (have: powers of two, Paley I q+1 with q "
                          "a prime power = 3 mod 4, Paley II 2(q+1) with q a prime power = 1 mod 4, and Kronecker "
                          "products of these; orders like 156 and 172 need Williamson-type matrices)", k);
  }
  // Self-check: H·Hᵀ = k·I.
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
