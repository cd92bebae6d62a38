// Highway implementation of kernels/kquant_fit.h, compiled once per SIMD target (foreach_target.h) and
// chosen at run time. Lanes run over sub-blocks: a group of N sub-blocks is transposed to [n, N], so
// element i of every sub-block is one vector and each lane repeats the scalar loop of its sub-block.
// Branches of the reference become per-lane selects. Products and sums stay separate rounded
// operations (no FMA contraction), as in kernels/gguf_blocks.cc.
#pragma GCC optimize("fp-contract=off")
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/kquant_fit.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"

#include <algorithm>

#include "kernels/gguf_blocks.h"
#include "kernels/kquant_fit.h"

HWY_BEFORE_NAMESPACE();
namespace ql::gguf {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;

constexpr int kMaxN = 32;                       // elements per sub-block
constexpr int kMaxLanes = HWY_MAX_BYTES / 4;    // float lanes of the widest target

// Sub-blocks [s0, s0 + N) of src [n_sub, n] transposed into t [n, N]; lanes past n_sub repeat s0.
void Transpose(const float* src, int n_sub, int n, int s0, int N, float* t) {
  for (int lane = 0; lane < N; ++lane) {
    const int s = s0 + lane < n_sub ? s0 + lane : s0;
    for (int i = 0; i < n; ++i) t[i * N + lane] = src[s * n + i];
  }
}

// ggml's nearest_int per lane: the bits of f + 1.5·2^23, low 23 bits minus 2^22.
HWY_INLINE VI NearestIntV(VF f) {
  const DF df;
  const DI di;
  const VI bits = hn::BitCast(di, hn::Add(f, hn::Set(df, 12582912.f)));
  return hn::Sub(hn::And(bits, hn::Set(di, 0x007fffff)), hn::Set(di, 0x00400000));
}

// Σ_i w_i · d_i (MAD) or w_i · d_i² with d_i = scale · l_i + min − x_i, in i order.
HWY_INLINE VF FitError(const float* xt, const float* wt, const int32_t* lt, int n, int N, VF scale, VF min,
                       bool use_mad) {
  const DF df;
  const DI di;
  VF err = hn::Zero(df);
  for (int i = 0; i < n; ++i) {
    const VF l = hn::ConvertTo(df, hn::Load(di, lt + i * N));
    VF diff = hn::Sub(hn::Add(hn::Mul(scale, l), min), hn::Load(df, xt + i * N));
    diff = use_mad ? hn::Abs(diff) : hn::Mul(diff, diff);
    err = hn::Add(err, hn::Mul(hn::Load(df, wt + i * N), diff));
  }
  return err;
}

// Codes clamp(nearest(iscale · (x − min)), 0, nmax) into lt [n, N].
HWY_INLINE void Codes(const float* xt, int n, int N, VF iscale, VF min, int nmax, int32_t* lt) {
  const DF df;
  const DI di;
  const VI lo = hn::Zero(di), hi = hn::Set(di, nmax);
  for (int i = 0; i < n; ++i) {
    const VI l = NearestIntV(hn::Mul(iscale, hn::Sub(hn::Load(df, xt + i * N), min)));
    hn::Store(hn::Min(hn::Max(l, lo), hi), di, lt + i * N);
  }
}

void Qkx2Group(const float* xt, const float* wt, int n, int N, int nmax, float rmin, float rdelta, int nstep,
               bool use_mad, int32_t* L, float* scale_out, float* min_out) {
  const DF df;
  const DI di;
  VF min = hn::Load(df, xt), max = min, sum_w = hn::Load(df, wt), sum_x = hn::Mul(sum_w, min);
  for (int i = 1; i < n; ++i) {
    const VF x = hn::Load(df, xt + i * N), w = hn::Load(df, wt + i * N);
    min = hn::IfThenElse(hn::Lt(x, min), x, min);
    max = hn::IfThenElse(hn::Gt(x, max), x, max);
    sum_w = hn::Add(sum_w, w);
    sum_x = hn::Add(sum_x, hn::Mul(w, x));
  }
  const VF zero = hn::Zero(df);
  min = hn::IfThenElse(hn::Gt(min, zero), zero, min);
  const auto flat = hn::Eq(max, min);  // the reference returns scale 0, codes 0, -min
  const VF min0 = min;
  VF iscale = hn::Div(hn::Set(df, float(nmax)), hn::Sub(max, min));
  VF scale = hn::Div(hn::Set(df, 1.0f), iscale);
  Codes(xt, n, N, iscale, min, nmax, L);
  VF best_error = FitError(xt, wt, L, n, N, scale, min, use_mad);
  HWY_ALIGN int32_t laux[kMaxN * kMaxLanes];
  for (int is = 0; nstep >= 1 && is <= nstep; ++is) {
    const float num = rmin + rdelta * float(is) + float(nmax);
    iscale = hn::Div(hn::Set(df, num), hn::Sub(max, min));  // min: the best so far, as in ggml
    Codes(xt, n, N, iscale, min, nmax, laux);
    VF sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < n; ++i) {
      const VF l = hn::ConvertTo(df, hn::Load(di, laux + i * N));
      const VF wl = hn::Mul(hn::Load(df, wt + i * N), l);
      sum_l = hn::Add(sum_l, wl);
      sum_l2 = hn::Add(sum_l2, hn::Mul(wl, l));
      sum_xl = hn::Add(sum_xl, hn::Mul(wl, hn::Load(df, xt + i * N)));
    }
    const VF D = hn::Sub(hn::Mul(sum_w, sum_l2), hn::Mul(sum_l, sum_l));
    VF this_scale = hn::Div(hn::Sub(hn::Mul(sum_w, sum_xl), hn::Mul(sum_x, sum_l)), D);
    VF this_min = hn::Div(hn::Sub(hn::Mul(sum_l2, sum_x), hn::Mul(sum_l, sum_xl)), D);
    const auto pos = hn::Gt(this_min, zero);
    this_min = hn::IfThenElse(pos, zero, this_min);
    this_scale = hn::IfThenElse(pos, hn::Div(sum_xl, sum_l2), this_scale);
    const VF cur_error = FitError(xt, wt, laux, n, N, this_scale, this_min, use_mad);
    const auto win = hn::And(hn::Gt(D, zero), hn::Lt(cur_error, best_error));
    const auto win_i = hn::RebindMask(di, win);
    for (int i = 0; i < n; ++i)
      hn::Store(hn::IfThenElse(win_i, hn::Load(di, laux + i * N), hn::Load(di, L + i * N)), di, L + i * N);
    best_error = hn::IfThenElse(win, cur_error, best_error);
    scale = hn::IfThenElse(win, this_scale, scale);
    min = hn::IfThenElse(win, this_min, min);
  }
  const auto flat_i = hn::RebindMask(di, flat);
  for (int i = 0; i < n; ++i) hn::Store(hn::IfThenZeroElse(flat_i, hn::Load(di, L + i * N)), di, L + i * N);
  hn::Store(hn::IfThenZeroElse(flat, scale), df, scale_out);
  hn::Store(hn::Neg(hn::IfThenElse(flat, min0, min)), df, min_out);
}

