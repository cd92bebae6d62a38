// kernels/gemm_bf16.h: an AVX512_BF16 kernel (compiled with a function target attribute and chosen
// at run time from CPUID, since Highway 1.0.3 has no VDPBF16PS target), the scalar emulation, and
// the oracle. Blocking as kernels/gemm.cc: items of whole column blocks of kNc columns (row-split
// only when there are too few blocks for the threads), B packed once per block into panels of 48
// columns x K/2 pairs (one 32-bit BF16 pair per column and pair of k), A converted once per call
// into rows of pairs (rows on threads); an 8 x 48 micro-kernel of 24 FP32 accumulators (3 loads and
// 8 broadcasts per 24 VDPBF16PS, each 32 multiply-adds, per pair of k).
#include "kernels/gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/half.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

constexpr int kMr = 8, kNr = 48, kMc = 96, kNc = 96;
constexpr double kMinThreadedFlops = 4e6;

// BF16 as the instruction reads it: denormals are zero.
float Bf16Operand(float x) {
  const float r = Bf16ToF32(F32ToBf16(x));
  return std::fabs(r) < 0x1p-126f ? std::copysign(0.0f, r) : r;
}
float FlushDenormal(float x) { return std::fabs(x) < 0x1p-126f ? std::copysign(0.0f, x) : x; }

uint32_t Pair(float even, float odd) { return uint32_t(F32ToBf16(even)) | uint32_t(F32ToBf16(odd)) << 16; }

#define QL_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))

// out[p] = (bf16(x[2p]), bf16(x[2p+1])) for p < ceil(K/2); x[K] reads as 0.
QL_BF16_TARGET void PairsOfRow(const float* x, int K, uint32_t* out) {
  int k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
    _mm512_storeu_si512(out + k / 2, reinterpret_cast<const __m512i&>(v));
  }
  for (; k < K; k += 2) out[k / 2] = Pair(x[k], k + 1 < K ? x[k + 1] : 0.0f);
}

// Panels of kNr columns of op(B) for columns [j0, j0 + cols): panel[p][j], zero past `cols`.
QL_BF16_TARGET void PackB(const float* B, int ldb, BLayout layout, int K, int j0, int cols, uint32_t* bp,
                          std::vector<uint32_t>& row) {
  const int P = (K + 1) / 2;
  for (int c0 = 0; c0 < cols; c0 += kNr) {
    uint32_t* panel = bp + size_t(c0) * P;  // [P, kNr]
    const int w = std::min(kNr, cols - c0);
    if (w < kNr) std::fill(panel, panel + size_t(P) * kNr, 0u);
    if (layout == BLayout::kNK) {
      row.resize(P);
      for (int j = 0; j < w; ++j) {
        PairsOfRow(B + size_t(j0 + c0 + j) * ldb, K, row.data());
        for (int p = 0; p < P; ++p) panel[size_t(p) * kNr + j] = row[p];
      }
    } else {
      for (int p = 0; p < P; ++p) {
        const float* even = B + size_t(2 * p) * ldb + j0 + c0;
        const float* odd = 2 * p + 1 < K ? B + size_t(2 * p + 1) * ldb + j0 + c0 : nullptr;
        for (int j = 0; j < w; ++j) panel[size_t(p) * kNr + j] = Pair(even[j], odd ? odd[j] : 0.0f);
      }
    }
  }
}

