// Highway implementations of kernels/ops.h, compiled once per SIMD target (foreach_target.h) and
// chosen at run time (HWY_DYNAMIC_DISPATCH), plus the scalar *Ref oracles the tests compare against.
// Pattern: google/highway hwy/examples/skeleton.cc. Tails go through kernels/tail-inl.h, never out of bounds.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/ops.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "kernels/tail-inl.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/ops.h"

HWY_BEFORE_NAMESPACE();
namespace ql::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

using ::ql::HWY_NAMESPACE::TailLoad;  // kernels/tail-inl.h
using ::ql::HWY_NAMESPACE::TailStore;

HWY_INLINE float SumSquares(const float* x, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF a0 = hn::Zero(d), a1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const VF v0 = hn::LoadU(d, x + i), v1 = hn::LoadU(d, x + i + N);
    a0 = hn::MulAdd(v0, v0, a0);
    a1 = hn::MulAdd(v1, v1, a1);
  }
  for (; i + N <= n; i += N) {
    const VF v = hn::LoadU(d, x + i);
    a0 = hn::MulAdd(v, v, a0);
  }
  if (i < n) {
    const VF v = TailLoad(d, x + i, n - i);
    a1 = hn::MulAdd(v, v, a1);
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(a0, a1)));
}

HWY_NOINLINE void RmsNormImpl(const float* x, const float* w, size_t n, float eps, float* y) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const float inv = 1.0f / std::sqrt(SumSquares(x, n) / float(n) + eps);
  const VF vinv = hn::Set(d, inv);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), vinv), hn::LoadU(d, w + i)), d, y + i);
  }
  if (i < n) {
    const VF v = hn::Mul(hn::Mul(TailLoad(d, x + i, n - i), vinv), TailLoad(d, w + i, n - i));
    TailStore(v, d, y + i, n - i);
  }
}

// x' = x * cos + partner * sin over `count` lanes (count <= N: full or tail).
HWY_INLINE void RopeInterleavedChunk(DF d, float* x, const float* cs, const float* sn, size_t count) {
  const size_t N = hn::Lanes(d);
  if (count == N) {
    const VF v = hn::LoadU(d, x);
    hn::StoreU(hn::MulAdd(hn::Reverse2(d, v), hn::LoadU(d, sn), hn::Mul(v, hn::LoadU(d, cs))), d, x);
  } else {
    const VF v = TailLoad(d, x, count);
    const VF r = hn::MulAdd(hn::Reverse2(d, v), TailLoad(d, sn, count), hn::Mul(v, TailLoad(d, cs, count)));
    TailStore(r, d, x, count);
  }
}

HWY_NOINLINE void RopeImpl(float* x, size_t n_heads, size_t hd, const float* cs, const float* sn,
                           bool interleaved) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t half = hd / 2;
  for (size_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * hd;
    if (interleaved) {
      // Reverse2 swaps lanes (2i, 2i+1); pairs never straddle a chunk (N and all offsets even).
      if (N == 1) {  // scalar target: no lane pairs, do the rotation directly
        for (size_t j = 0; j < hd; j += 2) {
          const float a = xh[j], b = xh[j + 1];
          xh[j] = a * cs[j] + b * sn[j];
          xh[j + 1] = b * cs[j + 1] + a * sn[j + 1];
        }
        continue;
      }
      for (size_t j = 0; j < hd; j += N) RopeInterleavedChunk(d, xh + j, cs + j, sn + j, std::min(N, hd - j));
    } else {
      size_t j = 0;
      for (; j + N <= half; j += N) {
        const VF a = hn::LoadU(d, xh + j), b = hn::LoadU(d, xh + half + j);
        hn::StoreU(hn::MulAdd(b, hn::LoadU(d, sn + j), hn::Mul(a, hn::LoadU(d, cs + j))), d, xh + j);
        hn::StoreU(hn::MulAdd(a, hn::LoadU(d, sn + half + j), hn::Mul(b, hn::LoadU(d, cs + half + j))), d,
                   xh + half + j);
      }
      if (j < half) {
        const size_t c = half - j;
        const VF a = TailLoad(d, xh + j, c), b = TailLoad(d, xh + half + j, c);
        TailStore(hn::MulAdd(b, TailLoad(d, sn + j, c), hn::Mul(a, TailLoad(d, cs + j, c))), d, xh + j, c);
        TailStore(hn::MulAdd(a, TailLoad(d, sn + half + j, c), hn::Mul(b, TailLoad(d, cs + half + j, c))), d,
                  xh + half + j, c);
      }
    }
  }
}

HWY_NOINLINE void SoftmaxImpl(float* x, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  VF vmax = neg_inf;
  size_t i = 0;
  for (; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
  const size_t tail = n - i;
  if (tail) {
    const auto m = hn::FirstN(d, tail);
    vmax = hn::Max(vmax, hn::IfThenElse(m, TailLoad(d, x + i, tail), neg_inf));
  }
  const VF mx = hn::MaxOfLanes(d, vmax);  // broadcast
  VF sum = hn::Zero(d);
  for (i = 0; i + N <= n; i += N) {
    const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), mx));
    sum = hn::Add(sum, e);
    hn::StoreU(e, d, x + i);
  }
  if (tail) {
    const auto m = hn::FirstN(d, tail);
    const VF e = hn::IfThenElseZero(m, hn::Exp(d, hn::Sub(TailLoad(d, x + i, tail), mx)));
    sum = hn::Add(sum, e);
    TailStore(e, d, x + i, tail);
  }
  const VF inv = hn::Div(hn::Set(d, 1.0f), hn::SumOfLanes(d, sum));
  for (i = 0; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), inv), d, x + i);
  if (tail) TailStore(hn::Mul(TailLoad(d, x + i, tail), inv), d, x + i, tail);
}