HWY_NOINLINE void MakeQkx2QuantsBatchImpl(int n_sub, int n, int nmax, const float* x, const float* weights,
                                          uint8_t* L, float* scales, float* mins, float rmin, float rdelta,
                                          int nstep, bool use_mad) {
  const DF df;
  const int N = int(hn::Lanes(df));
  HWY_ALIGN float xt[kMaxN * kMaxLanes], wt[kMaxN * kMaxLanes], sc[kMaxLanes], mn[kMaxLanes];
  HWY_ALIGN int32_t lt[kMaxN * kMaxLanes];
  for (int s0 = 0; s0 < n_sub; s0 += N) {
    Transpose(x, n_sub, n, s0, N, xt);
    Transpose(weights, n_sub, n, s0, N, wt);
    Qkx2Group(xt, wt, n, N, nmax, rmin, rdelta, nstep, use_mad, lt, sc, mn);
    for (int lane = 0; lane < N && s0 + lane < n_sub; ++lane) {
      const int s = s0 + lane;
      for (int i = 0; i < n; ++i) L[s * n + i] = uint8_t(lt[i * N + lane]);
      scales[s] = sc[lane];
      mins[s] = mn[lane];
    }
  }
}

// Σ w·x·l and Σ w·l² (w = x²) of the codes clamp(nearest(iscale · x), −nmax, nmax − 1), kept in lt.
HWY_INLINE void QxSums(const float* xt, int n, int N, VF iscale, int nmax, int32_t* lt, VF* sumlx, VF* suml2) {
  const DF df;
  const DI di;
  const VI lo = hn::Set(di, -nmax), hi = hn::Set(di, nmax - 1);
  *sumlx = *suml2 = hn::Zero(df);
  for (int i = 0; i < n; ++i) {
    const VF x = hn::Load(df, xt + i * N);
    const VI li = hn::Min(hn::Max(NearestIntV(hn::Mul(iscale, x)), lo), hi);
    hn::Store(li, di, lt + i * N);
    const VF l = hn::ConvertTo(df, li), w = hn::Mul(x, x);
    *sumlx = hn::Add(*sumlx, hn::Mul(hn::Mul(w, x), l));
    *suml2 = hn::Add(*suml2, hn::Mul(hn::Mul(w, l), l));
  }
}

