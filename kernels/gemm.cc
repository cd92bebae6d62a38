// Highway implementation of kernels/gemm.h, compiled once per SIMD target and dispatched at run
// time, plus the scalar oracle. The structure is the one of BLIS/GotoBLAS (and gemma.cpp's ops/
// matmul): C is cut into fixed tiles of kMc rows x kNc columns (the work items); an item packs its
// kNc columns of B into K x NR panels (NR = kNv vectors) in thread-private scratch, then runs an
// MR x NR register-blocked micro-kernel over its rows: 8 x 3 vectors (24 of AVX-512's 32 registers
// accumulate) on AVX-512, 6 x 2 (12 of 16) elsewhere. A is read in
// place (one broadcast per row and k). K is never split, so each C element is one FMA chain.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gemm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/gemm_tile-inl.h"

#include <immintrin.h>  // Transpose16 on AVX-512 targets

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/simd_target.h"
#include "kernels/parallel.h"

#ifndef QL_KERNELS_GEMM_CONSTANTS_  // this file is re-included once per SIMD target
#define QL_KERNELS_GEMM_CONSTANTS_
namespace ql {
namespace gemm_detail {
constexpr int kMc = 96;    // rows of a work item (multiple of every target's MR)
constexpr int kNc = 96;    // columns of a work item (multiple of every target's NR)
constexpr double kMinThreadedFlops = 4e6;  // below this one thread: waking a pool worker costs µs
constexpr size_t kLineFloats = 16;        // floats per 64-byte cache line
constexpr size_t kPrefetchFloats = 4 * kLineFloats;  // how far ahead PackB fetches each source row
}  // namespace gemm_detail
}  // namespace ql
#endif

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using namespace gemm_detail;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

using gemm_tile::kMr;  // kernels/gemm_tile-inl.h: the register tile
using gemm_tile::kNv;
using gemm_tile::MicroDispatch;

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// dst[k * ld_dst + j] = src[j * ld_src + k] for j, k < 16: a 16 x 16 transpose in registers (32-bit
// then 64-bit interleaves within 128-bit blocks, then a 4 x 4 transpose of the blocks). A copy: no
// value changes. Highway 1.0 has no transpose, hence AVX-512 intrinsics on this target only. (GCC 12
// warns of the intrinsics' own internal undefined operands: -Wmaybe-uninitialized is off here.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
HWY_INLINE void Transpose16(const float* src, size_t ld_src, float* dst, size_t ld_dst) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ld_src);
  for (int i = 0; i < 16; i += 2) {  // t[i] lane block L: (r_i, r_i+1) at columns 4L, 4L+1; t[i+1]: 4L+2, 4L+3
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[g][c] (in r[4g + c]): block L holds column 4L + c of rows 4g .. 4g + 3.
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), e = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
  }
  for (int c = 0; c < 4; ++c) {  // blocks: column 4L + c of all 16 rows = block L of u[0..3][c]
    const __m512 s0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), s1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
    const __m512 s2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
    const __m512 s3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
    _mm512_storeu_ps(dst + (0 + c) * ld_dst, _mm512_shuffle_f32x4(s0, s2, 0x88));
    _mm512_storeu_ps(dst + (4 + c) * ld_dst, _mm512_shuffle_f32x4(s0, s2, 0xDD));
    _mm512_storeu_ps(dst + (8 + c) * ld_dst, _mm512_shuffle_f32x4(s1, s3, 0x88));
    _mm512_storeu_ps(dst + (12 + c) * ld_dst, _mm512_shuffle_f32x4(s1, s3, 0xDD));
  }
}
#pragma GCC diagnostic pop
constexpr bool kHasTranspose16 = true;
#else
HWY_INLINE void Transpose16(const float*, size_t, float*, size_t) {}
constexpr bool kHasTranspose16 = false;
#endif