template <int R>
QL_BF16_TARGET inline void Micro(const uint32_t* a, int P, const uint32_t* panel, float alpha, float* c, int ldc,
                                 int ncols) {
  constexpr int kV = kNr / 16;  // vectors per panel row
  __m512 acc[R][kV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int p = 0; p < P; ++p) {
    __m512bh b[kV];
    for (int v = 0; v < kV; ++v) {
      const __m512i bi = _mm512_loadu_si512(panel + size_t(p) * kNr + 16 * v);
      b[v] = reinterpret_cast<const __m512bh&>(bi);
    }
    for (int r = 0; r < R; ++r) {
      const __m512i ai = _mm512_set1_epi32(int(a[size_t(r) * P + p]));
      const __m512bh ar = reinterpret_cast<const __m512bh&>(ai);
      for (int v = 0; v < kV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], ar, b[v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  for (int v = 0; v < kV; ++v) {
    const int left = ncols - 16 * v;
    if (left <= 0) break;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(c + size_t(r) * ldc + 16 * v, m, _mm512_mul_ps(acc[r][v], va));
  }
}

QL_BF16_TARGET void MicroRows(int rows, const uint32_t* a, int P, const uint32_t* panel, float alpha, float* c,
                              int ldc, int ncols) {
  switch (rows) {
    case 8: return Micro<8>(a, P, panel, alpha, c, ldc, ncols);
    case 7: return Micro<7>(a, P, panel, alpha, c, ldc, ncols);
    case 6: return Micro<6>(a, P, panel, alpha, c, ldc, ncols);
    case 5: return Micro<5>(a, P, panel, alpha, c, ldc, ncols);
    case 4: return Micro<4>(a, P, panel, alpha, c, ldc, ncols);
    case 3: return Micro<3>(a, P, panel, alpha, c, ldc, ncols);
    case 2: return Micro<2>(a, P, panel, alpha, c, ldc, ncols);
    default: return Micro<1>(a, P, panel, alpha, c, ldc, ncols);
  }
}

// Rows of one item, as kernels/gemm.cc: all of M when the column blocks alone give every thread ~2
// items (each block of B is then packed once), else M split; a multiple of kMc. Schedule only.
int ItemRows(int M, int n_nb, int threads) {
  const int chunks = std::max(1, std::min((M + kMc - 1) / kMc, (2 * threads + n_nb - 1) / n_nb));
  const int rows = (M + chunks - 1) / chunks;
  return (rows + kMc - 1) / kMc * kMc;
}

QL_BF16_TARGET void GemmAvx512Bf16(int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                                   int ldb, BLayout layout, float* C, int ldc, int threads) {
  const int P = (K + 1) / 2;
  thread_local std::vector<uint32_t> a_pairs;  // [M, P], kept by the calling thread
  if (a_pairs.size() < size_t(M) * P) a_pairs.resize(size_t(M) * P);
  uint32_t* const ap = a_pairs.data();  // a lambda on another thread would see its own a_pairs
  const int n_ab = (M + kMc - 1) / kMc;
  ParallelFor(n_ab, std::min(threads, n_ab), [&](int b, int) {
    for (int i = b * kMc; i < std::min(M, (b + 1) * kMc); ++i) PairsOfRow(A + size_t(i) * lda, K, ap + size_t(i) * P);
  });
  const int n_nb = (N + kNc - 1) / kNc;
  const int item_rows = ItemRows(M, n_nb, threads), n_mb = (M + item_rows - 1) / item_rows;
  const int used = std::max(1, std::min(threads, n_nb * n_mb));
  const size_t scratch = size_t(P) * kNc;
  thread_local std::vector<uint32_t> packs;  // [used, scratch], kept by the calling thread
  if (packs.size() < scratch * used) packs.resize(scratch * used);
  uint32_t* const pack_base = packs.data();
  std::vector<std::vector<uint32_t>> rows(used);
  std::vector<int> packed_nb(used, -1);
  ParallelFor(n_nb * n_mb, used, [&](int item, int tid) {
    const int nb = item / n_mb, mb = item % n_mb;
    const int j0 = nb * kNc, cols = std::min(kNc, N - j0);
    uint32_t* bp = pack_base + scratch * tid;
    if (packed_nb[tid] != nb) {
      PackB(B, ldb, layout, K, j0, cols, bp, rows[tid]);
      packed_nb[tid] = nb;
    }
    const int i_end = std::min(M, (mb + 1) * item_rows);
    for (int i = mb * item_rows; i < i_end; i += kMr)
      for (int c0 = 0; c0 < cols; c0 += kNr)
        MicroRows(std::min(kMr, i_end - i), ap + size_t(i) * P, P, bp + size_t(c0) * P, alpha,
                  C + size_t(i) * ldc + j0 + c0, ldc, std::min(kNr, cols - c0));
  });
}

// One element of the emulation and the oracle: the pair order of VDPBF16PS.
float DotPairs(const float* a, const float* b, int K, int b_stride) {
  float acc = 0.0f;
  for (int k = 0; k < K; k += 2) {
    const float a1 = k + 1 < K ? Bf16Operand(a[k + 1]) : 0.0f, b1 = k + 1 < K ? Bf16Operand(b[(k + 1) * b_stride]) : 0.0f;
    acc = FlushDenormal(std::fma(a1, b1, acc));
    acc = FlushDenormal(std::fma(Bf16Operand(a[k]), Bf16Operand(b[k * b_stride]), acc));
  }
  return acc;
}

}  // namespace

bool HasAvx512Bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return has;
}

void GemmBf16Ref(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 BLayout layout, float* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      const float* b = layout == BLayout::kNK ? B + size_t(j) * ldb : B + j;
      C[size_t(i) * ldc + j] = alpha * DotPairs(A + size_t(i) * lda, b, K, layout == BLayout::kNK ? 1 : ldb);
    }
}

void GemmBf16(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, BLayout layout,
              float* C, int ldc, int threads) {
  if (M <= 0 || N <= 0) return;
  if (2.0 * M * N * K < kMinThreadedFlops) threads = 1;
  if (K <= 0) return GemmRef(M, N, 0, alpha, A, lda, B, ldb, layout, C, ldc);
  if (HasAvx512Bf16()) return GemmAvx512Bf16(M, N, K, alpha, A, lda, B, ldb, layout, C, ldc, std::max(1, threads));
  const int n_mb = (M + kMc - 1) / kMc;  // emulation: row blocks on threads
  ParallelFor(n_mb, std::max(1, threads), [&](int mb, int) {
    const int i0 = mb * kMc, rows = std::min(kMc, M - i0);
    GemmBf16Ref(rows, N, K, alpha, A + size_t(i0) * lda, lda, B, ldb, layout, C + size_t(i0) * ldc, ldc);
  });
}

}  // namespace ql