void QxGroup(const float* xt, int n, int N, int nmax, int32_t* L, float* scale_out) {
  const DF df;
  const DI di;
  VF amax = hn::Zero(df), max = hn::Zero(df);  // SignedAbsMax: the first of largest |x|, with its sign
  for (int i = 0; i < n; ++i) {
    const VF x = hn::Load(df, xt + i * N);
    const auto bigger = hn::Gt(hn::Abs(x), amax);
    amax = hn::IfThenElse(bigger, hn::Abs(x), amax);
    max = hn::IfThenElse(bigger, x, max);
  }
  const auto tiny = hn::Lt(hn::Abs(max), hn::Set(df, kGroupMaxEps));
  const VF zero = hn::Zero(df);
  VF sumlx, suml2;
  QxSums(xt, n, N, hn::Div(hn::Set(df, float(-nmax)), max), nmax, L, &sumlx, &suml2);
  VF scale = hn::IfThenElseZero(hn::Ne(suml2, zero), hn::Div(sumlx, suml2));
  VF best = hn::Mul(scale, sumlx);
  HWY_ALIGN int32_t laux[kMaxN * kMaxLanes];
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float num = -(float(nmax) + 0.1f * float(is));
    QxSums(xt, n, N, hn::Div(hn::Set(df, num), max), nmax, laux, &sumlx, &suml2);
    const auto win = hn::And(hn::Gt(suml2, zero), hn::Gt(hn::Mul(sumlx, sumlx), hn::Mul(best, suml2)));
    const auto win_i = hn::RebindMask(di, win);
    for (int i = 0; i < n; ++i)
      hn::Store(hn::IfThenElse(win_i, hn::Load(di, laux + i * N), hn::Load(di, L + i * N)), di, L + i * N);
    scale = hn::IfThenElse(win, hn::Div(sumlx, suml2), scale);
    best = hn::IfThenElse(win, hn::Mul(scale, sumlx), best);
  }
  const auto tiny_i = hn::RebindMask(di, tiny);
  const VI offset = hn::Set(di, nmax);
  for (int i = 0; i < n; ++i)  // codes l + nmax; a (near) zero sub-block has codes 0
    hn::Store(hn::IfThenZeroElse(tiny_i, hn::Add(hn::Load(di, L + i * N), offset)), di, L + i * N);
  hn::Store(hn::IfThenZeroElse(tiny, scale), df, scale_out);
}

HWY_NOINLINE void MakeQxQuantsBatchImpl(int n_sub, int n, int nmax, const float* x, int8_t* L, float* scales) {
  const DF df;
  const int N = int(hn::Lanes(df));
  HWY_ALIGN float xt[kMaxN * kMaxLanes], sc[kMaxLanes];
  HWY_ALIGN int32_t lt[kMaxN * kMaxLanes];
  for (int s0 = 0; s0 < n_sub; s0 += N) {
    Transpose(x, n_sub, n, s0, N, xt);
    QxGroup(xt, n, N, nmax, lt, sc);
    for (int lane = 0; lane < N && s0 + lane < n_sub; ++lane) {
      const int s = s0 + lane;
      for (int i = 0; i < n; ++i) L[s * n + i] = int8_t(lt[i * N + lane]);
      scales[s] = sc[lane];
    }
  }
}

HWY_NOINLINE const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ql::gguf
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql::gguf {

HWY_EXPORT(MakeQkx2QuantsBatchImpl);
HWY_EXPORT(MakeQxQuantsBatchImpl);
HWY_EXPORT(TargetNameImpl);

void MakeQkx2QuantsBatch(int n_sub, int n, int nmax, const float* x, const float* weights, uint8_t* L,
                         float* scales, float* mins, float rmin, float rdelta, int nstep, bool use_mad) {
  QL_CHECK(n >= 1 && n <= 32 && nmax >= 1 && nmax <= 255, "qkx2 batch: n {} nmax {}", n, nmax);
  HWY_DYNAMIC_DISPATCH(MakeQkx2QuantsBatchImpl)(n_sub, n, nmax, x, weights, L, scales, mins, rmin, rdelta, nstep,
                                                use_mad);
}

void MakeQxQuantsBatch(int n_sub, int n, int nmax, const float* x, int8_t* L, float* scales) {
  QL_CHECK(n >= 1 && n <= 32 && nmax >= 1 && nmax <= 127, "qx batch: n {} nmax {}", n, nmax);
  HWY_DYNAMIC_DISPATCH(MakeQxQuantsBatchImpl)(n_sub, n, nmax, x, L, scales);
}

const char* KquantFitTarget() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

}  // namespace ql::gguf
#endif  // HWY_ONCE
