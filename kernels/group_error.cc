// Highway implementation of kernels/group_error.h, compiled once per SIMD target (foreach_target.h)
// and chosen at run time, beside its scalar oracle. Lanes run over weight rows: a block of N rows
// (N = float lanes) holds the group's d transposed ([width, N]), each calibration row's x[t, k] is
// broadcast, so every lane is one row's FMA chain over k and the squares add per lane in t order.
// q·s − w must stay two rounded operations, as in FakeQuantize then a subtraction (GCC contracts
// a·b + c into an FMA by default); the FMA chains below are explicit MulAdd / std::fma.
#pragma GCC optimize("fp-contract=off")
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/group_error.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/group_error.h"
#include "kernels/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
#if HWY_TARGET == HWY_SCALAR
using DD = hn::Rebind<double, DF>;  // one lane: no halves to split
#else
using DD = hn::Repartition<double, DF>;  // half as many lanes: each float vector fills two
#endif
using VD = hn::Vec<DD>;

constexpr int64_t kTokens = 8;       // calibration rows per register block (8 accumulators)
constexpr int64_t kCheckEvery = 64;  // tokens between early-stop tests against the bound

// err += e² per lane, e promoted to double (exact squares, so MulAdd or Mul+Add alike).
HWY_INLINE void AddSquares(VF e, VD& lo, VD& hi) {
  const DD dd;
#if HWY_TARGET == HWY_SCALAR
  const VD a = hn::PromoteTo(dd, e);
  lo = hn::MulAdd(a, a, lo);
  (void)hi;
#else
  const hn::Half<DF> dh;
  const VD a = hn::PromoteTo(dd, hn::LowerHalf(dh, e));
  const VD b = hn::PromoteTo(dd, hn::UpperHalf(dh, e));
  lo = hn::MulAdd(a, a, lo);
  hi = hn::MulAdd(b, b, hi);
#endif
}

// out[lane] = Σ_t (Σ_k x[t, k] · dT[k, lane])² for one row block and one group. x points at the
// group's first column of row 0 (row stride ld). bnd: per-lane stop bounds (err / n >= bnd), or null.
HWY_INLINE void BlockErrors(const float* dT, int64_t width, const float* x, int64_t ld, int64_t n, const double* bnd,
                            double* out) {
  const DF df;
  const DD dd;
  const size_t H = hn::Lanes(dd), halves = hn::Lanes(df) / H;  // 2, or 1 on HWY_SCALAR
  const int64_t stride = int64_t(hn::Lanes(df));
  VD lo = hn::Zero(dd), hi = hn::Zero(dd);
  const VD vn = hn::Set(dd, double(n));
  auto done = [&] {
    if (!bnd) return false;
    const VD pl = hn::Div(lo, vn), ph = hn::Div(hi, vn);
    return hn::AllTrue(dd, hn::Ge(pl, hn::LoadU(dd, bnd))) &&
           (halves == 1 || hn::AllTrue(dd, hn::Ge(ph, hn::LoadU(dd, bnd + H))));
  };
  int64_t t = 0;
  for (; t + kTokens <= n; t += kTokens) {
    const float* xr = x + t * ld;
    VF a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t k = 0; k < width; ++k) {
      const VF d = hn::LoadU(df, dT + k * stride);
      a0 = hn::MulAdd(hn::Set(df, xr[k]), d, a0);
      a1 = hn::MulAdd(hn::Set(df, xr[ld + k]), d, a1);
      a2 = hn::MulAdd(hn::Set(df, xr[2 * ld + k]), d, a2);
      a3 = hn::MulAdd(hn::Set(df, xr[3 * ld + k]), d, a3);
      a4 = hn::MulAdd(hn::Set(df, xr[4 * ld + k]), d, a4);
      a5 = hn::MulAdd(hn::Set(df, xr[5 * ld + k]), d, a5);
      a6 = hn::MulAdd(hn::Set(df, xr[6 * ld + k]), d, a6);
      a7 = hn::MulAdd(hn::Set(df, xr[7 * ld + k]), d, a7);
    }
    AddSquares(a0, lo, hi), AddSquares(a1, lo, hi), AddSquares(a2, lo, hi), AddSquares(a3, lo, hi);
    AddSquares(a4, lo, hi), AddSquares(a5, lo, hi), AddSquares(a6, lo, hi), AddSquares(a7, lo, hi);
    if ((t + kTokens) % kCheckEvery == 0 && done()) break;
  }
  if (t + kTokens > n) {  // the tail, one calibration row at a time (only reached without an early stop)
    for (; t < n; ++t) {
      const float* xr = x + t * ld;
      VF a = hn::Zero(df);
      for (int64_t k = 0; k < width; ++k) a = hn::MulAdd(hn::Set(df, xr[k]), hn::LoadU(df, dT + k * stride), a);
      AddSquares(a, lo, hi);
    }
  }
  hn::StoreU(lo, dd, out);
  if (halves == 2) hn::StoreU(hi, dd, out + H);
}

