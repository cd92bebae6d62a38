// Per-target partial-vector load and store of the first `count` (< Lanes) floats, shared by the Highway
// kernels (ops.cc, act_quant.cc). Included once per SIMD target after hwy/highway.h, with Highway's
// per-target include guard. Never reads or writes outside [p, p+count): on AVX2 and AVX-512 through the
// instructions' own masks (vmaskmovps / masked vmovups suppress faults on masked-off lanes); elsewhere
// through an aligned stack buffer, since Highway 1.0.3's MaskedLoad needs aligned pointers on SSE4 and
// may read past the end. The buffer costs a store-forwarding stall (scalar stores, then a vector load),
// which matters in loops that load a tail per iteration. Lanes past count load as 0 either way.

#if defined(QL_KERNELS_TAIL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QL_KERNELS_TAIL_INL_H_
#undef QL_KERNELS_TAIL_INL_H_
#else
#define QL_KERNELS_TAIL_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"

#undef QL_TAIL_MASKED
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define QL_TAIL_MASKED 1
#else
#define QL_TAIL_MASKED 0
#endif

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {

HWY_INLINE hwy::HWY_NAMESPACE::Vec<hwy::HWY_NAMESPACE::ScalableTag<float>> TailLoad(
    hwy::HWY_NAMESPACE::ScalableTag<float> d, const float* p, size_t count) {
#if QL_TAIL_MASKED
  return hwy::HWY_NAMESPACE::MaskedLoad(hwy::HWY_NAMESPACE::FirstN(d, count), d, p);
#else
  HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)] = {};
  for (size_t i = 0; i < count; ++i) buf[i] = p[i];
  return hwy::HWY_NAMESPACE::Load(d, buf);
#endif
}

HWY_INLINE void TailStore(hwy::HWY_NAMESPACE::Vec<hwy::HWY_NAMESPACE::ScalableTag<float>> v,
                          hwy::HWY_NAMESPACE::ScalableTag<float> d, float* p, size_t count) {
#if QL_TAIL_MASKED
  hwy::HWY_NAMESPACE::BlendedStore(v, hwy::HWY_NAMESPACE::FirstN(d, count), d, p);
#else
  HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)];
  hwy::HWY_NAMESPACE::Store(v, d, buf);
  for (size_t i = 0; i < count; ++i) p[i] = buf[i];
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#endif  // QL_KERNELS_TAIL_INL_H_ per target
