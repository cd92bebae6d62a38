// Per-target FP32 register tile shared by kernels/gemm.cc and kernels/attention.cc: C[rows, ≤ NR] =
// alpha · A[rows, K] · panel[K, NR], one FMA chain per element in k order (NR = kNv vectors; the B
// operand packed K-major). Included once per SIMD target after hwy/highway.h and kernels/tail-inl.h,
// with Highway's per-target include guard (as tail-inl.h).

#if defined(QL_KERNELS_GEMM_TILE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QL_KERNELS_GEMM_TILE_INL_H_
#undef QL_KERNELS_GEMM_TILE_INL_H_
#else
#define QL_KERNELS_GEMM_TILE_INL_H_
#endif

#include <algorithm>
#include <cstddef>

#include "hwy/highway.h"
#include "kernels/tail-inl.h"

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace gemm_tile {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kNv = 3, kMr = 8;  // vectors per panel row, rows per tile: 24 of AVX-512's 32 registers accumulate
#else
constexpr int kNv = 2, kMr = 6;  // 12 of 16
#endif

HWY_INLINE void StoreCols(VF v, DF d, float* p, size_t count) {  // count <= Lanes
  if (count == hn::Lanes(d)) return hn::StoreU(v, d, p);
  TailStore(v, d, p, count);
}

template <int kRows>
HWY_INLINE void MicroKernel(const float* HWY_RESTRICT a, size_t lda, const float* HWY_RESTRICT panel, size_t K,
                            float alpha, float* HWY_RESTRICT c, size_t ldc, size_t ncols) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[kRows][kNv];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kNv; ++v) acc[r][v] = hn::Zero(d);
  for (size_t k = 0; k < K; ++k) {
    VF b[kNv];
    for (int v = 0; v < kNv; ++v) b[v] = hn::LoadU(d, panel + (k * kNv + v) * N);
    for (int r = 0; r < kRows; ++r) {
      const VF ar = hn::Set(d, a[r * lda + k]);
      for (int v = 0; v < kNv; ++v) acc[r][v] = hn::MulAdd(ar, b[v], acc[r][v]);
    }
  }
  const VF va = hn::Set(d, alpha);
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kNv && v * N < ncols; ++v)
      StoreCols(hn::Mul(acc[r][v], va), d, c + r * ldc + v * N, std::min(N, ncols - v * N));
}

// rows in [1, kMr]; ncols <= NR columns of the panel are stored.
HWY_INLINE void MicroDispatch(int rows, const float* a, size_t lda, const float* panel, size_t K, float alpha,
                              float* c, size_t ldc, size_t ncols) {
  switch (rows) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    case 8: return MicroKernel<8>(a, lda, panel, K, alpha, c, ldc, ncols);
    case 7: return MicroKernel<7>(a, lda, panel, K, alpha, c, ldc, ncols);
#endif
    case 6: return MicroKernel<6>(a, lda, panel, K, alpha, c, ldc, ncols);
    case 5: return MicroKernel<5>(a, lda, panel, K, alpha, c, ldc, ncols);
    case 4: return MicroKernel<4>(a, lda, panel, K, alpha, c, ldc, ncols);
    case 3: return MicroKernel<3>(a, lda, panel, K, alpha, c, ldc, ncols);
    case 2: return MicroKernel<2>(a, lda, panel, K, alpha, c, ldc, ncols);
    default: return MicroKernel<1>(a, lda, panel, K, alpha, c, ldc, ncols);
  }
}

}  // namespace gemm_tile
}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#endif  // QL_KERNELS_GEMM_TILE_INL_H_ per target