// d = Qsym(clamp(w, −m, m)) − w on one group of one row (kernels/act_quant.h's rule); false when
// non-finite. Vector ops that are the scalar rule's own (max is exact in any order; std::clamp is
// Min(Max(·)) on finite values, a ±0 tie only ever feeding |·| or a zero scale; RNE is nearbyint's
// default mode; q·s and − w stay two rounded operations).
HWY_INLINE bool QuantDiffIntSym(const float* w, int64_t width, float m, float qmax, float* d) {
  if (!std::isfinite(m)) return false;
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  const VF vm = hn::Set(df, m), vlo = hn::Neg(vm), inf = hn::Set(df, std::numeric_limits<float>::infinity());
  VF amax = hn::Zero(df), bad = hn::Zero(df);
  int64_t k = 0;
  for (; k + N <= width; k += N) {
    const VF x = hn::LoadU(df, w + k);
    bad = hn::Or(bad, hn::VecFromMask(df, hn::Not(hn::Lt(hn::Abs(x), inf))));  // Inf or NaN
    amax = hn::Max(amax, hn::Abs(hn::Min(hn::Max(x, vlo), vm)));
  }
  float am = hn::GetLane(hn::MaxOfLanes(df, amax));
  bool finite = hn::AllTrue(df, hn::Eq(bad, hn::Zero(df)));
  for (int64_t j = k; j < width; ++j) {
    finite = finite && std::isfinite(w[j]);
    am = std::max(am, std::fabs(std::clamp(w[j], -m, m)));
  }
  if (!finite) return false;
  const float s = am / qmax;
  if (!(s > 0)) {
    for (int64_t j = 0; j < width; ++j) d[j] = 0.0f - w[j];
    return true;
  }
  const VF vs = hn::Set(df, s), vq = hn::Set(df, qmax), vnq = hn::Neg(vq), zero = hn::Zero(df);
  for (k = 0; k + N <= width; k += N) {
    const VF x = hn::LoadU(df, w + k);
    const VF v = hn::Min(hn::Max(hn::Div(hn::Min(hn::Max(x, vlo), vm), vs), vnq), vq);
    const VF q = hn::Mul(hn::Add(hn::Round(v), zero), vs);  // + 0: a −0 code dequantizes to +0
    hn::StoreU(hn::Sub(q, x), df, d + k);
  }
  for (int64_t j = k; j < width; ++j) {
    const float v = std::clamp(std::clamp(w[j], -m, m) / s, -qmax, qmax);
    d[j] = (std::nearbyint(v) + 0.0f) * s - w[j];
  }
  return true;
}

// The shared driver: rows in chunks of kBlocksPerItem blocks of N lanes (the work items); inside an
// item, groups outer and blocks inner, so a group's calibration slice x[:, group] is read from cache
// by every block of the item (blocks outer re-streamed all of x once per block). One BlockErrors per
// (block, group); every (row, group) is computed the same way whatever the order. fill(r, c0, width,
// d) writes row r's d over the group; false aborts (non-finite input).
constexpr int64_t kBlocksPerItem = 8;
template <class Fill>
bool RowBlocks(int64_t rows, int64_t cols, int64_t group, const float* x, int64_t n, const double* bound, double* err,
               int threads, const Fill& fill) {
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  const int64_t n_groups = (cols + group - 1) / group, n_blocks = (rows + N - 1) / N;
  const int64_t n_items = (n_blocks + kBlocksPerItem - 1) / kBlocksPerItem;
  if (rows * cols * n < (int64_t(1) << 20)) threads = 1;  // under ~0.1 ms a second thread costs more
  std::vector<char> ok(size_t(n_items), 1);
  std::vector<std::vector<float>> scratch(size_t(std::max(1, threads)));
  ParallelFor(int(n_items), threads, [&](int item, int tid) {
    std::vector<float>& s = scratch[size_t(tid)];
    s.resize(size_t(group * (N + 1)));
    float* dT = s.data();               // [width, N]
    float* drow = s.data() + group * N;  // [width]
    HWY_ALIGN double bnd[HWY_MAX_BYTES / sizeof(float)], out[HWY_MAX_BYTES / sizeof(float)] = {};
    const int64_t b0 = item * kBlocksPerItem, b1 = std::min(n_blocks, b0 + kBlocksPerItem);
    for (int64_t g = 0; g < n_groups; ++g) {
      const int64_t c0 = g * group, width = std::min(group, cols - c0);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * N, nr = std::min(N, rows - r0);
        std::fill(dT, dT + width * N, 0.0f);
        for (int64_t i = 0; i < nr; ++i) {
          if (!fill(r0 + i, c0, width, drow)) {
            ok[size_t(item)] = 0;
            return;
          }
          for (int64_t k = 0; k < width; ++k) dT[k * N + i] = drow[k];
        }
        for (int64_t i = 0; i < N; ++i)  // padding lanes never hold the stop back
          bnd[i] = i < nr && bound ? bound[(r0 + i) * n_groups + g] : -std::numeric_limits<double>::infinity();
        BlockErrors(dT, width, x + c0, cols, n, bound ? bnd : nullptr, out);
        for (int64_t i = 0; i < nr; ++i) err[(r0 + i) * n_groups + g] = out[i];
      }
    }
  });
  return std::find(ok.begin(), ok.end(), 0) == ok.end();
}

