// Highway implementation of kernels/fp4_encode.h, compiled once per SIMD target (foreach_target.h) and
// chosen at run time, beside its scalar oracle (the fp4_e2m1 codec's Encode).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/fp4_encode.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"

#include <algorithm>

#include "kernels/format.h"
#include "kernels/fp4_encode.h"

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;

// E2M1 codes of x / scale, one lane per value: the magnitude code counts the midpoints passed
// (strictly above those that round down to an even code, at or above those that round up to one).
HWY_INLINE VI Codes(VF x, VF scale, E2m1ZeroSign zero) {
  const DF df;
  const DI di;
  const VF q = hn::Div(x, scale), a = hn::Abs(q);
  VI mag = hn::Zero(di);
  auto count = [&](auto passed) { mag = hn::Sub(mag, hn::VecFromMask(di, hn::RebindMask(di, passed))); };
  count(hn::Gt(a, hn::Set(df, 0.25f)));
  count(hn::Ge(a, hn::Set(df, 0.75f)));
  count(hn::Gt(a, hn::Set(df, 1.25f)));
  count(hn::Ge(a, hn::Set(df, 1.75f)));
  count(hn::Gt(a, hn::Set(df, 2.5f)));
  count(hn::Ge(a, hn::Set(df, 3.5f)));
  count(hn::Gt(a, hn::Set(df, 5.0f)));
  // The sign bit (as a signed integer, < 0) is q < 0 for every non-zero q, and also set for -0.
  auto neg = zero == E2m1ZeroSign::kSignBit ? hn::Lt(hn::BitCast(di, q), hn::Zero(di))
                                            : hn::RebindMask(di, hn::Lt(q, hn::Zero(df)));
  if (zero == E2m1ZeroSign::kPositive) neg = hn::And(neg, hn::Ne(mag, hn::Zero(di)));
  return hn::Or(mag, hn::IfThenElseZero(neg, hn::Set(di, 8)));
}

HWY_NOINLINE void E2m1EncodeRunImpl(const float* x, int n, float scale, E2m1ZeroSign zero, uint8_t* out) {
  const DF df;
  const DI di;
  const int N = int(hn::Lanes(df));
  const VF vs = hn::Set(df, scale);
  HWY_ALIGN int32_t codes[HWY_MAX_BYTES / 4];
  HWY_ALIGN float tail[HWY_MAX_BYTES / 4];
  for (int i0 = 0; i0 < n; i0 += N) {
    const int m = std::min(N, n - i0);
    VF v;
    if (m == N) {
      v = hn::LoadU(df, x + i0);
    } else {
      std::fill(tail, tail + N, 0.0f);
      std::copy(x + i0, x + i0 + m, tail);
      v = hn::Load(df, tail);
    }
    hn::Store(Codes(v, vs, zero), di, codes);
    for (int i = 0; i < m; ++i) out[(i0 + i) / 2] |= uint8_t(codes[i] << (((i0 + i) & 1) * 4));
  }
}

HWY_NOINLINE const char* Fp4TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql {

HWY_EXPORT(E2m1EncodeRunImpl);
HWY_EXPORT(Fp4TargetNameImpl);

void E2m1EncodeRun(const float* x, int n, float scale, E2m1ZeroSign zero, uint8_t* out) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(E2m1EncodeRunImpl)(x, n, scale, zero, out);
}

void E2m1EncodeRunRef(const float* x, int n, float scale, bool clamp6, E2m1ZeroSign zero, uint8_t* out) {
  auto codec = FindElementCodec("fp4_e2m1");
  QL_CHECK(codec.ok(), "{}", codec.status().message());
  for (int i = 0; i < n; ++i) {
    float q = x[i] / scale;
    if (clamp6) q = std::clamp(q, -6.0f, 6.0f);
    uint32_t c = (*codec)->Encode(q);
    if ((c & 0x7) == 0 && zero != E2m1ZeroSign::kSignBit)
      c = (zero == E2m1ZeroSign::kNegativeInput && q < 0.0f) ? 0x8u : 0x0u;
    out[i / 2] |= uint8_t(c << ((i & 1) * 4));
  }
}

const char* Fp4EncodeTarget() { return HWY_DYNAMIC_DISPATCH(Fp4TargetNameImpl)(); }

}  // namespace ql
#endif  // HWY_ONCE