HWY_INLINE VF SiluMulVec(DF d, VF g, VF u) {
  // hn::Exp is only valid below ~88.7; silu(g < -88) is ~-0 anyway.
  const VF e = hn::Exp(d, hn::Min(hn::Neg(g), hn::Set(d, 88.0f)));
  return hn::Mul(hn::Div(g, hn::Add(hn::Set(d, 1.0f), e)), u);
}

HWY_NOINLINE void SiluMulImpl(const float* gate, const float* up, size_t n, float* out) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(SiluMulVec(d, hn::LoadU(d, gate + i), hn::LoadU(d, up + i)), d, out + i);
  if (i < n) TailStore(SiluMulVec(d, TailLoad(d, gate + i, n - i), TailLoad(d, up + i, n - i)), d, out + i, n - i);
}

HWY_NOINLINE float DotImpl(const float* a, const float* b, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF s0 = hn::Zero(d), s1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), s1);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  if (i < n) s1 = hn::MulAdd(TailLoad(d, a + i, n - i), TailLoad(d, b + i, n - i), s1);
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
}

HWY_NOINLINE void AxpyImpl(float alpha, const float* x, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF va = hn::Set(d, alpha);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  if (i < n) TailStore(hn::MulAdd(va, TailLoad(d, x + i, n - i), TailLoad(d, y + i, n - i)), d, y + i, n - i);
}

HWY_NOINLINE void AddImpl(const float* x, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  if (i < n) TailStore(hn::Add(TailLoad(d, x + i, n - i), TailLoad(d, y + i, n - i)), d, y + i, n - i);
}

}  // namespace HWY_NAMESPACE
}  // namespace ql::ops
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql::ops {

HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(RopeImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(SiluMulImpl);
HWY_EXPORT(DotImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(AddImpl);

void RmsNorm(const float* x, const float* w, size_t n, float eps, float* y) {
  HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x, w, n, eps, y);
}
void Rope(float* x, size_t n_heads, size_t head_dim, const float* cos, const float* sin, bool interleaved) {
  HWY_DYNAMIC_DISPATCH(RopeImpl)(x, n_heads, head_dim, cos, sin, interleaved);
}
void Softmax(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n); }
void SiluMul(const float* gate, const float* up, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMulImpl)(gate, up, n, out);
}
float Dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n); }
void Axpy(float alpha, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(alpha, x, y, n); }
void Add(const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AddImpl)(x, y, n); }

void RopeTables(size_t pos0, size_t n_pos, size_t head_dim, float theta, bool interleaved, float* cos, float* sin) {
  const size_t half = head_dim / 2;
  for (size_t p = 0; p < n_pos; ++p) {
    float* c = cos + p * head_dim;
    float* s = sin + p * head_dim;
    for (size_t i = 0; i < half; ++i) {
      // Angle in double: positions up to ~1e5 times frequencies near 1 lose digits in float.
      const double freq = std::pow(double(theta), -2.0 * double(i) / double(head_dim));
      const double a = double(pos0 + p) * freq;
      const float ca = float(std::cos(a)), sa = float(std::sin(a));
      const size_t first = interleaved ? 2 * i : i, second = interleaved ? 2 * i + 1 : i + half;
      c[first] = ca, c[second] = ca;
      s[first] = -sa, s[second] = sa;
    }
  }
}

// ---- scalar oracles: straight from the definitions, double accumulation ----

void RmsNormRef(const float* x, const float* w, size_t n, float eps, float* y) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(ss / double(n) + eps);
  for (size_t i = 0; i < n; ++i) y[i] = float(x[i] * inv * w[i]);
}

void RopeRef(float* x, size_t n_heads, size_t head_dim, size_t pos, float theta, bool interleaved) {
  const size_t half = head_dim / 2;
  for (size_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (size_t i = 0; i < half; ++i) {
      const double a = double(pos) * std::pow(double(theta), -2.0 * double(i) / double(head_dim));
      const size_t j0 = interleaved ? 2 * i : i, j1 = interleaved ? 2 * i + 1 : i + half;
      const double x0 = v[j0], x1 = v[j1];
      v[j0] = float(x0 * std::cos(a) - x1 * std::sin(a));
      v[j1] = float(x0 * std::sin(a) + x1 * std::cos(a));
    }
  }
}

void SoftmaxRef(float* x, size_t n) {
  double mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  for (size_t i = 0; i < n; ++i) x[i] = float(std::exp(double(x[i]) - mx) / sum);
}

void SiluMulRef(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = float(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

float DotRef(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return float(s);
}

void AxpyRef(float alpha, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = float(double(y[i]) + double(alpha) * x[i]);
}

}  // namespace ql::ops
#endif  // HWY_ONCE