HWY_NOINLINE void GroupOutputErrorsImpl(const float* w, const float* q, int64_t rows, int64_t cols, int64_t group,
                                        const float* x, int64_t n, const double* bound, double* err, int threads) {
  RowBlocks(rows, cols, group, x, n, bound, err, threads, [&](int64_t r, int64_t c0, int64_t width, float* d) {
    for (int64_t k = 0; k < width; ++k) d[k] = q[r * cols + c0 + k] - w[r * cols + c0 + k];
    return true;
  });
}

HWY_NOINLINE bool ClipOutputErrorsIntSymImpl(const float* w, const float* clip, int64_t rows, int64_t cols,
                                             int64_t group, int qmax, const float* x, int64_t n, const double* bound,
                                             double* err, int threads) {
  const int64_t n_groups = (cols + group - 1) / group;
  return RowBlocks(rows, cols, group, x, n, bound, err, threads, [&](int64_t r, int64_t c0, int64_t width, float* d) {
    return QuantDiffIntSym(w + r * cols + c0, width, clip[r * n_groups + c0 / group], float(qmax), d);
  });
}

HWY_NOINLINE const char* GroupErrorTargetImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql {

HWY_EXPORT(GroupOutputErrorsImpl);
HWY_EXPORT(ClipOutputErrorsIntSymImpl);
HWY_EXPORT(GroupErrorTargetImpl);

void GroupOutputErrors(const float* w, const float* q, int64_t rows, int64_t cols, int64_t group, const float* x,
                       int64_t n, const double* bound, double* err, int threads) {
  if (rows <= 0 || cols <= 0) return;
  HWY_DYNAMIC_DISPATCH(GroupOutputErrorsImpl)(w, q, rows, cols, group, x, n, bound, err, std::max(1, threads));
}

bool ClipOutputErrorsIntSym(const float* w, const float* clip, int64_t rows, int64_t cols, int64_t group, int qmax,
                            const float* x, int64_t n, const double* bound, double* err, int threads) {
  if (rows <= 0 || cols <= 0) return true;
  return HWY_DYNAMIC_DISPATCH(ClipOutputErrorsIntSymImpl)(w, clip, rows, cols, group, qmax, x, n, bound, err,
                                                          std::max(1, threads));
}

void GroupOutputErrorsRef(const float* w, const float* q, int64_t rows, int64_t cols, int64_t group, const float* x,
                          int64_t n, double* err) {
  const int64_t n_groups = (cols + group - 1) / group;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < n_groups; ++g) {
      const int64_t c0 = g * group, width = std::min(group, cols - c0);
      double sum = 0;
      for (int64_t t = 0; t < n; ++t) {
        float e = 0.0f;
        for (int64_t k = 0; k < width; ++k)
          e = std::fma(x[t * cols + c0 + k], q[r * cols + c0 + k] - w[r * cols + c0 + k], e);
        sum += double(e) * double(e);
      }
      err[r * n_groups + g] = sum;
    }
}

const char* GroupErrorTarget() { return HWY_DYNAMIC_DISPATCH(GroupErrorTargetImpl)(); }

}  // namespace ql
#endif  // HWY_ONCE