// Packs columns [j0, j0 + cols) of op(B) into panels of nr columns: panel p holds bp[p][k][0..nr),
// zero beyond `cols` (the padding lanes compute values that are never stored).
void PackB(const float* B, size_t ldb, BLayout layout, size_t K, size_t j0, size_t cols, size_t nr, float* bp) {
  for (size_t p0 = 0; p0 < cols; p0 += nr) {
    float* panel = bp + p0 * K;  // [K, nr]
    const size_t w = std::min(nr, cols - p0);
    if (layout == BLayout::kKN) {
      for (size_t k = 0; k < K; ++k) {
        const float* src = B + k * ldb + j0 + p0;
        float* dst = panel + k * nr;
        std::memcpy(dst, src, sizeof(float) * w);
        std::fill(dst + w, dst + nr, 0.0f);
      }
    } else {
      // Rows of B are columns of op(B): a blocked transpose. Per block of kLineFloats k, each source
      // row gives one cache line (read while the next block's lines are prefetched: the w streams,
      // weights mostly not in cache, are too many for the hardware prefetcher), and the block's
      // kLineFloats panel rows stay in L1 while they are filled.
      const float* rows = B + (j0 + p0) * ldb;
      for (size_t k0 = 0; k0 < K; k0 += kLineFloats) {
        const size_t kn = std::min(kLineFloats, K - k0);
        float* dst = panel + k0 * nr;
        if (kHasTranspose16 && kn == 16 && w == nr && nr % 16 == 0) {  // whole 16 x 16 tiles in registers
          for (size_t j = 0; j < w; ++j)
            if (k0 + kPrefetchFloats < K) hwy::Prefetch(rows + j * ldb + k0 + kPrefetchFloats);
          for (size_t jb = 0; jb < w; jb += 16) Transpose16(rows + jb * ldb + k0, ldb, dst + jb, nr);
          continue;
        }
        for (size_t j = 0; j < w; ++j) {
          const float* src = rows + j * ldb + k0;
          if (k0 + kPrefetchFloats < K) hwy::Prefetch(src + kPrefetchFloats);
          for (size_t k = 0; k < kn; ++k) dst[k * nr + j] = src[k];
        }
        for (size_t k = 0; k < kn; ++k) std::fill(dst + k * nr + w, dst + (k + 1) * nr, 0.0f);
      }
    }
  }
}

// Decoding path (B [N, K], few rows): c[i, j] = alpha · dot(A row i, B row j), lane partial sums in
// k order, then the fixed SumOfLanes tree. Four B rows at a time share each load of A.
void DotRows(int M, size_t j0, size_t j1, size_t K, float alpha, const float* A, size_t lda, const float* B,
             size_t ldb, float* C, size_t ldc) {
  const DF d;
  const size_t N = hn::Lanes(d);
  HWY_ALIGN float tail_a[HWY_MAX_BYTES / sizeof(float)] = {};
  HWY_ALIGN float tail_b[HWY_MAX_BYTES / sizeof(float)] = {};
  const size_t kv = K - K % N;
  for (int i = 0; i < M; ++i) {
    const float* a = A + i * lda;
    for (size_t j = j0; j < j1; ++j) {
      const float* b = B + j * ldb;
      VF s = hn::Zero(d);
      for (size_t k = 0; k < kv; k += N) s = hn::MulAdd(hn::LoadU(d, a + k), hn::LoadU(d, b + k), s);
      if (kv < K) {
        for (size_t k = kv; k < K; ++k) tail_a[k - kv] = a[k], tail_b[k - kv] = b[k];
        s = hn::MulAdd(hn::Load(d, tail_a), hn::Load(d, tail_b), s);
      }
      C[i * ldc + j] = alpha * hn::GetLane(hn::SumOfLanes(d, s));
    }
  }
}

// Rows of one item: all of M when there are enough column blocks to keep every thread busy (each
// block of B is then packed exactly once), else M split so that ~2 items per thread exist. Rows are
// a multiple of kMc. Only the schedule depends on this, never the arithmetic.
int ItemRows(int M, int n_nb, int threads) {
  const int chunks = std::max(1, std::min((M + kMc - 1) / kMc, (2 * threads + n_nb - 1) / n_nb));
  const int rows = (M + chunks - 1) / chunks;
  return (rows + kMc - 1) / kMc * kMc;
}

// C[rows, cols] for rows [i0, i1) and the packed column block bp (cols = panels of nr): for each
// kMc-row block, for each kMr rows, every panel. A stays in place.
void ComputeBlock(int i0, int i1, const float* A, size_t lda, const float* bp, size_t K, size_t cols, size_t nr,
                  float alpha, float* C, size_t ldc) {
  for (int ib = i0; ib < i1; ib += kMc) {
    const int ie = std::min(i1, ib + kMc);
    for (int i = ib; i < ie; i += kMr) {
      const int rows = std::min(kMr, ie - i);
      for (size_t p0 = 0; p0 < cols; p0 += nr)
        MicroDispatch(rows, A + size_t(i) * lda, lda, bp + p0 * K, K, alpha, C + size_t(i) * ldc + p0, ldc,
                      std::min(nr, cols - p0));
    }
  }
}

void GemmImpl(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, BLayout layout,
              float* C, int ldc, int threads) {
  const DF d;
  const size_t nr = kNv * hn::Lanes(d);
  const int n_nb = (N + kNc - 1) / kNc;
  const double flops = 2.0 * M * N * K;
  if (flops < kMinThreadedFlops) threads = 1;
  if (layout == BLayout::kNK && M < kGemmDotRows) {
    ParallelFor(n_nb, threads, [&](int nb, int) {
      const size_t j0 = size_t(nb) * kNc, j1 = std::min<size_t>(N, j0 + kNc);
      DotRows(M, j0, j1, K, alpha, A, lda, B, ldb, C, ldc);
    });
    return;
  }
  const int item_rows = ItemRows(M, n_nb, threads);
  const int n_mb = (M + item_rows - 1) / item_rows;
  const size_t scratch = size_t(K) * kNc;  // one packed column block [kNc / nr panels][K][nr]
  thread_local std::vector<float> packs;   // [threads, scratch], kept by the calling thread
  const int used = std::max(1, std::min(threads, n_nb * n_mb));
  if (packs.size() < scratch * used) packs.resize(scratch * used);
  float* const pack_base = packs.data();  // a lambda on another thread would see its own `packs`
  std::vector<int> packed_nb(used, -1);  // which column block each thread's scratch holds
  // Items column-block-major, so consecutive items of a thread reuse its packed block.
  ParallelFor(n_nb * n_mb, used, [&](int item, int tid) {
    const int nb = item / n_mb, mb = item % n_mb;
    const size_t j0 = size_t(nb) * kNc, cols = std::min<size_t>(kNc, N - j0);
    float* bp = pack_base + scratch * tid;
    if (packed_nb[tid] != nb) {
      PackB(B, ldb, layout, K, j0, cols, nr, bp);
      packed_nb[tid] = nb;
    }
    ComputeBlock(mb * item_rows, std::min(M, (mb + 1) * item_rows), A, lda, bp, K, cols, nr, alpha, C + j0, ldc);
  });
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }
int FloatLanes() { return int(hn::Lanes(hn::ScalableTag<float>())); }

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql {

HWY_EXPORT(GemmImpl);
HWY_EXPORT(TargetName);
HWY_EXPORT(FloatLanes);

void Gemm(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, BLayout layout,
          float* C, int ldc, int threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; ++i) std::fill(C + size_t(i) * ldc, C + size_t(i) * ldc + N, 0.0f);
    return;
  }
  HWY_DYNAMIC_DISPATCH(GemmImpl)(M, N, K, alpha, A, lda, B, ldb, layout, C, ldc, std::max(1, threads));
}

void GemmRef(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, BLayout layout,
             float* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) {
        const float b = layout == BLayout::kNK ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j];
        s += double(A[size_t(i) * lda + k]) * b;
      }
      C[size_t(i) * ldc + j] = float(alpha * s);
    }
}

const char* GemmTarget() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }
int SimdFloatLanes() { return HWY_DYNAMIC_DISPATCH(FloatLanes)(); }

Status LimitSimdTarget(std::string_view name) {
  // Highway's x86 target bits grow as the targets narrow (AVX3_DL 7, AVX3 8, AVX2 9, SSE4 11): disabling
  // every bit below a target's leaves it the widest.
  int64_t disabled = 0;
#if HWY_ARCH_X86
  if (name == "avx2") disabled = HWY_AVX2 - 1;
  else if (name == "sse4") disabled = HWY_SSE4 - 1;
  else if (name != "native")
#else
  if (name != "native")
#endif
    return Status::Errorf("unknown SIMD target '{}': use native, avx2 or sse4", name);
  hwy::DisableTargets(disabled);
  return Status::Ok();
}

Status LimitSimdTargetFromEnvironment() {
  const char* v = std::getenv("QL_SIMD");
  if (!v || !*v) return Status::Ok();
  const Status s = LimitSimdTarget(v);
  if (!s.ok()) return Status::Errorf("QL_SIMD: {}", s.message());
  return s;
}

}  // namespace ql
#endif  // HWY_ONCE
